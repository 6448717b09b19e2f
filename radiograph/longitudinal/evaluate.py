"""Evaluation at each treatment phase (seeds/002, "Statistical analysis").

Everything here reads one long prediction table (:data:`PREDICTION_COLUMNS`): one row per
patient, phase, model and cohort, ``prob`` the predicted P(pCR) from the patient's data up to
that phase, ``label`` 1 for pCR. All intervals and tests come from :mod:`radiograph.stats`:

- AUROC and AUPRC with patient-level percentile bootstrap intervals
  (:func:`~radiograph.stats.evaluate_classification`);
- DeLong tests (:func:`~radiograph.stats.delong_test`) of the MRP system against the
  clinical-only and the single-modality models, and against reader scores when present, on the
  patients both have a prediction for;
- decision curves (:func:`~radiograph.stats.decision_curve`) with net interventions avoided
  per 1,000 patients: before the last phase the decision is about non-pCR (alternative
  therapy; outcome 1 - pCR, risk 1 - P), at the last phase about pCR (surgery de-escalation);
- the paper's operating points, thresholds chosen on inner-validation predictions only
  (:func:`~radiograph.stats.choose_threshold`): specificity at sensitivity 1 for pCR before
  the last phase, sensitivity at specificity 1 at the last phase
  (:func:`~radiograph.stats.binary_metrics`, Wilson intervals);
- odds ratios of clinical subgroups (univariable logistic models, the most common level as the
  reference, :func:`~radiograph.stats.logistic_regression`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from radiograph.fusion.clinical import UNKNOWN, ClinicalVariable
from radiograph.stats import (
    binary_metrics,
    choose_threshold,
    decision_curve,
    delong_test,
    evaluate_classification,
    logistic_regression,
)

#: Columns of the long prediction table.
PREDICTION_COLUMNS = ("cohort", "fold", "patient_id", "centre", "phase", "model", "prob", "label")
#: Decision-curve thresholds (the paper reports 6-21%).
DCA_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.51, 0.05), 2))


def _check(pred: pd.DataFrame) -> None:
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise ValueError(f"pred: columns {missing} are missing; need {list(PREDICTION_COLUMNS)}")


def _both_classes(label: np.ndarray, k: int = 2) -> bool:
    return int(label.sum()) >= k and int((1 - label).sum()) >= k


def phase_metrics(pred: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUROC and AUPRC with bootstrap intervals per cohort, phase and model.

    Returns:
        One row per (cohort, phase, model): ``n``, ``n_pcr``, ``auroc``, ``auroc_low``,
        ``auroc_high``, ``auprc``, ``auprc_low``, ``auprc_high`` (NaN with fewer than two
        patients of a class).
    """
    _check(pred)
    rows = []
    for (cohort, phase, model), g in pred.dropna(subset=["prob"]).groupby(
        ["cohort", "phase", "model"], sort=False
    ):
        y, p = g["label"].to_numpy(np.int64), g["prob"].to_numpy(np.float64)
        row = {"cohort": cohort, "phase": phase, "model": model, "n": len(g), "n_pcr": int(y.sum())}
        if _both_classes(y):
            m = evaluate_classification(p, y, p, y, n_boot=n_boot, seed=seed)
            for name in ("auroc", "auprc"):
                row.update(
                    {
                        name: m[name],
                        f"{name}_low": m[f"{name}_ci_low"],
                        f"{name}_high": m[f"{name}_ci_high"],
                    }
                )
        rows.append(row)
    return pd.DataFrame(rows)


def delong_table(pred: pd.DataFrame, model: str, references: Sequence[str]) -> pd.DataFrame:
    """DeLong tests of ``model`` against each reference, per cohort and phase, on the patients
    with both predictions.

    Returns:
        Rows ``cohort, phase, model, reference, n, auc_model, auc_reference, difference,
        ci_low, ci_high, p``.
    """
    _check(pred)
    wide = pred.pivot_table(
        index=["cohort", "phase", "patient_id", "label"], columns="model", values="prob"
    ).reset_index()
    rows = []
    for (cohort, phase), g in wide.groupby(["cohort", "phase"], sort=False):
        for ref in references:
            if model not in g or ref not in g:
                continue
            both = g.dropna(subset=[model, ref])
            y = both["label"].to_numpy(np.int64)
            if not _both_classes(y):
                continue
            c = delong_test(y, both[model].to_numpy(), both[ref].to_numpy())
            rows.append(
                {
                    "cohort": cohort,
                    "phase": phase,
                    "model": model,
                    "reference": ref,
                    "n": len(both),
                    "auc_model": c.estimate_a,
                    "auc_reference": c.estimate_b,
                    "difference": c.difference,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "p": c.p_value,
                }
            )
    return pd.DataFrame(rows)


def decision_curves(
    pred: pd.DataFrame,
    phases: Sequence[str],
    models: Sequence[str],
    *,
    thresholds: Sequence[float] = DCA_THRESHOLDS,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[tuple[str, str], dict]:
    """Decision curves per (cohort, phase): model -> :class:`~radiograph.stats.DecisionCurve`
    (module docstring: non-pCR before the last phase, pCR at the last), per 1,000 patients."""
    _check(pred)
    out: dict[tuple[str, str], dict] = {}
    for (cohort, phase), g in pred.dropna(subset=["prob"]).groupby(["cohort", "phase"], sort=False):
        last = phase == phases[-1]
        curves = {}
        for model in models:
            m = g[g["model"] == model]
            if len(m) < 4:
                continue
            y, p = m["label"].to_numpy(np.int64), m["prob"].to_numpy(np.float64)
            if not last:
                y, p = 1 - y, 1.0 - p
            curves[model] = decision_curve(y, p, thresholds, n_boot=n_boot, seed=seed, per=1000)
        if curves:
            out[(cohort, phase)] = curves
    return out


def decision_table(curves: Mapping[tuple[str, str], Mapping]) -> pd.DataFrame:
    """Rows ``cohort, phase, model, threshold, net_benefit, treat_all,
    interventions_avoided_per_1000`` (with bootstrap bands) from :func:`decision_curves`."""
    frames = []
    for (cohort, phase), by_model in curves.items():
        for model, curve in by_model.items():
            frame = curve.to_frame().rename(
                columns=lambda c: c.replace(
                    "interventions_avoided", "interventions_avoided_per_1000"
                )
            )
            frames.append(frame.assign(cohort=cohort, phase=phase, model=model))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    first = ["cohort", "phase", "model"]
    return table[first + [c for c in table.columns if c not in first]]


def operating_points(
    pred: pd.DataFrame, validation: pd.DataFrame, phases: Sequence[str], models: Sequence[str]
) -> pd.DataFrame:
    """The paper's operating points with thresholds from inner-validation predictions.

    Before the last phase: the highest threshold with validation sensitivity 1 (no pCR patient
    missed), then the test specificity (non-pCR patients correctly identified). At the last
    phase: the lowest threshold with validation specificity 1, then the test sensitivity. Each
    fold's threshold applies to that fold's test patients (external cohorts: the mean of the
    fold probabilities against the mean fold threshold).

    Args:
        pred: test predictions (:data:`PREDICTION_COLUMNS`).
        validation: inner-validation predictions, same columns (``cohort`` ignored).
    """
    _check(pred)
    _check(validation)
    rows = []
    for phase in phases:
        last = phase == phases[-1]
        rule = "specificity" if last else "sensitivity"
        for model in models:
            v = validation[(validation["phase"] == phase) & (validation["model"] == model)]
            v = v.dropna(subset=["prob"])
            cuts = {}
            for fold, g in v.groupby("fold"):
                y = g["label"].to_numpy(np.int64)
                if y.min() != y.max():
                    cuts[fold] = choose_threshold(y, g["prob"].to_numpy(), rule, target=1.0)
            if not cuts:
                continue
            finite = [c for c in cuts.values() if math.isfinite(c)]
            mean_cut = float(np.mean(finite)) if finite else math.inf
            t = pred[(pred["phase"] == phase) & (pred["model"] == model)].dropna(subset=["prob"])
            for cohort, g in t.groupby("cohort", sort=False):
                cut = g["fold"].map(cuts).fillna(mean_cut).to_numpy(np.float64)
                # predicted positive when prob >= its own fold's threshold: prob - cut >= 0
                margin = np.where(np.isfinite(cut), g["prob"].to_numpy() - cut, -1.0)
                m = binary_metrics(g["label"].to_numpy(np.int64), margin, 0.0)
                kept = m.specificity if not last else m.sensitivity
                fixed = "sensitivity" if not last else "specificity"
                rows.append(
                    {
                        "cohort": cohort,
                        "phase": phase,
                        "model": model,
                        "rule": f"validation {fixed} = 1",
                        "n": len(g),
                        f"test_{fixed}": getattr(m, fixed).estimate,
                        "reported": "specificity" if not last else "sensitivity",
                        "value": kept.estimate,
                        "ci_low": kept.ci_low,
                        "ci_high": kept.ci_high,
                    }
                )
    return pd.DataFrame(rows)


def subgroup_odds_ratios(
    table: pd.DataFrame, label: np.ndarray, variables: Sequence[ClinicalVariable]
) -> pd.DataFrame:
    """Odds of pCR by level of each categorical or ordinal variable (univariable logistic
    model, the most common level as the reference; blank cells as ``Unknown``).

    Returns:
        Rows ``variable, level, reference, n, pcr_rate, odds_ratio, ci_low, ci_high, p``.
    """
    y = np.asarray(label, dtype=np.int64)
    if y.shape != (len(table),):
        raise ValueError(f"label: shape {y.shape} for {len(table)} rows")
    rows = []
    for var in variables:
        if var.kind == "continuous":
            continue
        cells = table[var.name].astype(str).str.strip().replace("", UNKNOWN)
        counts = cells.value_counts()
        reference = str(counts.index[0])
        frame = pd.DataFrame({"level": cells.to_numpy(), "pcr": y})
        try:
            fit = logistic_regression(frame, "pcr", ["level"], categorical={"level": reference})
        except ValueError:
            continue  # a level with a single outcome class (separation): no finite OR
        for _, term in fit.table[fit.table["covariate"] == "level"].iterrows():
            level = term["term"][len("level[") : -1]
            rows.append(
                {
                    "variable": var.name,
                    "level": level,
                    "reference": reference,
                    "n": int(counts[level]),
                    "pcr_rate": float(y[cells == level].mean()),
                    "odds_ratio": term["odds_ratio"],
                    "ci_low": term["ci_low"],
                    "ci_high": term["ci_high"],
                    "p": term["p_value"],
                }
            )
    return pd.DataFrame(rows)
