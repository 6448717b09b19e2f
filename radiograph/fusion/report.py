"""Tables, figures and ``report.md`` of the habitat-fusion study (seeds/000), from the
predictions :mod:`radiograph.fusion.study` saved.

- ``table3.csv`` (the paper's Table 3): per model and cohort (training = out-of-fold,
  internal, external), AUC with its DeLong interval, and accuracy, sensitivity, specificity,
  PPV, NPV with Wilson intervals at the model's training Youden threshold
  (:func:`radiograph.stats.auc_ci`, :func:`radiograph.stats.binary_metrics`). Each model on
  every subject it has a prediction for (``n``).
- ``intersection.csv``: every model on the subjects with all three modalities, per cohort,
  with the count of subjects excluded; DeLong p of each model against MHA_CHP.
- ``delong_<cohort>.csv`` / ``idi_<cohort>.csv`` and heatmaps: pairwise DeLong p-values and
  IDI (column model over row model, Pencina 2008) on the intersection.
- ``roc_<cohort>``, ``calibration_external``, ``decision_external``: figures (PNG, PDF, SVG).
- ``selected_features.csv``: each feature's share of the outer folds that selected it, and
  whether the final (all-training) chain kept it.
- ``per_centre.csv``: AUC per external centre (main design) and per held-out centre
  (leave-one-centre-out), pooled by DerSimonian-Laird random effects
  (:func:`radiograph.stats.meta_analysis`).
- ``stage_times.csv``, ``habitat_k.csv``, ``clinical_or.csv``, ``classifier_cv.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from radiograph.fusion.config import FusionStudyConfig
from radiograph.io.atomic import atomic_open
from radiograph.io.figures import save_figure
from radiograph.report.figures import plot_calibration_curves, plot_decision_curves
from radiograph.stats import (
    auc_ci,
    binary_metrics,
    calibration_curve,
    decision_curve,
    delong_matrix,
    delong_test,
    idi,
    meta_analysis,
)
from radiograph.stats.results import format_p

COHORTS = ("train", "internal", "external")
MODALITY_FLAGS = ("has_clinic", "has_habitat", "has_pathology")
FUSION = "MHA_CHP"
DECISION_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _enough(label: np.ndarray) -> bool:
    """Two subjects of each class: what DeLong needs."""
    return int(label.sum()) >= 2 and int((1 - label).sum()) >= 2


def table3(predictions: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 3 (module docstring); rows in the models' order of ``thresholds``."""
    cut = dict(zip(thresholds["model"], thresholds["threshold"]))
    rows = []
    for model in thresholds["model"]:
        for cohort in COHORTS:
            d = predictions[(predictions["model"] == model) & (predictions["cohort"] == cohort)]
            y, p = d["label"].to_numpy(int), d["prob"].to_numpy(float)
            row = {
                "model": model,
                "cohort": cohort,
                "n": len(d),
                "events": int(y.sum()),
                "threshold": cut[model],
            }
            if _enough(y):
                auc = auc_ci(y, p)
                m = binary_metrics(y, p, cut[model])
                row |= {"auc": auc.estimate, "auc_low": auc.ci_low, "auc_high": auc.ci_high}
                for name in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
                    est = getattr(m, name)
                    row |= {
                        name: est.estimate,
                        f"{name}_low": est.ci_low,
                        f"{name}_high": est.ci_high,
                    }
            rows.append(row)
    return pd.DataFrame(rows)


def wide_scores(
    predictions: pd.DataFrame, table: pd.DataFrame, cohort: str
) -> tuple[pd.DataFrame, pd.Series, int]:
    """(subjects x models) probabilities on the cohort's modality intersection, the labels,
    and how many subjects of the cohort the intersection excludes."""
    d = predictions[predictions["cohort"] == cohort]
    wide = d.pivot(index="subject_id", columns="model", values="prob")
    members = table.index[(table[list(MODALITY_FLAGS)].all(axis=1))]
    keep = wide.index.intersection(members)
    wide = wide.loc[keep].dropna(axis=1, how="any")
    excluded = int(d["subject_id"].nunique() - len(keep))
    return wide, table.loc[keep, "label"].astype(int), excluded


def intersection(predictions: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Every model's AUC per cohort on the modality intersection, with the excluded count and
    the DeLong p against :data:`FUSION`."""
    rows = []
    for cohort in COHORTS:
        wide, y, excluded = wide_scores(predictions, table, cohort)
        if not _enough(y.to_numpy()):
            continue
        for model in wide.columns:
            auc = auc_ci(y, wide[model])
            row = {
                "cohort": cohort,
                "model": model,
                "n": len(y),
                "excluded": excluded,
                "auc": auc.estimate,
                "auc_low": auc.ci_low,
                "auc_high": auc.ci_high,
            }
            if model != FUSION and FUSION in wide.columns:
                test = delong_test(y, wide[FUSION], wide[model])
                row |= {
                    "difference_fusion_minus_model": test.difference,
                    "p_fusion_vs_model": test.p_value,
                }
            rows.append(row)
    return pd.DataFrame(rows)


def idi_matrix(y: pd.Series, wide: pd.DataFrame) -> pd.DataFrame:
    """IDI of the column model over the row model (> 0: the column model separates better)."""
    names = list(wide.columns)
    out = pd.DataFrame(0.0, index=names, columns=names)
    for a in names:
        for b in names:
            if a != b:
                out.loc[a, b] = idi(y, wide[a], wide[b]).estimate
    return out


def selected_frequency(selected: pd.DataFrame, folds: int) -> pd.DataFrame:
    """Per modality and feature: share of outer folds selecting it, and in the final chain."""
    if selected.empty:
        return pd.DataFrame(columns=["modality", "feature", "fold_share", "in_final"])
    in_folds = selected[selected["fold"].astype(str) != "final"]
    final = selected[selected["fold"].astype(str) == "final"]
    share = (in_folds.groupby(["modality", "feature"]).size() / folds).rename("fold_share")
    out = share.reset_index()
    final_keys = set(zip(final["modality"], final["feature"]))
    out["in_final"] = [(m, f) in final_keys for m, f in zip(out["modality"], out["feature"])]
    return out.sort_values(["modality", "fold_share"], ascending=[True, False], ignore_index=True)


def per_centre(results: Mapping[str, object], main: str) -> pd.DataFrame:
    """AUC per centre with its DeLong SE, pooled by DerSimonian-Laird: the main design's
    external centres, and the held-out centre of each leave-one-centre-out design."""
    sets = {"external centres": [(c, d) for c, d in _external_by_centre(results[main])]}
    sets["leave-one-centre-out"] = [
        (name.removeprefix("loco_"), d)
        for name, r in results.items()
        if name != main
        for _, d in _external_by_centre(r)
    ]
    frames = []
    for label, parts in sets.items():
        models = sorted({m for _, d in parts for m in d["model"].unique()})
        for model in models:
            est, se, names = [], [], []
            for centre, d in parts:
                d = d[d["model"] == model]
                y = d["label"].to_numpy(int)
                if _enough(y):
                    auc = auc_ci(y, d["prob"].to_numpy(float))
                    if auc.se > 0:
                        est.append(auc.estimate), se.append(auc.se), names.append(centre)
            if len(est) < 2:
                continue
            meta = meta_analysis(est, se, labels=names, method="DL")
            frames.append(
                meta.forest_frame().assign(
                    set=label, model=model, tau2=meta.tau2, i2=meta.i2, q_p_value=meta.q_p_value
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _external_by_centre(result: object):
    p = result.predictions
    p = p[p["cohort"] == "external"]
    yield from ((str(c), d) for c, d in p.groupby("centre"))


def plot_roc(predictions: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """One panel per cohort: each model's ROC curve on its own subjects (n in the legend)."""
    cohorts = [c for c in COHORTS if (predictions["cohort"] == c).any()]
    fig = Figure(figsize=(4.2 * len(cohorts) + 2.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(cohorts), squeeze=False).ravel()
    for ax, cohort in zip(axes, cohorts):
        d = predictions[predictions["cohort"] == cohort]
        for model, m in d.groupby("model", sort=False):
            y = m["label"].to_numpy(int)
            if _enough(y):
                fpr, tpr, _ = roc_curve(y, m["prob"])
                auc = auc_ci(y, m["prob"].to_numpy(float)).estimate
                ax.plot(fpr, tpr, linewidth=1.2, label=f"{model} {auc:.3f} (n={len(m)})")
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8)
        ax.set_title(cohort, fontsize="medium")
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_aspect("equal")
        ax.legend(fontsize="x-small", frameon=False, loc="lower right")
    save_figure(fig, path)
    return fig


def plot_heatmap(
    matrix: pd.DataFrame, path: str | os.PathLike, *, title: str, p_values: bool
) -> Figure:
    """A labelled heatmap of a square model x model matrix (p-values or IDI)."""
    fig = Figure(figsize=(1.0 + 0.75 * len(matrix), 0.6 + 0.7 * len(matrix)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    values = matrix.to_numpy(float)
    image = ax.imshow(
        values,
        cmap="viridis_r" if p_values else "RdBu_r",
        vmin=0 if p_values else -np.abs(values).max(),
        vmax=1 if p_values else np.abs(values).max(),
    )
    top = np.abs(values).max() or 1.0
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            text = format_p(values[i, j]) if p_values else f"{values[i, j]:+.3f}"
            dark = values[i, j] > 0.6 if p_values else abs(values[i, j]) > 0.6 * top
            ax.text(
                j,
                i,
                "" if i == j else text,
                ha="center",
                va="center",
                fontsize=6,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(len(matrix)), matrix.index, fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, shrink=0.8)
    save_figure(fig, path)
    return fig


def write_report(
    out: Path,
    config: FusionStudyConfig,
    table: pd.DataFrame,
    results: Mapping[str, object],
    *,
    main: str = "split",
) -> dict[str, pd.DataFrame]:
    """Write every table and figure of the module docstring and ``report.md`` under ``out``."""
    out = Path(out)
    res = results[main]
    preds = res.predictions
    tables: dict[str, pd.DataFrame] = {
        "table3": table3(preds, res.thresholds),
        "intersection": intersection(preds, table),
        "selected_features": selected_frequency(res.selected, config.outer_folds),
        "per_centre": per_centre(results, main),
        "stage_times": pd.concat(
            [r.stage_times.assign(design=n) for n, r in results.items()], ignore_index=True
        ),
        "habitat_k": pd.DataFrame(
            [
                {
                    "design": n,
                    "k": r.habitat_k,
                    **{f"ch_{k}": v for k, v in r.calinski_harabasz.items()},
                }
                for n, r in results.items()
            ]
        ),
        "clinical_or": res.clinical_or,
        "classifier_cv": res.classifier_cv,
        "thresholds": res.thresholds,
    }
    captions: list[tuple[str, str]] = []
    plot_roc(preds, out / "roc.png")
    captions.append(
        (
            "roc.png",
            "ROC curves per cohort (training: out-of-fold), each model on "
            "its own subjects; legend: AUC (n).",
        )
    )
    for cohort in ("internal", "external"):
        wide, y, excluded = wide_scores(preds, table, cohort)
        if not _enough(y.to_numpy()) or wide.shape[1] < 2:
            continue
        tables[f"delong_{cohort}"] = delong_matrix(y, {m: wide[m] for m in wide.columns})
        tables[f"idi_{cohort}"] = idi_matrix(y, wide)
        note = f"{cohort} intersection, n = {len(y)}, {excluded} excluded"
        plot_heatmap(
            tables[f"delong_{cohort}"],
            out / f"delong_{cohort}.png",
            title=f"DeLong p ({note})",
            p_values=True,
        )
        plot_heatmap(
            tables[f"idi_{cohort}"],
            out / f"idi_{cohort}.png",
            title=f"IDI, column over row ({note})",
            p_values=False,
        )
        captions += [
            (f"delong_{cohort}.png", f"Pairwise DeLong p-values, {note}."),
            (f"idi_{cohort}.png", f"IDI of the column model over the row model, {note}."),
        ]
        if cohort == "external":
            plot_calibration_curves(
                {m: calibration_curve(y, wide[m], n_bins=5) for m in wide.columns},
                out / "calibration_external.png",
                title=f"calibration, {note}",
            )
            plot_decision_curves(
                {
                    m: decision_curve(
                        y, wide[m], DECISION_THRESHOLDS, n_boot=config.n_boot, seed=config.seed
                    )
                    for m in wide.columns
                },
                out / "decision_external.png",
                title=f"decision curves, {note}",
            )
            captions += [
                ("calibration_external.png", f"Calibration (5 quantile bins), {note}."),
                ("decision_external.png", f"Decision curves, {note}."),
            ]
    for name, frame in tables.items():
        with atomic_open(out / f"{name}.csv", "w", newline="") as fh:
            frame.to_csv(fh, index=name.startswith(("delong_", "idi_")))
    _markdown(out / "report.md", config, tables, captions)
    return tables


def _markdown(
    path: Path,
    config: FusionStudyConfig,
    tables: Mapping[str, pd.DataFrame],
    captions: list[tuple[str, str]],
) -> None:
    t3 = tables["table3"]
    lines = [
        "# Habitat-fusion study (seeds/000)",
        "",
        f"Design: train on {list(config.design.train_centres)} (internal split "
        f"{config.design.internal_split}), external {list(config.design.external_centres)}"
        f"; leave-one-centre-out: {config.leave_one_centre_out}.",
        "Training-cohort numbers are out-of-fold; thresholds are each model's Youden "
        "threshold on them. The stacking meta-model is fitted once on training "
        "out-of-fold probabilities and applied unchanged; no test subject is dropped.",
        "",
        "## Table 3",
        "",
        "| model | cohort | n | AUC (95% DeLong CI) | accuracy | "
        "sensitivity | specificity | PPV | NPV |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t3.itertuples():
        if pd.isna(getattr(r, "auc", np.nan)):
            lines.append(f"| {r.model} | {r.cohort} | {r.n} | n/a | | | | | |")
            continue
        lines.append(
            f"| {r.model} | {r.cohort} | {r.n} | {r.auc:.3f} ({r.auc_low:.3f}-"
            f"{r.auc_high:.3f}) | {r.accuracy:.3f} | {r.sensitivity:.3f} | "
            f"{r.specificity:.3f} | {r.ppv:.3f} | {r.npv:.3f} |"
        )
    inter = tables["intersection"]
    lines += ["", "## Modality intersection", ""]
    for cohort, d in inter.groupby("cohort", sort=False):
        lines.append(
            f"- {cohort}: n = {d['n'].iloc[0]}, {d['excluded'].iloc[0]} subjects "
            "excluded (a modality absent); "
            + ", ".join(f"{r.model} {r.auc:.3f}" for r in d.itertuples())
        )
    if "p_fusion_vs_model" in inter:
        lines += [
            "",
            "DeLong p of MHA_CHP against each model (intersection): "
            + "; ".join(
                f"{r.cohort} {r.model} {format_p(r.p_fusion_vs_model)}"
                for r in inter.dropna(subset=["p_fusion_vs_model"]).itertuples()
            ),
        ]
    pooled = tables["per_centre"]
    if not pooled.empty:
        lines += ["", "## Per-centre AUC pooled (DerSimonian-Laird)", ""]
        for r in pooled[pooled["label"].str.startswith("Pooled")].itertuples():
            lines.append(
                f"- {r.set}, {r.model}: {r.estimate:.3f} ({r.ci_low:.3f}-"
                f"{r.ci_high:.3f}), I2 = {r.i2:.0f}%"
            )
    lines += [
        "",
        "## Habitats",
        "",
        tables["habitat_k"][["design", "k"]].to_string(index=False),
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{c}]({f})\n\n*{c}*\n" for f, c in captions]
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
