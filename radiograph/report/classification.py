"""A classification study's statistics: AUROC with DeLong intervals, DeLong comparisons,
binary metrics at the training folds' Youden thresholds, calibration and decision curves.

Inputs are the study's saved out-of-fold predictions in long form (one row per repeat,
modality set, aggregator, fold, classifier and subject: :data:`PROBABILITY_COLUMNS`, the
predicted probability of class 1 in ``prob``). Every number comes from
:mod:`radiograph.stats`; this module decides what is compared with what, on the pooled
out-of-fold test predictions of each repeat:

- :func:`pooled_auc`: AUROC of each (aggregator, classifier) with DeLong's interval.
- :func:`auc_comparisons`: every pair of aggregators, per classifier, on the subjects both
  predicted: DeLong's paired test.
- :func:`delong_p_matrix`: DeLong p-values between every (aggregator, classifier) pair.
- :func:`threshold_metrics`: accuracy, sensitivity, specificity, PPV, NPV and F1 with Wilson
  intervals, each test subject classified at the Youden threshold of its own fold's training
  predictions (never a threshold seen on test data).
- :func:`calibration_summary`: calibration intercept (in the large) and slope,
  Hosmer-Lemeshow, Brier and scaled Brier.
- :func:`decision_curves`: net benefit against treat-all and treat-none with bootstrap bands.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from radiograph.stats.calibration import (
    CalibrationCurve,
    brier_score,
    calibration_curve,
    calibration_intercept_slope,
    hosmer_lemeshow,
    scaled_brier,
)
from radiograph.stats.discrimination import (
    auc_ci,
    binary_metrics,
    choose_threshold,
    delong_matrix,
    delong_test,
)
from radiograph.stats.utility import DecisionCurve, decision_curve

PROBABILITY_COLUMNS = (
    "seed",
    "modality",
    "aggregator",
    "fold",
    "model",
    "subject_id",
    "patient_id",
    "split",
    "prob",
    "label",
)
GROUP = ["seed", "modality", "aggregator", "model"]
EPSILON = 1e-6
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] where a logit is taken (calibration):
a forest's leaf frequencies reach 0 and 1 exactly."""


def pooled_auc(probs: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """AUROC with DeLong's interval on the pooled out-of-fold test predictions.

    Returns:
        One row per (seed, modality, aggregator, model): ``auroc``, ``ci_low``, ``ci_high``,
        ``se``, ``n``, ``n_pos``, ``method``.
    """
    rows = []
    for key, block in _test_rows(probs).groupby(GROUP, sort=False):
        estimate = auc_ci(block["label"].to_numpy(), block["prob"].to_numpy(), level=level)
        rows.append(
            {
                **dict(zip(GROUP, key)),
                "auroc": estimate.estimate,
                "ci_low": estimate.ci_low,
                "ci_high": estimate.ci_high,
                "se": estimate.se,
                "n": len(block),
                "n_pos": estimate.extra["n_pos"],
                "method": estimate.method,
            }
        )
    return pd.DataFrame(rows)


def auc_comparisons(probs: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """DeLong's paired test of every pair of aggregators, per repeat, modality set and
    classifier, on the test subjects both predicted.

    Returns:
        Rows with ``seed``, ``modality``, ``model``, ``aggregator_a``, ``aggregator_b``,
        ``method``, ``c_a``, ``c_b`` (the two AUROCs), ``difference``, ``ci_low``,
        ``ci_high``, ``p_value``, ``n`` (the columns of
        :func:`radiograph.report.comparisons.aggregator_comparisons`).
    """
    rows = []
    test = _test_rows(probs)
    for (seed, modality, model), block in test.groupby(["seed", "modality", "model"], sort=False):
        wide = _wide(block, "aggregator")
        for a, b in itertools.combinations(list(pd.unique(block["aggregator"])), 2):
            pair = wide[["label", a, b]].dropna()
            result = delong_test(
                pair["label"].to_numpy(), pair[a].to_numpy(), pair[b].to_numpy(), level=level
            )
            rows.append(
                {
                    "seed": seed,
                    "modality": modality,
                    "model": model,
                    "aggregator_a": a,
                    "aggregator_b": b,
                    "method": result.method,
                    "c_a": result.estimate_a,
                    "c_b": result.estimate_b,
                    "difference": result.difference,
                    "ci_low": result.ci_low,
                    "ci_high": result.ci_high,
                    "p_value": result.p_value,
                    "n": len(pair),
                }
            )
    return pd.DataFrame(rows)


def delong_p_matrix(probs: pd.DataFrame, seed: int, modality: str) -> pd.DataFrame:
    """DeLong p-values between every (aggregator, classifier) of one repeat and modality set,
    on the test subjects all of them predicted; rows and columns named ``aggregator/model``."""
    test = _test_rows(probs)
    block = test[(test["seed"] == seed) & (test["modality"] == modality)].copy()
    block["name"] = block["aggregator"] + "/" + block["model"]
    wide = _wide(block, "name").dropna()
    scores = {name: wide[name].to_numpy() for name in wide.columns.drop("label")}
    return delong_matrix(wide["label"].to_numpy(), scores)


def threshold_metrics(probs: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Binary metrics of the pooled test predictions, each subject classified at the Youden
    threshold of its own fold's training predictions.

    A subject is predicted positive when ``prob >= t_k``, ``t_k`` the threshold of its fold
    k (:func:`radiograph.stats.discrimination.choose_threshold` on fold k's training rows);
    pooled, that is ``prob - t_k >= 0``.

    Returns:
        One row per (seed, modality, aggregator, model): the 2x2 counts and each metric with
        its Wilson interval (F1: bootstrap), and the folds' thresholds as text.
    """
    rows = []
    for key, block in probs.groupby(GROUP, sort=False):
        shifted, labels, thresholds = [], [], []
        for _, fold in block.groupby("fold", sort=True):
            train = fold[fold["split"] == "train"]
            test = fold[fold["split"] == "test"]
            threshold = choose_threshold(train["label"].to_numpy(), train["prob"].to_numpy())
            thresholds.append(threshold)
            shifted.append(test["prob"].to_numpy() - threshold)
            labels.append(test["label"].to_numpy())
        metrics = binary_metrics(
            np.concatenate(labels), np.concatenate(shifted), 0.0, level=level
        ).as_dict()
        metrics.pop("threshold")
        rows.append(
            {
                **dict(zip(GROUP, key)),
                **metrics,
                "fold_thresholds": " ".join(f"{t:.3g}" for t in thresholds),
            }
        )
    return pd.DataFrame(rows)


def calibration_summary(
    probs: pd.DataFrame, *, groups: int = 10, level: float = 0.95
) -> pd.DataFrame:
    """Calibration of the pooled test probabilities of each (aggregator, classifier).

    Returns:
        One row per (seed, modality, aggregator, model): ``intercept_in_the_large`` and
        ``slope`` with their intervals, the Hosmer-Lemeshow statistic and p-value
        (``groups`` groups), ``brier`` and ``scaled_brier``. A group whose probabilities are
        constant or separate the classes has NaN intercept and slope.
    """
    rows = []
    for key, block in _test_rows(probs).groupby(GROUP, sort=False):
        label = block["label"].to_numpy()
        prob = np.clip(block["prob"].to_numpy(float), EPSILON, 1.0 - EPSILON)
        row = {**dict(zip(GROUP, key)), "n": len(block)}
        try:
            fit = calibration_intercept_slope(label, prob, level=level)
            for name in ("intercept_in_the_large", "slope"):
                estimate = getattr(fit, name)
                row.update(
                    {
                        name: estimate.estimate,
                        f"{name}_ci_low": estimate.ci_low,
                        f"{name}_ci_high": estimate.ci_high,
                    }
                )
        except ValueError as err:  # constant or separating probabilities
            row["calibration_note"] = str(err)
        hl = hosmer_lemeshow(label, prob, g=groups)
        row.update(
            {
                "hosmer_lemeshow": hl.statistic,
                "hosmer_lemeshow_df": hl.df,
                "hosmer_lemeshow_p": hl.p_value,
                "brier": brier_score(label, prob),
                "scaled_brier": scaled_brier(label, prob),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_curves(
    probs: pd.DataFrame,
    seed: int,
    modality: str,
    model: str,
    *,
    n_bins: int = 10,
    level: float = 0.95,
) -> dict[str, CalibrationCurve]:
    """Per aggregator, the calibration curve (quantile bins) of ``model``'s pooled test
    probabilities in one repeat and modality set."""
    chosen = _chosen(probs, seed, modality, model)
    return {
        aggregator: calibration_curve(
            block["label"].to_numpy(), block["prob"].to_numpy(), n_bins=n_bins, level=level
        )
        for aggregator, block in chosen.groupby("aggregator", sort=False)
    }


def decision_curves(
    probs: pd.DataFrame,
    seed: int,
    modality: str,
    model: str,
    thresholds: Sequence[float],
    *,
    n_boot: int = 500,
    boot_seed: int = 0,
    level: float = 0.95,
) -> dict[str, DecisionCurve]:
    """Per aggregator, the decision curve of ``model``'s pooled test probabilities in one
    repeat and modality set, with patient-level bootstrap bands."""
    chosen = _chosen(probs, seed, modality, model)
    return {
        aggregator: decision_curve(
            block["label"].to_numpy(),
            block["prob"].to_numpy(),
            thresholds,
            n_boot=n_boot,
            seed=boot_seed,
            level=level,
            patient_ids=block["patient_id"].to_numpy(),
        )
        for aggregator, block in chosen.groupby("aggregator", sort=False)
    }


def _chosen(probs: pd.DataFrame, seed: int, modality: str, model: str) -> pd.DataFrame:
    test = _test_rows(probs)
    return test[(test["seed"] == seed) & (test["modality"] == modality) & (test["model"] == model)]


def _test_rows(probs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PROBABILITY_COLUMNS if c not in probs.columns]
    if missing:
        raise ValueError(f"probs: missing column(s) {missing}")
    return probs[probs["split"] == "test"]


def _wide(block: pd.DataFrame, column: str) -> pd.DataFrame:
    """Subjects x ``column`` values of ``prob``, with the subjects' labels."""
    wide = block.pivot_table(index="subject_id", columns=column, values="prob", aggfunc="first")
    labels = block.drop_duplicates("subject_id").set_index("subject_id")["label"]
    wide.insert(0, "label", labels.reindex(wide.index).astype(int))
    return wide.sort_index()
