"""Calibration of predicted probabilities of a binary outcome: the binned calibration curve,
logistic recalibration (calibration-in-the-large and slope), the Hosmer-Lemeshow test and
the Brier score.

References:
    Steyerberg EW. Clinical Prediction Models, 2nd ed. Springer 2019, ch. 15.
    Van Calster B, Nieboer D, Vergouwe Y, De Cock B, Pencina MJ, Steyerberg EW. A calibration
        hierarchy for risk models was defined: from utopia to empirical data. J Clin Epidemiol
        2016;74:167-176.
    Cox DR. Two further applications of a model for binary regression. Biometrika 1958;45:562.
    Hosmer DW, Lemeshow S, Sturdivant RX. Applied Logistic Regression, 3rd ed. Wiley 2013,
        section 5.2.2.
    Brier GW. Verification of forecasts expressed in terms of probability. Mon Weather Rev
        1950;78:1-3.
    Wilson EB. Probable inference, the law of succession, and statistical inference. JASA
        1927;22:209-212.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import chi2, norm
from statsmodels.stats.proportion import proportion_confint

from radiograph.stats._checks import as_binary_label, as_vector, check_level
from radiograph.stats.resampling import (
    bootstrap_indices,
    interval,
    jackknife_statistic,
    patient_groups,
)
from radiograph.stats.results import Estimate


def as_probability(
    name: str, values: Any, n: int | None = None, *, open_interval: bool = False
) -> np.ndarray:
    """``values`` as a (n,) float64 array of probabilities in [0, 1] (in (0, 1) with
    ``open_interval``, where a logit is taken); ValueError naming ``name`` and the first bad
    index otherwise."""
    prob = as_vector(name, values, n)
    bad = (prob <= 0.0) | (prob >= 1.0) if open_interval else (prob < 0.0) | (prob > 1.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        where = "strictly between 0 and 1 (a logit is taken)" if open_interval else "in [0, 1]"
        raise ValueError(
            f"{name}: {int(bad.sum())} value(s) not {where}, first at index "
            f"{first} ({prob[first]!r})"
        )
    return prob


def _freeze(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


# ---- calibration curve -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CalibrationCurve:
    """Observed event proportion against mean predicted probability, per non-empty bin.

    All arrays have shape (k,), k <= ``n_bins`` (empty bins are dropped). Bin j holds the
    subjects with ``bin_low[j] < prob <= bin_high[j]``; the first bin also holds
    ``prob == bin_low[0]``.

    Attributes:
        mean_predicted: mean predicted probability in the bin.
        observed: observed proportion of events in the bin.
        ci_low, ci_high: Wilson score interval of ``observed`` (no continuity correction).
        count: subjects in the bin; events: events in the bin.
        bin_low, bin_high: the bin's edges (probability scale).
        strategy: ``"quantile"`` or ``"uniform"``; level: confidence level of the intervals.
    """

    mean_predicted: np.ndarray
    observed: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    count: np.ndarray
    events: np.ndarray
    bin_low: np.ndarray
    bin_high: np.ndarray
    strategy: str
    level: float

    def to_frame(self) -> pd.DataFrame:
        """One row per bin."""
        columns = (
            "bin_low",
            "bin_high",
            "count",
            "events",
            "mean_predicted",
            "observed",
            "ci_low",
            "ci_high",
        )
        return pd.DataFrame({c: getattr(self, c) for c in columns})


def _bin_edges(prob: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "quantile":
        return np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    raise ValueError(f"strategy: must be 'quantile' or 'uniform', got {strategy!r}")


def calibration_curve(
    label: Sequence,
    prob: Sequence,
    *,
    n_bins: int = 10,
    strategy: str = "quantile",
    level: float = 0.95,
) -> CalibrationCurve:
    """Binned calibration curve with Wilson intervals of the observed proportions.

    ``strategy="quantile"`` puts the edges at the 0, 1/n_bins, ..., 1 sample quantiles of
    ``prob`` (numpy's linear interpolation, R's type 7), ``"uniform"`` at equal steps on
    [0, 1]. Bins are right-closed, (low, high], the lowest edge included, as in
    ``sklearn.calibration.calibration_curve`` and R's ``cut(..., include.lowest = TRUE)``; tied
    quantiles give empty bins, which are dropped.

    Args:
        label: (n,) 0/1 outcome.
        prob: (n,) predicted probability of the event, in [0, 1].
        n_bins: number of bins (before empty ones are dropped), >= 1.
        strategy: ``"quantile"`` or ``"uniform"``.
        level: confidence level of the Wilson intervals.
    """
    y = as_binary_label("label", label, both_classes=False)
    p = as_probability("prob", prob, y.shape[0])
    level = check_level(level)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins: must be a positive integer, got {n_bins}")
    edges = _bin_edges(p, int(n_bins), strategy)
    bins = np.searchsorted(edges[1:-1], p, side="left")
    count = np.bincount(bins, minlength=n_bins)
    events = np.bincount(bins, weights=y, minlength=n_bins).astype(np.int64)
    sums = np.bincount(bins, weights=p, minlength=n_bins)
    keep = count > 0
    count, events = count[keep], events[keep]
    low, high = proportion_confint(events, count, alpha=1.0 - level, method="wilson")
    arrays = (
        sums[keep] / count,
        events / count,
        np.asarray(low, dtype=np.float64),
        np.asarray(high, dtype=np.float64),
        count,
        events,
        edges[:-1][keep].copy(),
        edges[1:][keep].copy(),
    )
    _freeze(*arrays)
    return CalibrationCurve(*arrays, strategy=strategy, level=level)


# ---- logistic recalibration ------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationFit:
    """Logistic recalibration of predicted probabilities (Cox 1958).

    Attributes:
        intercept_in_the_large: a in logit P(y=1) = a + logit(p) (logit(p) an offset);
            0 when the mean prediction matches the event rate. Wald interval; p-value of a = 0.
        slope: b in logit P(y=1) = a' + b logit(p); 1 when predictions are neither too extreme
            (b < 1, overfitting) nor too moderate (b > 1). Wald interval; p-value of b = 1.
        intercept: a' of that joint fit (``rms::val.prob``'s "Intercept"); p-value of a' = 0.
        reliability_chi2, reliability_p: likelihood-ratio test of a' = 0 and b = 1 together,
            2 degrees of freedom (``rms::val.prob``'s "U:Chi-sq" and "U:p").
        n: subjects.
    """

    intercept_in_the_large: Estimate
    slope: Estimate
    intercept: Estimate
    reliability_chi2: float
    reliability_p: float
    n: int


def _check_estimable(y: np.ndarray, logit: np.ndarray) -> None:
    if np.ptp(logit) == 0.0:
        raise ValueError("prob: all values are equal; the calibration slope is not estimable")
    if logit[~y].max() <= logit[y].min() or logit[y].max() <= logit[~y].min():
        raise ValueError(
            "prob: separates label completely (every event above or below every "
            "non-event); the calibration slope is infinite"
        )


def _wald(value: float, se: float, null: float, level: float, method: str, n: int) -> Estimate:
    """Wald interval of ``value`` and the two-sided z-test of ``value = null``."""
    z = norm.ppf(0.5 + level / 2.0)
    p_value = float(2.0 * norm.sf(abs(value - null) / se))
    return Estimate(
        float(value),
        float(value - z * se),
        float(value + z * se),
        level,
        method,
        se=float(se),
        p_value=p_value,
        n=n,
        extra={"null": null},
    )


def calibration_intercept_slope(
    label: Sequence, prob: Sequence, *, level: float = 0.95
) -> CalibrationFit:
    """Calibration-in-the-large and calibration slope by logistic recalibration.

    With lp = logit(p) (Steyerberg 2019, ch. 15.2; Van Calster et al. 2016, "weak
    calibration"):

    * slope b and joint intercept a': logistic regression of y on lp,
      logit P(y=1) = a' + b lp;
    * calibration-in-the-large a: logistic regression of y on an intercept with lp as an
      offset, logit P(y=1) = a + lp.

    Both are fitted by maximum likelihood (statsmodels GLM, binomial family, logit link);
    intervals are Wald intervals from the observed information. The reliability test is
    2 [loglik(a', b) - loglik(0, 1)] on 2 degrees of freedom.

    Args:
        label: (n,) 0/1 outcome, both classes present.
        prob: (n,) predicted probabilities strictly between 0 and 1 (0 or 1 is a ValueError:
            the logit is infinite).
        level: confidence level.

    Raises:
        ValueError: on bad input, on constant ``prob`` and when ``prob`` separates the classes
            completely (the maximum-likelihood slope is then infinite).
    """
    y = as_binary_label("label", label)
    p = as_probability("prob", prob, y.shape[0], open_interval=True)
    lp = np.log(p) - np.log1p(-p)
    level = check_level(level)
    _check_estimable(y, lp)
    n = int(y.shape[0])
    outcome = y.astype(np.float64)
    family = sm.families.Binomial()
    joint = sm.GLM(outcome, sm.add_constant(lp, has_constant="add"), family=family).fit(tol=1e-12)
    large = sm.GLM(outcome, np.ones((n, 1)), family=family, offset=lp).fit(tol=1e-12)
    loglik_identity = float(np.sum(outcome * lp - np.logaddexp(0.0, lp)))
    u_chi2 = 2.0 * (float(joint.llf) - loglik_identity)
    (a_joint, b), (se_a_joint, se_b) = joint.params, joint.bse
    return CalibrationFit(
        intercept_in_the_large=_wald(
            large.params[0], large.bse[0], 0.0, level, "logistic-offset-wald", n
        ),
        slope=_wald(b, se_b, 1.0, level, "logistic-recalibration-wald", n),
        intercept=_wald(a_joint, se_a_joint, 0.0, level, "logistic-recalibration-wald", n),
        reliability_chi2=u_chi2,
        reliability_p=float(chi2.sf(u_chi2, 2)),
        n=n,
    )


# ---- Hosmer-Lemeshow ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HosmerLemeshow:
    """Hosmer-Lemeshow goodness-of-fit test.

    Attributes:
        statistic: C-hat = sum_k (O_k - E_k)^2 / (E_k (1 - E_k / n_k)).
        df: degrees of freedom, groups - 2.
        p_value: upper tail of chi-square(df) at ``statistic``.
        n_groups: non-empty groups formed (< g when tied quantiles merge groups).
        observed, expected, count: (n_groups,) events, sum of predicted probabilities and
            subjects per group.
        n: subjects.
    """

    statistic: float
    df: int
    p_value: float
    n_groups: int
    observed: np.ndarray
    expected: np.ndarray
    count: np.ndarray
    n: int


def hosmer_lemeshow(label: Sequence, prob: Sequence, *, g: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow test over ``g`` groups of risk ("deciles of risk" for g = 10).

    Groups follow ``ResourceSelection::hoslem.test``: edges at the 0, 1/g, ..., 1 sample
    quantiles of ``prob`` (R's type 7, numpy's linear), duplicated edges removed, groups
    right-closed (low, high] with the lowest edge included (R's
    ``cut(p, unique(quantile(p, 0:g/g)), include.lowest = TRUE)``). A subject whose
    probability equals an interior edge therefore joins the lower group, and all subjects with
    one tied probability fall in one group. The statistic sums (O - E)^2 / E over both
    outcome columns (events and non-events) of every group. Groups left empty (tiny samples,
    where two quantiles fall between the same pair of order statistics) are dropped; df is
    (groups formed) - 2, which differs from ``hoslem.test`` (always g - 2) only when ties or
    empty groups left fewer than g groups.

    Args:
        label: (n,) 0/1 outcome.
        prob: (n,) predicted probabilities in [0, 1].
        g: number of groups requested, >= 3.
    """
    y = as_binary_label("label", label, both_classes=False)
    p = as_probability("prob", prob, y.shape[0])
    if int(g) != g or g < 3:
        raise ValueError(f"g: must be an integer >= 3 (df = g - 2), got {g}")
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, int(g) + 1)))
    groups = np.searchsorted(edges[1:-1], p, side="left")
    count = np.bincount(groups)
    keep = count > 0
    n_groups = int(keep.sum())
    if n_groups < 3:
        raise ValueError(
            f"prob: only {n_groups} distinct risk group(s) (ties); the test needs at least 3"
        )
    observed = np.bincount(groups, weights=y)[keep]
    expected = np.bincount(groups, weights=p)[keep]
    count = count[keep]
    if np.any(expected == 0.0) or np.any(expected == count):
        raise ValueError(
            "prob: a risk group has all probabilities 0 (or all 1); its expected "
            "count is 0 and the statistic undefined"
        )
    statistic = float(
        np.sum((observed - expected) ** 2 / expected)
        + np.sum((observed - expected) ** 2 / (count - expected))
    )
    df = n_groups - 2
    _freeze(observed, expected, count)
    return HosmerLemeshow(
        statistic,
        df,
        float(chi2.sf(statistic, df)),
        n_groups,
        observed,
        expected,
        count,
        int(y.shape[0]),
    )


# ---- Brier score -------------------------------------------------------------------------------


def brier_score(label: Sequence, prob: Sequence) -> float:
    """Brier score, mean((p - y)^2) (Brier 1950); 0 is perfect, 0.25 is p = 0.5 for all."""
    y = as_binary_label("label", label, both_classes=False)
    p = as_probability("prob", prob, y.shape[0])
    return float(np.mean((p - y) ** 2))


def scaled_brier(label: Sequence, prob: Sequence) -> float:
    """Scaled Brier score, 1 - Brier / Brier_0 with Brier_0 = ybar (1 - ybar), the Brier score
    of predicting the prevalence ybar for everyone (Steyerberg 2019, ch. 15.1; Steyerberg et
    al., Epidemiology 2010;21:128). 1 is perfect, 0 no better than the prevalence."""
    y = as_binary_label("label", label)
    p = as_probability("prob", prob, y.shape[0])
    prevalence = float(np.mean(y))
    return 1.0 - float(np.mean((p - y) ** 2)) / (prevalence * (1.0 - prevalence))


def _resample_means(values: np.ndarray, indices: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(B,) means of ``values`` over each resample; ``indices`` is a (B, n) array or a list of
    B index arrays of varying length (patients with several rows)."""
    if isinstance(indices, np.ndarray):
        return values[indices].mean(axis=1)
    lengths = np.array([rows.shape[0] for rows in indices])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.add.reduceat(values[np.concatenate(indices)], starts) / lengths


def _brier_from_means(
    squared_error: np.ndarray, prevalence: np.ndarray, scaled: bool
) -> np.ndarray:
    if not scaled:
        return squared_error
    reference = prevalence * (1.0 - prevalence)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0.0, 1.0 - squared_error / reference, np.nan)


def brier_ci(
    label: Sequence,
    prob: Sequence,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    patient_ids: Sequence | None = None,
    scaled: bool = False,
    method: str = "percentile",
) -> Estimate:
    """Brier score (or scaled Brier score) with a patient-level bootstrap interval.

    The (B, n) resample matrix of :func:`resampling.bootstrap_indices` is evaluated in one
    vectorised step (means of squared errors and of labels per row); with several rows per
    patient the ragged resamples are summed with ``np.add.reduceat``. Resamples with a single
    class give NaN for the scaled score and are dropped from the interval.

    Args:
        label, prob: (n,) outcome and predicted probabilities in [0, 1].
        n_boot: bootstrap resamples (>= 1); seed: seed of the generator.
        level: confidence level.
        patient_ids: (n,) patient of each row, or None (one row per patient).
        scaled: the scaled Brier score instead of the Brier score.
        method: ``"percentile"`` or ``"bca"`` (BCa with the leave-one-patient-out jackknife).

    Returns:
        Estimate with the bootstrap standard error and ``extra = {"n_boot", "n_valid"}``.
    """
    y = as_binary_label("label", label, both_classes=scaled)
    p = as_probability("prob", prob, y.shape[0])
    level = check_level(level)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: must be a positive integer, got {n_boot}")
    if patient_ids is not None:
        patient_groups(patient_ids, y.shape[0])  # ValueError on a length mismatch
    outcome = y.astype(np.float64)
    squared = (p - outcome) ** 2
    estimate = scaled_brier(y, p) if scaled else brier_score(y, p)
    indices = bootstrap_indices(patient_ids, int(n_boot), seed, y.shape[0])
    samples = _brier_from_means(
        _resample_means(squared, indices), _resample_means(outcome, indices), scaled
    )

    def jackknife() -> np.ndarray:
        statistic = (
            (lambda rows: scaled_brier(y[rows], p[rows]))
            if scaled
            else (lambda rows: float(np.mean(squared[rows])))
        )
        return jackknife_statistic(statistic, y.shape[0], patient_ids=patient_ids)

    low, high = interval(method, samples, estimate, level, jackknife=jackknife)
    valid = samples[np.isfinite(samples)]
    se = float(np.std(valid, ddof=1)) if valid.size > 1 else np.nan
    name = "scaled-brier" if scaled else "brier"
    return Estimate(
        estimate,
        low,
        high,
        level,
        f"{name}-bootstrap-{method}",
        se=se,
        n=int(y.shape[0]),
        extra={"n_boot": int(n_boot), "n_valid": int(valid.size)},
    )
