"""The study's statistics: C-index intervals, paired comparisons of aggregators, the corrected
resampled t-test over repeated cross-validation, and risk groups per fold.

Inputs are the study's saved predictions in long form (one row per repeat, modality set,
aggregator, fold, baseline model and subject: :data:`RISK_COLUMNS`); outputs are tables. Every
number comes from :mod:`radiograph.stats`; this module only decides what is compared with
what:

- :func:`pooled_concordance`: Harrell's C of each (aggregator, baseline model) on the pooled
  out-of-fold test predictions of one repeat, with a patient-level bootstrap interval; the
  ``avg`` row is the mean over the baseline models, its interval from the same resamples.
- :func:`aggregator_comparisons`: every pair of aggregators on the same test subjects, per
  baseline model (Kang et al. 2015's one-shot test and a paired bootstrap) and for the
  average over models (paired bootstrap).
- :func:`cross_validated_comparisons`: per pair of aggregators, the per-fold paired
  differences of the C-index over every repeat and fold with the corrected resampled t-test
  of Nadeau & Bengio (2003).
- :func:`fold_risk_groups`: each fold's test subjects split at a threshold fixed on that
  fold's training risks (mean, median, or the maximally selected log-rank cut-point of the
  training fold), with the hazard ratio high vs low per fold and over the pooled folds.

Pooling out-of-fold predictions compares risks of models fitted on different training folds
on one scale; with five folds of one cohort the scales agree closely for the linear models,
but the per-fold and cross-validated tables do not rest on it.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radiograph.stats.comparison import (
    compare_concordance,
    compare_cv,
    paired_bootstrap_difference,
)
from radiograph.stats.concordance import bootstrap_weights, weighted_concordance
from radiograph.stats.cutpoints import optimal_cutpoint
from radiograph.stats.resampling import percentile_interval
from radiograph.stats.results import Comparison

RISK_COLUMNS = (
    "seed",
    "modality",
    "aggregator",
    "fold",
    "model",
    "subject_id",
    "patient_id",
    "split",
    "risk",
    "time",
    "event",
)
AVG = "avg"
THRESHOLD_RULES = ("mean", "median", "optimal")


def pooled_concordance(
    risks: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Harrell's C on the pooled out-of-fold test predictions, with bootstrap intervals.

    Args:
        risks: long predictions (:data:`RISK_COLUMNS`); only ``split == "test"`` rows are used.
        n_boot: patient-level bootstrap resamples (the same resamples for every model of a
            group, so the ``avg`` row's interval is that of the mean over models).
        seed: bootstrap seed.
        level: confidence level.

    Returns:
        One row per (seed, modality, aggregator, model) and per (seed, modality, aggregator,
        ``avg``): ``c_index``, ``ci_low``, ``ci_high``, ``n`` (test subjects), ``method``.
    """
    rows = []
    test = _test_rows(risks)
    for (rep, modality, aggregator), block in test.groupby(
        ["seed", "modality", "aggregator"], sort=False
    ):
        models, time, event, matrix, patients = _risk_matrix(block)
        point = weighted_concordance(time, event, matrix, np.ones((1, time.shape[0])))[:, 0]
        weights = bootstrap_weights(patients, time.shape[0], n_boot, seed)
        replicates = weighted_concordance(time, event, matrix, weights)
        for name, c, reps in [
            *zip(models, point, replicates),
            (AVG, point.mean(), replicates.mean(axis=0)),
        ]:
            low, high = percentile_interval(reps, level)
            rows.append(
                {
                    "seed": rep,
                    "modality": modality,
                    "aggregator": aggregator,
                    "model": name,
                    "c_index": c,
                    "ci_low": low,
                    "ci_high": high,
                    "n": time.shape[0],
                    "method": f"bootstrap-percentile (B={n_boot})",
                }
            )
    return pd.DataFrame(rows)


def aggregator_comparisons(
    risks: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Every pair of aggregators compared on the same test subjects, per repeat and modality.

    Per baseline model: Kang et al. (2015)'s one-shot nonparametric test and a paired
    patient-level bootstrap of the difference; for the mean over baseline models
    (``model == "avg"``): the paired bootstrap. Only subjects predicted by both aggregators
    enter a comparison.

    Returns:
        One row per (seed, modality, model, aggregator_a, aggregator_b, method):
        ``c_a``, ``c_b``, ``difference`` (a - b), ``ci_low``, ``ci_high``, ``p_value``, ``n``.
    """
    rows = []
    test = _test_rows(risks)
    for (rep, modality), block in test.groupby(["seed", "modality"], sort=False):
        aggregators = list(pd.unique(block["aggregator"]))
        for a, b in itertools.combinations(aggregators, 2):
            pair = block[block["aggregator"].isin([a, b])]
            models_a, time, event, matrix_a, patients = _risk_matrix(
                pair[pair["aggregator"] == a], subjects=_shared_subjects(pair, a, b)
            )
            models_b, _, _, matrix_b, _ = _risk_matrix(
                pair[pair["aggregator"] == b], subjects=_shared_subjects(pair, a, b)
            )
            models = [m for m in models_a if m in models_b]
            ra = matrix_a[[models_a.index(m) for m in models]]
            rb = matrix_b[[models_b.index(m) for m in models]]
            key = {"seed": rep, "modality": modality, "aggregator_a": a, "aggregator_b": b}
            for m, risk_a, risk_b in zip(models, ra, rb):
                for result in (
                    compare_concordance(time, event, risk_a, risk_b, level=level),
                    paired_bootstrap_difference(
                        time,
                        event,
                        risk_a,
                        risk_b,
                        n_boot=n_boot,
                        seed=seed,
                        patient_ids=patients,
                        level=level,
                    ),
                ):
                    rows.append({**key, "model": m, **_comparison_row(result)})
            average = paired_bootstrap_difference(
                time, event, ra, rb, n_boot=n_boot, seed=seed, patient_ids=patients, level=level
            )
            rows.append({**key, "model": AVG, **_comparison_row(average)})
    columns = [
        "seed",
        "modality",
        "model",
        "aggregator_a",
        "aggregator_b",
        "method",
        "c_a",
        "c_b",
        "difference",
        "ci_low",
        "ci_high",
        "p_value",
        "n",
    ]
    return pd.DataFrame(rows, columns=columns)


def cross_validated_comparisons(
    results: pd.DataFrame, fold_sizes: pd.DataFrame, *, metric: str = "c_index", level: float = 0.95
) -> pd.DataFrame:
    """Per pair of aggregators, the paired per-fold differences of ``metric`` over every
    repeat and fold, with the corrected resampled t-test (Nadeau & Bengio 2003).

    Args:
        results: long fold results (columns ``seed``, ``fold``, ``modality``, ``aggregator``,
            ``model``, ``metric``, ``value``).
        fold_sizes: columns ``seed``, ``fold``, ``n_train``, ``n_test``; the test's
            correction uses their means.
        metric: the metric compared.
        level: confidence level.

    Returns:
        One row per (modality, model incl. ``avg``, aggregator_a, aggregator_b): mean of each,
        ``difference``, ``ci_low``, ``ci_high``, ``p_value``, ``t``, ``n`` (paired folds),
        ``method``.
    """
    values = results[results["metric"] == metric]
    per_fold = values.pivot_table(
        index=["modality", "seed", "fold", "model"], columns="aggregator", values="value"
    )
    average = per_fold.groupby(level=["modality", "seed", "fold"]).mean()
    average["model"] = AVG
    average = average.set_index("model", append=True)
    table = pd.concat([per_fold, average])
    n_train = float(fold_sizes["n_train"].mean())
    n_test = float(fold_sizes["n_test"].mean())
    order = list(pd.unique(values["aggregator"]))
    rows = []
    for (modality, model), block in table.groupby(level=["modality", "model"], sort=False):
        aggregators = [a for a in order if a in block.columns and block[a].notna().any()]
        for a, b in itertools.combinations(aggregators, 2):
            both = block[[a, b]].dropna()
            if len(both) < 2:
                continue
            result = compare_cv(
                both[a].to_numpy(), both[b].to_numpy(), n_train, n_test, level=level
            )
            rows.append(
                {
                    "modality": modality,
                    "model": model,
                    "aggregator_a": a,
                    "aggregator_b": b,
                    **_comparison_row(result),
                }
            )
    columns = [
        "modality",
        "model",
        "aggregator_a",
        "aggregator_b",
        "method",
        "c_a",
        "c_b",
        "difference",
        "ci_low",
        "ci_high",
        "p_value",
        "n",
    ]
    return pd.DataFrame(rows, columns=columns)


def fold_risk_groups(
    risks: pd.DataFrame,
    model: str,
    *,
    rule: str = "mean",
    min_fraction: float = 0.1,
    level: float = 0.95,
) -> pd.DataFrame:
    """Hazard ratio of the high- vs low-risk test subjects per fold, the threshold fixed on
    the fold's training risks; plus one pooled row per group over its folds.

    Args:
        risks: long predictions with train and test rows (:data:`RISK_COLUMNS`).
        model: the baseline model whose risks are split.
        rule: ``"mean"`` or ``"median"`` of the training risks (the paper), or ``"optimal"``:
            the maximally selected log-rank cut-point of the training fold
            (:func:`radiograph.stats.cutpoints.optimal_cutpoint`, ``min_fraction`` per side).
        level: confidence level of the hazard-ratio intervals.

    Returns:
        One row per (seed, modality, aggregator, fold) and per (seed, modality, aggregator)
        with ``fold == "pooled"``: ``threshold``, ``n_low``, ``n_high``, ``hazard_ratio``,
        ``hr_low``, ``hr_high``, ``logrank_p``.
    """
    from sksurv.util import Surv

    from radiograph.survival.risk_groups import compare_groups

    chosen = risks[risks["model"] == model]
    rows = []
    for key, block in chosen.groupby(["seed", "modality", "aggregator"], sort=False):
        shifted, pooled_time, pooled_event = [], [], []
        for fold, fold_rows in block.groupby("fold", sort=True):
            train = fold_rows[fold_rows["split"] == "train"]
            test = fold_rows[fold_rows["split"] == "test"]
            threshold = training_threshold(train, rule, min_fraction)
            high = test["risk"].to_numpy() > threshold
            time, event = test["time"].to_numpy(float), test["event"].to_numpy(bool)
            rows.append(
                _group_row(key, fold, threshold, high, time, event, level, compare_groups, Surv)
            )
            shifted.append(high)
            pooled_time.append(time)
            pooled_event.append(event)
        rows.append(
            _group_row(
                key,
                "pooled",
                np.nan,
                np.concatenate(shifted),
                np.concatenate(pooled_time),
                np.concatenate(pooled_event),
                level,
                compare_groups,
                Surv,
            )
        )
    return pd.DataFrame(rows)


def training_threshold(train: pd.DataFrame, rule: str, min_fraction: float = 0.1) -> float:
    """The risk threshold of one fold from its training rows only (columns ``risk``, ``time``,
    ``event``): their mean, median, or maximally selected log-rank cut-point."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule: must be one of {THRESHOLD_RULES}, got {rule!r}")
    risk = train["risk"].to_numpy(float)
    if rule == "mean":
        return float(np.mean(risk))
    if rule == "median":
        return float(np.median(risk))
    cut = optimal_cutpoint(
        train["time"].to_numpy(float),
        train["event"].to_numpy(bool),
        risk,
        min_fraction=min_fraction,
    )
    return float(cut.cutpoint)


def _group_row(
    key: tuple,
    fold,
    threshold: float,
    high: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    level: float,
    compare_groups,
    Surv,
) -> dict:
    seed, modality, aggregator = key
    row = {
        "seed": seed,
        "modality": modality,
        "aggregator": aggregator,
        "fold": fold,
        "threshold": threshold,
        "n_low": int((~high).sum()),
        "n_high": int(high.sum()),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        _, p, hr, low, upper = compare_groups(high, Surv.from_arrays(event, time), level=level)
    return {**row, "hazard_ratio": hr, "hr_low": low, "hr_high": upper, "logrank_p": p}


def _test_rows(risks: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RISK_COLUMNS if c not in risks.columns]
    if missing:
        raise ValueError(f"risks: missing column(s) {missing}")
    return risks[risks["split"] == "test"]


def _shared_subjects(pair: pd.DataFrame, a: str, b: str) -> list[str]:
    ids_a = set(pair.loc[pair["aggregator"] == a, "subject_id"])
    ids_b = set(pair.loc[pair["aggregator"] == b, "subject_id"])
    return sorted(ids_a & ids_b)


def _risk_matrix(
    block: pd.DataFrame, subjects: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(models, time, event, (n_models, n_subjects) risks, patient ids) of one group, one
    column per subject (sorted), one row per baseline model with a risk for every subject."""
    wide = block.pivot_table(index="subject_id", columns="model", values="risk", aggfunc="first")
    info = block.drop_duplicates("subject_id").set_index("subject_id")
    if subjects is not None:
        wide = wide.reindex(subjects)
    wide = wide.dropna(axis=1, how="any").sort_index()
    info = info.loc[wide.index]
    return (
        list(wide.columns),
        info["time"].to_numpy(float),
        info["event"].to_numpy(bool),
        wide.to_numpy(float).T,
        info["patient_id"].astype(str).to_numpy(),
    )


def _comparison_row(result: Comparison) -> dict:
    return {
        "method": result.method,
        "c_a": result.estimate_a,
        "c_b": result.estimate_b,
        "difference": result.difference,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "n": result.n,
    }
