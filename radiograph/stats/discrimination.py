"""Discrimination of a binary outcome: the AUROC with DeLong or bootstrap intervals, DeLong's
tests of two AUCs, the 2x2 metrics at a threshold with Wilson intervals, thresholds chosen on
training data, and the fold-level classification metrics of the study.

Conventions (all functions):

- ``label`` is 0/1 (or bool), 1 = positive ("case"); ``score`` is higher for positives. The
  direction is never flipped (pROC's ``direction="auto"`` would flip a score whose negatives
  have the higher median; here that gives an AUC below 0.5).
- The AUROC is the Mann-Whitney statistic P(score_pos > score_neg) + 0.5 P(equal).
- A subject is predicted positive when ``score >= threshold``. Thresholds are observed scores
  (or ``inf``); pROC reports the midpoint between two consecutive observed scores instead,
  which splits the subjects in the same way: pROC's threshold (v_k + v_(k+1)) / 2 gives the
  metrics of the threshold v_(k+1) here.
- Bootstrap resamples are drawn over patients with
  :func:`radiograph.stats.resampling.bootstrap_indices` and evaluated all at once: each resample
  is a row of multiplicities (how often each subject was drawn), so a statistic of B resamples
  is a few (B, n) array operations rather than B calls.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from radiograph.stats._checks import as_binary_label, as_vector, check_level
from radiograph.stats.resampling import (
    bootstrap_indices,
    interval,
    patient_groups,
    percentile_interval,
)
from radiograph.stats.results import Comparison, Estimate

CLASSIFICATION_METRICS = ("auroc", "auprc", "accuracy", "sensitivity", "specificity")
BINARY_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")
AUC_METHODS = ("delong", "bootstrap")
THRESHOLD_RULES = ("youden", "sensitivity", "specificity")
_BLOCK_ENTRIES = 2**22  # entries of one (resamples, subjects) block of multiplicities


# --------------------------------------------------------------------------------------------
# AUROC and DeLong
# --------------------------------------------------------------------------------------------


def auc_ci(
    label: Any,
    score: Any,
    *,
    method: str = "delong",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    patient_ids: Sequence | None = None,
    bootstrap_interval: str = "bca",
) -> Estimate:
    """AUROC with a confidence interval.

    ``method="delong"``: DeLong, DeLong & Clarke-Pearson (1988) variance
    Var = S10 / m + S01 / n, S10 and S01 the sample variances (ddof 1) of the placements of
    the m positives and the n negatives, computed in O(N log N) from midranks (Sun & Xu 2014,
    IEEE SPL 21:1389); Wald interval AUC -/+ z se clipped to [0, 1], as pROC's
    ``ci.auc(method="delong")``. A perfectly separating score has variance 0: the estimate is 1
    and the interval [1, 1] (pROC's answer), ``se`` 0. Needs two subjects of each class, one
    row per patient.

    ``method="bootstrap"``: ``n_boot`` patient-level resamples; ``bootstrap_interval`` "bca"
    (Efron 1987; acceleration from the leave-one-patient-out jackknife) or "percentile".
    Resamples that draw a single class have no AUC and are left out (``extra["n_undefined"]``);
    ``se`` is the standard deviation of the others.

    Args:
        label: (n,) 0/1 outcome, 1 = positive.
        score: (n,) scores, higher = more likely positive.
        method: "delong" or "bootstrap".
        level: confidence level.
        n_boot, seed, patient_ids, bootstrap_interval: the bootstrap (ignored by DeLong, which
            refuses ``patient_ids`` with a repeated patient).

    Returns:
        :class:`Estimate` of the AUC; ``extra`` holds ``n_pos``, ``n_neg`` (and ``n_boot``,
        ``n_undefined`` for the bootstrap).
    """
    level = check_level(level)
    label, score = _label_and_score("label", label, "score", score)
    if bootstrap_interval not in ("bca", "percentile"):
        raise ValueError(
            f"bootstrap_interval: must be 'bca' or 'percentile', got {bootstrap_interval!r}"
        )
    extra = {"n_pos": int(label.sum()), "n_neg": int((~label).sum())}
    if method == "delong":
        _one_row_per_patient(patient_ids, label.shape[0])
        return _auc_delong(label, score, level, extra)
    if method == "bootstrap":
        return _auc_bootstrap(
            label, score, level, n_boot, seed, patient_ids, bootstrap_interval, extra
        )
    raise ValueError(f"method: must be one of {AUC_METHODS}, got {method!r}")


def delong_test(label: Any, score_a: Any, score_b: Any, *, level: float = 0.95) -> Comparison:
    """DeLong's test of two correlated AUCs measured on the same subjects.

    z = (AUC_a - AUC_b) / sqrt(S_aa + S_bb - 2 S_ab), S the DeLong covariance matrix of the two
    AUCs (S10 / m + S01 / n, placements of both scores on the same subjects); two-sided normal
    p-value and Wald interval of the difference, as pROC's
    ``roc.test(method="delong", paired=TRUE)``. Identical scores (0 / 0) give z = 0, p = 1.

    Args:
        label: (n,) 0/1 outcome.
        score_a, score_b: (n,) scores of the two models on the same subjects.
        level: confidence level of the interval of the difference.

    Returns:
        :class:`Comparison` with ``difference = AUC_a - AUC_b``; ``extra["correlation"]`` is
        the DeLong correlation of the two AUCs (NaN when a variance is 0).
    """
    level = check_level(level)
    label = as_binary_label("label", label)
    scores = np.vstack(
        [
            as_vector("score_a", score_a, label.shape[0]),
            as_vector("score_b", score_b, label.shape[0]),
        ]
    )
    _two_per_class("label", label)
    auc, v10, v01 = _placements(label, scores)
    cov = _delong_covariance(v10, v01)
    variance = max(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1], 0.0)
    product = cov[0, 0] * cov[1, 1]
    correlation = float(cov[0, 1] / math.sqrt(product)) if product > 0 else math.nan
    return _wald_comparison(
        float(auc[0]),
        float(auc[1]),
        variance,
        level,
        "delong-paired",
        n=label.shape[0],
        extra={"correlation": correlation},
    )


def delong_test_unpaired(
    label_a: Any, score_a: Any, label_b: Any, score_b: Any, *, level: float = 0.95
) -> Comparison:
    """DeLong's test of two AUCs measured on independent cohorts (variances add).

    D = (AUC_a - AUC_b) / sqrt(V_a + V_b), V the DeLong variance of each AUC, referred to a t
    distribution with Welch-Satterthwaite degrees of freedom
    df = (V_a + V_b)^2 / (V_a^2 / (N_a - 1) + V_b^2 / (N_b - 1)), N the cohort sizes, as pROC's
    ``roc.test(method="delong", paired=FALSE)``; the interval of the difference uses the same
    t quantile. Two AUCs with variance 0 give p = 1 when equal, 0 otherwise.

    Returns:
        :class:`Comparison`; ``extra`` holds ``df``, ``n_a``, ``n_b``.
    """
    level = check_level(level)
    label_a, score_a = _label_and_score("label_a", label_a, "score_a", score_a)
    label_b, score_b = _label_and_score("label_b", label_b, "score_b", score_b)
    _two_per_class("label_a", label_a)
    _two_per_class("label_b", label_b)
    auc_a, var_a = _auc_and_variance(label_a, score_a)
    auc_b, var_b = _auc_and_variance(label_b, score_b)
    n_a, n_b = label_a.shape[0], label_b.shape[0]
    variance = var_a + var_b
    denominator = var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1)
    df = variance**2 / denominator if denominator > 0 else math.nan
    return _wald_comparison(
        auc_a,
        auc_b,
        variance,
        level,
        "delong-unpaired",
        n=n_a + n_b,
        df=df,
        extra={"df": df, "n_a": n_a, "n_b": n_b},
    )


def delong_matrix(label: Any, scores: Mapping[str, Any]) -> pd.DataFrame:
    """Pairwise two-sided p-values of :func:`delong_test` between several models.

    All placements are computed at once and the p-value of models i, j comes from
    S_ii + S_jj - 2 S_ij of the joint DeLong covariance matrix.

    Args:
        label: (n,) 0/1 outcome.
        scores: model name -> (n,) scores on the same subjects.

    Returns:
        A symmetric (k, k) DataFrame indexed by model name, 1 on the diagonal.
    """
    label = as_binary_label("label", label)
    if len(scores) == 0:
        raise ValueError("scores: no model given")
    names = list(scores)
    matrix = np.vstack(
        [as_vector(f"scores[{name!r}]", scores[name], label.shape[0]) for name in names]
    )
    _two_per_class("label", label)
    auc, v10, v01 = _placements(label, matrix)
    cov = _delong_covariance(v10, v01)
    diagonal = np.diag(cov)
    variance = np.maximum(diagonal[:, None] + diagonal[None, :] - 2.0 * cov, 0.0)
    p_value = _two_sided_p(auc[:, None] - auc[None, :], variance)
    return pd.DataFrame(p_value, index=names, columns=names)


def _placements(label: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong placements of k scores from midranks (Sun & Xu 2014, Algorithm 1).

    With T_Z the midranks of all N subjects, T_X those of the m positives among themselves and
    T_Y those of the n negatives among themselves:
    V10_i = (T_Z,i - T_X,i) / n (share of negatives below positive i, ties 1/2),
    V01_j = 1 - (T_Z,j - T_Y,j) / m (share of positives above negative j), AUC = mean(V10).

    Args:
        label: (N,) bool.
        scores: (k, N) float64.

    Returns:
        (k,) AUCs, (k, m) V10, (k, n) V01.
    """
    positives, negatives = scores[:, label], scores[:, ~label]
    m, n = positives.shape[1], negatives.shape[1]
    ranks = rankdata(scores, axis=1)
    v10 = (ranks[:, label] - rankdata(positives, axis=1)) / n
    v01 = 1.0 - (ranks[:, ~label] - rankdata(negatives, axis=1)) / m
    return v10.mean(axis=1), v10, v01


def _delong_covariance(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """(k, k) covariance S10 / m + S01 / n of k AUCs (DeLong et al. 1988), ddof 1."""
    m, n = v10.shape[1], v01.shape[1]
    c10 = v10 - v10.mean(axis=1, keepdims=True)
    c01 = v01 - v01.mean(axis=1, keepdims=True)
    return c10 @ c10.T / ((m - 1) * m) + c01 @ c01.T / ((n - 1) * n)


def _auc_and_variance(label: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    auc, v10, v01 = _placements(label, score[None, :])
    return float(auc[0]), float(_delong_covariance(v10, v01)[0, 0])


def _auc_delong(
    label: np.ndarray, score: np.ndarray, level: float, extra: dict[str, Any]
) -> Estimate:
    _two_per_class("label", label)
    auc, variance = _auc_and_variance(label, score)
    se = math.sqrt(max(variance, 0.0))
    half = float(norm.ppf(0.5 + level / 2.0)) * se
    return Estimate(
        auc,
        max(auc - half, 0.0),
        min(auc + half, 1.0),
        level,
        "delong",
        se=se,
        n=label.shape[0],
        extra=extra,
    )


def _auc_bootstrap(
    label: np.ndarray,
    score: np.ndarray,
    level: float,
    n_boot: int,
    seed: int,
    patient_ids: Sequence | None,
    kind: str,
    extra: dict[str, Any],
) -> Estimate:
    n = label.shape[0]
    _positive_int("n_boot", n_boot)
    ties = _tie_groups(score)

    def auc_of(weights: np.ndarray) -> dict[str, np.ndarray]:
        return {"auc": _weighted_auc(*_class_weights(label, ties, weights))}

    auc_array, v10, v01 = _placements(label, score[None, :])
    auc = float(auc_array[0])
    resamples = bootstrap_indices(patient_ids, n_boot, seed, n_rows=n)
    samples = _blockwise(auc_of, _resample_blocks(resamples, n))["auc"]

    def jackknife() -> np.ndarray:
        if len(patient_groups(patient_ids, n)) == n:  # one row per patient: closed form
            return _leave_one_out_auc(auc, v10[0], v01[0])
        return _blockwise(auc_of, _jackknife_blocks(patient_ids, n))["auc"]

    low, high = interval(kind, samples, auc, level, jackknife=jackknife)
    finite = samples[np.isfinite(samples)]
    se = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    extra = {**extra, "n_boot": int(n_boot), "n_undefined": int(n_boot - finite.size)}
    return Estimate(auc, low, high, level, f"bootstrap-{kind}", se=se, n=n, extra=extra)


def _leave_one_out_auc(auc: float, v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """(m + n,) AUCs leaving out one subject: (m AUC - V10_i) / (m - 1) without positive i,
    (n AUC - V01_j) / (n - 1) without negative j (NaN when that empties its class)."""
    m, n = v10.size, v01.size
    return np.r_[
        _share(m * auc - v10, np.full(m, m - 1.0)), _share(n * auc - v01, np.full(n, n - 1.0))
    ]


def _wald_comparison(
    a: float,
    b: float,
    variance: float,
    level: float,
    method: str,
    *,
    n: int,
    df: float | None = None,
    extra: dict[str, Any],
) -> Comparison:
    """Comparison of a - b with standard error sqrt(variance): normal (or t with ``df``)
    statistic, two-sided p-value and interval; 0 / 0 gives statistic 0 and p = 1."""
    difference = a - b
    se = math.sqrt(variance)
    statistic = float(_ratio(np.array(difference), np.array(se)))
    quantile = 0.5 + level / 2.0
    if df is None:
        p_value = float(_two_sided_p(np.array(difference), np.array(variance)))
        critical = float(norm.ppf(quantile))
    elif se == 0.0:
        p_value, critical = (1.0 if difference == 0.0 else 0.0), 0.0
    else:
        p_value = float(2.0 * student_t.sf(abs(statistic), df))
        critical = float(student_t.ppf(quantile, df))
    return Comparison(
        a,
        b,
        difference,
        difference - critical * se,
        difference + critical * se,
        p_value,
        statistic,
        level,
        method,
        se=se,
        n=n,
        extra=extra,
    )


def _ratio(difference: np.ndarray, se: np.ndarray) -> np.ndarray:
    """difference / se, with 0 / 0 = 0 (identical AUCs with no variance) and x / 0 = +-inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.true_divide(difference, se)
    return np.where((difference == 0.0) & (se == 0.0), 0.0, ratio)


def _two_sided_p(difference: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """2 (1 - Phi(|d| / sqrt(v))), 1 where d = v = 0."""
    return 2.0 * norm.sf(np.abs(_ratio(difference, np.sqrt(variance))))


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------


def choose_threshold(
    label_train: Any, score_train: Any, rule: str = "youden", target: float | None = None
) -> float:
    """A decision threshold chosen on training data (positive when ``score >= threshold``).

    Candidates are the distinct training scores and ``inf`` (everyone negative); with TPR(t)
    and FPR(t) the shares of positives and negatives scoring >= t:

    - ``"youden"``: the t maximising Youden's J = TPR - FPR (Youden 1950), the highest such t
      on ties. ``inf`` (J = 0) when no threshold beats chance. Same as the maximum of
      ``tpr - fpr`` over scikit-learn's ``roc_curve``.
    - ``"sensitivity"``: the highest t with TPR(t) >= ``target``.
    - ``"specificity"``: the lowest t with 1 - FPR(t) >= ``target`` (``inf`` when only
      calling everyone negative reaches it).

    Args:
        label_train: (n,) 0/1 training outcome (both classes needed).
        score_train: (n,) training scores.
        rule: "youden", "sensitivity" or "specificity".
        target: the sensitivity or specificity to reach, in (0, 1]; only with those rules.

    Returns:
        The threshold, in score units (an observed score or ``inf``).
    """
    label, score = _label_and_score("label_train", label_train, "score_train", score_train)
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule: must be one of {THRESHOLD_RULES}, got {rule!r}")
    if rule == "youden":
        if target is not None:
            raise ValueError("target: only used with rule 'sensitivity' or 'specificity'")
    elif target is None or not 0.0 < float(target) <= 1.0:
        raise ValueError(f"target: rule {rule!r} needs a target in (0, 1], got {target}")
    thresholds, tpr, fpr = _roc_points(label, score)
    if rule == "youden":
        return float(thresholds[np.argmax(tpr - fpr)])
    if rule == "sensitivity":
        return float(thresholds[np.argmax(tpr >= target)])
    reached = np.flatnonzero(1.0 - fpr >= target)
    return float(thresholds[reached[-1]])


def youden_threshold(score: Any, label: Any) -> float:
    """Score threshold maximising Youden's J = sensitivity + specificity - 1
    (:func:`choose_threshold` with ``rule="youden"``; note the argument order score, label).

    Returns:
        The threshold t; a subject is predicted positive when score >= t.
    """
    return choose_threshold(label, score, "youden")


def _roc_points(label: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (inf, then the distinct scores, descending) with the TPR and FPR
    of ``score >= t`` at each (counts divided as scikit-learn's ``roc_curve`` does)."""
    thresholds = np.r_[np.inf, np.unique(score)[::-1]]
    positives, negatives = np.sort(score[label]), np.sort(score[~label])
    tp = positives.size - np.searchsorted(positives, thresholds, side="left")
    fp = negatives.size - np.searchsorted(negatives, thresholds, side="left")
    return thresholds, tp / positives.size, fp / negatives.size


# --------------------------------------------------------------------------------------------
# 2x2 metrics at a threshold
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryMetrics:
    """The 2x2 table of ``score >= threshold`` against the outcome, and its proportions.

    Attributes:
        threshold: the threshold applied.
        accuracy, sensitivity, specificity, ppv, npv, f1: :class:`Estimate` of each, NaN (with
            the reason in ``method``) when its denominator is 0.
        tp, fp, tn, fn: counts of the 2x2 table.
    """

    threshold: float
    accuracy: Estimate
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    f1: Estimate
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict[str, float]:
        """Flat ``{"threshold", "tp", "fp", "tn", "fn", "<metric>", "<metric>_ci_low",
        "<metric>_ci_high"}`` for a results table."""
        out: dict[str, float] = {
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
        }
        for name in BINARY_METRICS:
            metric = getattr(self, name)
            out[name] = metric.estimate
            out[f"{name}_ci_low"] = metric.ci_low
            out[f"{name}_ci_high"] = metric.ci_high
        return out


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> Estimate:
    """Proportion ``successes / trials`` with the Wilson (1927) score interval
    (R's ``prop.test(x, n, correct=FALSE)$conf.int``):

    (p + z^2 / 2n -/+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n).

    ``trials = 0`` gives NaN throughout, ``method`` saying so.
    """
    level = check_level(level)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes: must lie in [0, trials = {trials}], got {successes}")
    extra = {"successes": int(successes), "trials": int(trials)}
    if trials == 0:
        return Estimate(
            math.nan, math.nan, math.nan, level, "wilson (undefined: 0 trials)", n=0, extra=extra
        )
    p = successes / trials
    z = float(norm.ppf(0.5 + level / 2.0))
    centre = p + z**2 / (2 * trials)
    half = z * math.sqrt(p * (1.0 - p) / trials + z**2 / (4 * trials**2))
    scale = 1.0 + z**2 / trials
    low = 0.0 if successes == 0 else (centre - half) / scale
    high = 1.0 if successes == trials else (centre + half) / scale
    return Estimate(
        p,
        float(low),
        float(high),
        level,
        "wilson",
        se=math.sqrt(p * (1.0 - p) / trials),
        n=int(trials),
        extra=extra,
    )


def binary_metrics(
    label: Any,
    score: Any,
    threshold: float,
    *,
    level: float = 0.95,
    method: str = "wilson",
    n_boot: int = 2000,
    seed: int = 0,
    patient_ids: Sequence | None = None,
) -> BinaryMetrics:
    """Accuracy, sensitivity, specificity, PPV, NPV and F1 of ``score >= threshold``.

    ``method="wilson"``: Wilson score intervals (:func:`wilson_interval`) of the five
    proportions, subjects taken as independent. F1 = 2 TP / (2 TP + FP + FN) is not a
    proportion of one denominator and has no Wilson form: its interval is always the
    percentile interval of the patient-level bootstrap. ``method="bootstrap"``: percentile
    intervals of ``n_boot`` patient-level resamples for all six (resamples where a metric is
    undefined are left out of its interval).

    A metric whose denominator is 0 (sensitivity: no positives; specificity: no negatives;
    PPV: no predicted positives; NPV: no predicted negatives; F1: neither positives nor
    predicted positives) is NaN, the reason in its ``method``.

    Args:
        label: (n,) 0/1 outcome (a single class is allowed).
        score: (n,) scores.
        threshold: chosen beforehand, on training data (:func:`choose_threshold`).
        level: confidence level.
        method: "wilson" or "bootstrap".
        n_boot, seed, patient_ids: the bootstrap.
    """
    level = check_level(level)
    label = as_binary_label("label", label, both_classes=False)
    score = as_vector("score", score, label.shape[0])
    if method not in ("wilson", "bootstrap"):
        raise ValueError(f"method: must be 'wilson' or 'bootstrap', got {method!r}")
    if math.isnan(float(threshold)):
        raise ValueError("threshold: is NaN")
    _positive_int("n_boot", n_boot)
    predicted = score >= threshold
    counts = _table(label, predicted, np.ones((1, label.shape[0])))
    tp, fp, tn, fn = (int(counts[key][0]) for key in ("tp", "fp", "tn", "fn"))
    point = {name: float(value[0]) for name, value in _table_metrics(counts).items()}
    resamples = bootstrap_indices(patient_ids, n_boot, seed, n_rows=label.shape[0])
    samples = _blockwise(
        lambda w: _table_metrics(_table(label, predicted, w)),
        _resample_blocks(resamples, label.shape[0]),
    )
    successes_trials = {
        "accuracy": (tp + tn, tp + fp + tn + fn),
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
    }
    metrics = {}
    for name in BINARY_METRICS:
        if method == "wilson" and name != "f1":
            metrics[name] = wilson_interval(*successes_trials[name], level=level)
        else:
            metrics[name] = _bootstrap_estimate(
                point[name], samples[name], level, label.shape[0], n_boot
            )
        if math.isnan(point[name]):
            metrics[name] = _undefined(metrics[name], _UNDEFINED[name])
    return BinaryMetrics(float(threshold), tp=tp, fp=fp, tn=tn, fn=fn, **metrics)


_UNDEFINED = {
    "accuracy": "no subjects",
    "sensitivity": "no positives",
    "specificity": "no negatives",
    "ppv": "no predicted positives",
    "npv": "no predicted negatives",
    "f1": "neither positives nor predicted positives",
}


def _table(label: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """(B,) weighted counts tp, fp, tn, fn of B rows of multiplicities (B, n)."""
    cells = {
        "tp": label & predicted,
        "fp": ~label & predicted,
        "tn": ~label & ~predicted,
        "fn": label & ~predicted,
    }
    return {name: weights @ cell.astype(np.float64) for name, cell in cells.items()}


def _table_metrics(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The six metrics of (B,) counts, NaN where a denominator is 0."""
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    return {
        "accuracy": _share(tp + tn, tp + fp + tn + fn),
        "sensitivity": _share(tp, tp + fn),
        "specificity": _share(tn, tn + fp),
        "ppv": _share(tp, tp + fp),
        "npv": _share(tn, tn + fn),
        "f1": _share(2.0 * tp, 2.0 * tp + fp + fn),
    }


def _bootstrap_estimate(
    estimate: float, samples: np.ndarray, level: float, n: int, n_boot: int
) -> Estimate:
    low, high = percentile_interval(samples, level)
    finite = samples[np.isfinite(samples)]
    se = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    return Estimate(
        estimate,
        low,
        high,
        level,
        "bootstrap-percentile",
        se=se,
        n=n,
        extra={"n_boot": int(n_boot), "n_undefined": int(n_boot - finite.size)},
    )


def _undefined(estimate: Estimate, reason: str) -> Estimate:
    return Estimate(
        math.nan,
        math.nan,
        math.nan,
        estimate.level,
        f"{estimate.method} (undefined: {reason})",
        n=estimate.n,
        extra=estimate.extra,
    )


# --------------------------------------------------------------------------------------------
# Fold-level classification metrics of the study
# --------------------------------------------------------------------------------------------


def evaluate_classification(
    score_train: Any,
    label_train: Any,
    score_test: Any,
    label_test: Any,
    *,
    patient_ids: Sequence | None = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Binary classification metrics of one outer fold, threshold fixed on the training fold.

    Args:
        score_train: (n_train,) positive-class scores of the training fold.
        label_train: (n_train,) 0/1 labels of the training fold (both classes needed).
        score_test: (n_test,) positive-class scores of the test fold.
        label_test: (n_test,) 0/1 labels of the test fold.
        patient_ids: (n_test,) patient of each test row; default one patient per row.
        n_boot: patient-level bootstrap resamples (0 = no intervals).
        seed: bootstrap seed.
        level: confidence level of the percentile intervals.

    Returns:
        ``auroc`` (Mann-Whitney), ``auprc`` (average precision, sum over distinct thresholds
        of the recall step times the precision, as scikit-learn's
        ``average_precision_score``), and ``accuracy``, ``sensitivity``, ``specificity`` at
        the Youden threshold of the training fold (:func:`youden_threshold`); with
        ``n_boot > 0`` also ``<metric>_ci_low/_ci_high``. A metric undefined on the test fold
        (e.g. AUROC with a single class) is NaN; one undefined on more than 10% of the
        resamples warns.
    """
    label_train = as_binary_label("label_train", label_train)
    score_train = as_vector("score_train", score_train, label_train.shape[0])
    label_test = as_binary_label("label_test", label_test, both_classes=False)
    score_test = as_vector("score_test", score_test, label_test.shape[0])
    predicted = score_test >= youden_threshold(score_train, label_train)
    ties = _tie_groups(score_test)
    n = label_test.shape[0]

    def metrics(weights: np.ndarray) -> dict[str, np.ndarray]:
        positives, negatives = _class_weights(label_test, ties, weights)
        counts = _table(label_test, predicted, weights)
        table = _table_metrics(counts)
        return {
            "auroc": _weighted_auc(positives, negatives),
            "auprc": _weighted_average_precision(positives, negatives),
            **{name: table[name] for name in ("accuracy", "sensitivity", "specificity")},
        }

    result = {name: float(value[0]) for name, value in metrics(np.ones((1, n))).items()}
    if n_boot > 0:
        resamples = bootstrap_indices(patient_ids, n_boot, seed, n_rows=n)
        samples = _blockwise(metrics, _resample_blocks(resamples, n))
        for name in CLASSIFICATION_METRICS:
            result[f"{name}_ci_low"], result[f"{name}_ci_high"] = _warned_percentile(
                name, samples[name], level
            )
    return result


def _warned_percentile(name: str, samples: np.ndarray, level: float) -> tuple[float, float]:
    undefined = int(np.sum(~np.isfinite(samples)))
    if undefined > 0.1 * samples.size:
        warnings.warn(
            f"bootstrap: {name} undefined on {undefined} of {samples.size} resamples; "
            "the interval uses the others",
            UserWarning,
            stacklevel=3,
        )
    return percentile_interval(samples, level)


# --------------------------------------------------------------------------------------------
# Weighted (resampled) statistics: one row of multiplicities per resample
# --------------------------------------------------------------------------------------------


def _tie_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending order of ``score`` and the start, in that order, of each run of equal
    scores."""
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    return order, np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])


def _class_weights(
    label: np.ndarray, ties: tuple[np.ndarray, np.ndarray], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) total weight of the positives and of the negatives at each of the K distinct
    scores (ascending), from (B, n) multiplicities."""
    order, starts = ties
    ordered = weights[:, order]
    positive = label[order].astype(np.float64)
    return (
        np.add.reduceat(ordered * positive, starts, axis=1),
        np.add.reduceat(ordered * (1.0 - positive), starts, axis=1),
    )


def _weighted_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """(B,) Mann-Whitney AUC: sum_k P_k (N_<k + N_k / 2) / (sum P sum N); NaN for a single
    class."""
    below = np.cumsum(negatives, axis=1) - negatives
    pairs = np.sum(positives * (below + 0.5 * negatives), axis=1)
    return _share(pairs, positives.sum(axis=1) * negatives.sum(axis=1))


def _weighted_average_precision(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """(B,) average precision sum_k (P_k / P) TP_k / (TP_k + FP_k) over the distinct scores
    in descending order, TP_k and FP_k the weights at or above score k; NaN without positives
    (or without negatives, where scikit-learn's value is the trivial 1)."""
    tp = np.cumsum(positives[:, ::-1], axis=1)
    fp = np.cumsum(negatives[:, ::-1], axis=1)
    precision = np.nan_to_num(_share(tp, tp + fp))
    average = _share(np.sum(positives[:, ::-1] * precision, axis=1), tp[:, -1])
    return np.where(fp[:, -1] > 0, average, np.nan)


def _share(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _resample_blocks(resamples: np.ndarray | list[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """(b, n) multiplicities of each row in consecutive blocks of the resamples."""
    step = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, len(resamples), step):
        block = resamples[start : start + step]
        if isinstance(block, np.ndarray):
            rows, sizes = block.ravel(), np.full(len(block), block.shape[1])
        else:
            rows, sizes = np.concatenate(block), np.array([r.size for r in block])
        which = np.repeat(np.arange(len(block)), sizes)
        counts = np.bincount(which * n + rows, minlength=len(block) * n)
        yield counts.reshape(len(block), n).astype(np.float64)


def _jackknife_blocks(patient_ids: Sequence | None, n: int) -> Iterator[np.ndarray]:
    """(b, n) weights of the leave-one-patient-out samples (0 on the left-out patient's
    rows), in blocks."""
    groups = patient_groups(patient_ids, n)
    step = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, len(groups), step):
        block = groups[start : start + step]
        weights = np.ones((len(block), n))
        which = np.repeat(np.arange(len(block)), [g.size for g in block])
        weights[which, np.concatenate(block)] = 0.0
        yield weights


def _blockwise(
    statistic: Callable[[np.ndarray], dict[str, np.ndarray]], blocks: Iterator[np.ndarray]
) -> dict[str, np.ndarray]:
    """``statistic`` of every block of multiplicities, concatenated per name."""
    parts = [statistic(block) for block in blocks]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _label_and_score(
    label_name: str, label: Any, score_name: str, score: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) bool labels with both classes and (n,) finite float64 scores of the same length."""
    label = as_binary_label(label_name, label)
    return label, as_vector(score_name, score, label.shape[0])


def _two_per_class(name: str, label: np.ndarray) -> None:
    """DeLong's sample variances need at least two subjects of each class."""
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if min(n_pos, n_neg) < 2:
        raise ValueError(
            f"{name}: DeLong's variance needs at least 2 positives and 2 "
            f"negatives, got {n_pos} and {n_neg}"
        )


def _one_row_per_patient(patient_ids: Sequence | None, n: int) -> None:
    if patient_ids is None:
        return
    groups = patient_groups(patient_ids, n)
    if len(groups) < n:
        raise ValueError(
            f"patient_ids: {n} rows of {len(groups)} patients; DeLong's variance "
            "assumes one row per patient, use method='bootstrap'"
        )


def _positive_int(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name}: must be a positive integer, got {value}")
