"""Figures and ``report.md`` of the longitudinal study (:mod:`radiograph.longitudinal.study`).

Figures (PNG + PDF + SVG through :func:`radiograph.io.figures.save_figure`):
``roc_<cohort>.png`` (ROC per phase, MRP and its comparators), ``decision_<cohort>_<phase>.png``
(net interventions avoided per 1,000 patients), ``ig_<modality>_<patient>.png`` (integrated-
gradient overlays on the middle slice of each volume or on each view) and
``permutation_importance.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from radiograph.io.atomic import atomic_open
from radiograph.io.figures import save_figure

if TYPE_CHECKING:
    from radiograph.longitudinal.cohort import LongitudinalCohort
    from radiograph.longitudinal.study import LongitudinalStudyConfig, StudyResult

#: Display names of the models.
LABELS = {
    "mrp": "MRP (fused)",
    "mrp_equal": "MRP, equal weights",
    "mammo": "mammography + clinical",
    "mri": "MRI + clinical",
    "clinical": "clinical only (network)",
    "clinical_logistic": "clinical only (logistic)",
    "mrp_no_phase": "MRP w/o phase embedding",
    "mrp_no_crossmodal": "MRP w/o cross-modal branch",
    "mrp_pre_only": "MRP, pre-treatment data only",
}
ROC_MODELS = ("mrp", "mri", "mammo", "clinical", "clinical_logistic")


def write_figures(out: Path, config: LongitudinalStudyConfig, result: StudyResult) -> None:
    """Every figure of the module docstring under ``out/figures``."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    pred = result.predictions
    for cohort, g in pred.groupby("cohort", sort=False):
        phases = [p for p in config.phases if p in set(g["phase"])]
        fig = Figure(figsize=(4.2 * len(phases), 4.0), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(phases)))
        for ax, phase in zip(axes, phases):
            at = g[g["phase"] == phase]
            models = [*ROC_MODELS, *sorted(m for m in set(at["model"]) if m.startswith("reader:"))]
            for model in models:
                m = at[at["model"] == model].dropna(subset=["prob"])
                if m["label"].nunique() < 2:
                    continue
                fpr, tpr, _ = roc_curve(m["label"], m["prob"])
                ax.plot(fpr, tpr, label=LABELS.get(model, model))
            ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
            ax.set(
                title=f"{phase} (n = {at['patient_id'].nunique()})",
                xlabel="1 - specificity",
                ylabel="sensitivity",
            )
            ax.legend(fontsize="x-small", frameon=False, loc="lower right")
        fig.suptitle(f"ROC per phase, {cohort}", fontsize="medium")
        save_figure(fig, folder / f"roc_{_slug(cohort)}.png")
    for (cohort, phase), curves in result.curves.items():
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.subplots()
        for model, curve in curves.items():
            (line,) = ax.plot(
                curve.thresholds, curve.interventions_avoided, label=LABELS.get(model, model)
            )
            if curve.n_boot:
                ax.fill_between(
                    curve.thresholds,
                    curve.interventions_avoided_low,
                    curve.interventions_avoided_high,
                    color=line.get_color(),
                    alpha=0.15,
                )
        ax.axhline(0.0, color="0.2", linewidth=1, linestyle=":")
        last = phase == config.phases[-1]
        what = "pCR (surgery de-escalation)" if last else "non-pCR (therapy change)"
        ax.set(
            xlabel="threshold probability",
            ylabel="net interventions avoided per 1,000",
            title=f"{cohort}, {phase}: decision for {what}",
        )
        ax.legend(fontsize="small", frameon=False)
        save_figure(fig, folder / f"decision_{_slug(cohort)}_{phase}.png")
    for modality, pid, label, items in result.attributions:
        fig = Figure(figsize=(3.0 * len(items), 3.2), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(items)))
        for ax, (k, image, attribution) in zip(axes, items):
            if image.ndim == 3:
                z = image.shape[0] // 2
                image, attribution = image[z], attribution[z]
            ax.imshow(image, cmap="gray")
            bound = float(np.abs(attribution).max()) or 1.0
            ax.imshow(attribution, cmap="bwr", alpha=0.5, vmin=-bound, vmax=bound)
            ax.set_title(config.phases[k], fontsize="small")
            ax.axis("off")
        fig.suptitle(f"{modality} integrated gradients, {pid} (pCR = {label})", fontsize="small")
        save_figure(fig, folder / f"ig_{modality}_{pid}.png")
    if "permutation_importance" in result.tables:
        imp = result.tables["permutation_importance"]
        fig = Figure(figsize=(5.0, 0.4 * len(imp) + 1.2), layout="constrained")
        ax = fig.subplots()
        ax.barh(imp["variable"][::-1], imp["importance"][::-1], xerr=imp["sd"][::-1], color="0.5")
        ax.set(
            xlabel="AUROC drop when permuted (mean over folds; bar: sd)",
            title=f"Clinical permutation importance ({config.permutation_repeats} repeats)",
        )
        save_figure(fig, folder / "permutation_importance.png")


def write_markdown(
    path: Path, config: LongitudinalStudyConfig, cohort: LongitudinalCohort, result: StudyResult
) -> None:
    """``report.md``: cohort, per-phase table, comparisons, ablations, operating points,
    decision curves, subgroups, explanations and stage times."""
    t = result.tables
    per = t["per_phase"]
    lines = [
        "# Longitudinal response prediction (seeds/002, MRP)",
        "",
        f"Manifest `{config.manifest}`: {len(cohort)} patients, phases "
        f"{', '.join(config.phases)}; external centres: "
        f"{', '.join(config.external_centres) or 'none'}. {config.folds}-fold patient-level "
        f"cross-validation on the other centres (seed {config.seed}); every model, the clinical "
        "encoding and the late-fusion weight are fitted on training patients only (the weight "
        "on an inner validation split); external patients get the mean of the fold systems.",
        "",
        "## Availability",
        "",
        _md(t["availability"]),
        "",
        "## Per-phase discrimination (AUROC, AUPRC; 95% bootstrap intervals)",
        "",
        "At each phase: the patients with an image at that phase, using their data up to it.",
        "",
        _md(
            per[
                per["model"].isin([*ROC_MODELS, "mrp_equal"])
                | per["model"].str.startswith("reader:")
            ]
        ),
        "",
        "## MRP against the clinical-only and single-modality models (DeLong)",
        "",
        _md(t["delong"]),
        "",
        "## Later phases against pre-treatment data alone (same patients, DeLong)",
        "",
        _md(t["later_phases"]),
        "",
        "## Ablations",
        "",
        "Equal fusion weights, no phase embedding, no cross-modal branch (difference = MRP "
        "minus the ablation; DeLong p).",
        "",
        _md(t["ablation"]),
        "",
        f"Validation-chosen mammography weights per fold: "
        f"{', '.join(f'{w:.2f}' for w in result.weights)}.",
        "",
        "## Operating points (thresholds from inner-validation predictions)",
        "",
        _md(t["operating_points"]),
        "",
        "## Decision curves (net interventions avoided per 1,000 patients)",
        "",
        _md(
            t["decision_curves"][t["decision_curves"]["threshold"].isin([0.1, 0.2, 0.3])]
            if not t["decision_curves"].empty
            else t["decision_curves"]
        ),
        "",
        "## Odds ratios of clinical subgroups (most common level as reference)",
        "",
        _md(t["subgroup_odds_ratios"]),
        "",
        "## Explanations",
        "",
        "Permutation importance of the clinical variables (MRP, test folds):",
        "",
        _md(t.get("permutation_importance", pd.DataFrame())),
        "",
        "Integrated-gradient overlays: `figures/ig_*.png`; ROC curves: `figures/roc_*.png`; "
        "decision curves: `figures/decision_*.png`.",
        "",
        "## Stage times (s)",
        "",
        ", ".join(f"{k}: {v:.1f}" for k, v in result.timings.items()),
        "",
    ]
    with atomic_open(path, encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def _md(frame: pd.DataFrame) -> str:
    """A pipe table; numbers to 3 significant digits, NaN as N/A."""
    if frame.empty:
        return "(none)"

    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return "N/A" if np.isnan(value) else f"{value:.3g}"
        return str(value)

    rows = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    rows += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(rows)


def _slug(text: str) -> str:
    return text.replace(":", "_")
