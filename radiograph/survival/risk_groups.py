"""Low- and high-risk groups of a test fold (paper, Fig. 4).

Test subjects are split by a threshold on the risk score fixed on the *training* fold: the
mean training risk (the paper's rule) or its median. For each group: the Kaplan-Meier curve
with its log-log confidence band (:func:`sksurv.nonparametric.kaplan_meier_estimator`); between
groups: the log-rank test (:func:`sksurv.compare.compare_survival`) and the hazard ratio of a
Cox model on the high-risk indicator (Efron ties, Wald interval).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import norm
from sksurv.compare import compare_survival
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv, check_y_survival

from radiograph.survival.screening import univariate_cox

ThresholdRule = Literal["mean", "median"]


@dataclass(frozen=True)
class KaplanMeierCurve:
    """Kaplan-Meier estimate of one group.

    Attributes:
        time: (k,) distinct times (unit of the input times).
        survival: (k,) estimated S(t) just after each time.
        lower, upper: (k,) pointwise confidence band (log-log transform).
        n: subjects in the group.
        at_risk: (k,) subjects at risk just before each time (observed time >= it).
        censored: (k,) subjects censored at each time.
    """

    time: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: int
    at_risk: np.ndarray
    censored: np.ndarray


@dataclass(frozen=True)
class RiskGroups:
    """Risk stratification of a test fold.

    Attributes:
        rule: ``"mean"`` or ``"median"`` of the training risk.
        threshold: the threshold (risk-score units); high risk means risk > threshold.
        high: (n_test,) bool, True for the high-risk subjects.
        curves: ``{"low": KaplanMeierCurve, "high": KaplanMeierCurve}`` (a group without
            subjects is absent).
        logrank_chi2, logrank_p: log-rank statistic (1 degree of freedom) and p-value.
        hazard_ratio, hr_low, hr_high: hazard ratio high vs low with its confidence interval.
        level: confidence level of the bands and of the interval.
    """

    rule: str
    threshold: float
    high: np.ndarray
    curves: dict[str, KaplanMeierCurve]
    logrank_chi2: float
    logrank_p: float
    hazard_ratio: float
    hr_low: float
    hr_high: float
    level: float


def risk_threshold(risk_train: np.ndarray, rule: ThresholdRule = "mean") -> float:
    """Threshold on the risk score from the training fold: its mean (paper) or median."""
    risk_train = np.asarray(risk_train, dtype=np.float64)
    if rule == "mean":
        return float(np.mean(risk_train))
    if rule == "median":
        return float(np.median(risk_train))
    raise ValueError(f"rule must be 'mean' or 'median', got {rule!r}")


def stratify_risk(
    risk_train: np.ndarray,
    risk_test: np.ndarray,
    y_test: np.ndarray,
    *,
    rule: ThresholdRule = "mean",
    level: float = 0.95,
) -> RiskGroups:
    """Split the test subjects at the training threshold and compare the two groups.

    Args:
        risk_train: (n_train,) risk scores of the training fold (higher = higher risk).
        risk_test: (n_test,) risk scores of the test fold.
        y_test: structured array (event, time) of the test fold.
        rule: threshold rule, see :func:`risk_threshold`.
        level: confidence level of the KM bands and of the hazard-ratio interval.

    Returns:
        :class:`RiskGroups`. When one group is empty the test statistics are NaN and a
        ``UserWarning`` says so.
    """
    risk_test = np.asarray(risk_test, dtype=np.float64).reshape(-1)
    event, time = check_y_survival(y_test)
    if risk_test.shape[0] != time.shape[0]:
        raise ValueError(f"risk_test has {risk_test.shape[0]} entries but y_test {time.shape[0]}")
    threshold = risk_threshold(risk_train, rule)
    high = risk_test > threshold
    curves = {}
    for name, members in (("low", ~high), ("high", high)):
        if members.any():
            t, s, (lo, hi) = kaplan_meier_estimator(
                event[members], time[members], conf_type="log-log", conf_level=level
            )
            observed, died = time[members], event[members]
            at_risk = observed.size - np.searchsorted(np.sort(observed), t, side="left")
            censored = np.bincount(np.searchsorted(t, observed[~died]), minlength=t.size)
            curves[name] = KaplanMeierCurve(t, s, lo, hi, int(members.sum()), at_risk, censored)
    if high.all() or not high.any():
        warnings.warn(
            f"risk groups: all {high.size} test subjects fall in one group at threshold "
            f"{threshold:.4g} ({rule} of the training risk); no comparison possible",
            UserWarning,
            stacklevel=2,
        )
    chi2, p, hr, hr_low, hr_high = compare_groups(high, y_test, level=level)
    return RiskGroups(rule, threshold, high, curves, chi2, p, hr, hr_low, hr_high, level)


def compare_groups(
    high: np.ndarray, y: np.ndarray, *, level: float = 0.95
) -> tuple[float, float, float, float, float]:
    """Log-rank test and Cox hazard ratio of the ``high`` group against the others.

    Args:
        high: (n,) bool group membership.
        y: structured array (event, time) of the same subjects.
        level: confidence level of the hazard-ratio interval.

    Returns:
        ``(logrank_chi2, logrank_p, hazard_ratio, hr_low, hr_high)``; all NaN when one group
        is empty.
    """
    high = np.asarray(high, dtype=bool)
    event, time = check_y_survival(y)
    if high.all() or not high.any():
        return (np.nan,) * 5
    chi2, p = compare_survival(Surv.from_arrays(event, time), high.astype(int))
    hr, hr_low, hr_high = _hazard_ratio(high, time, event, level)
    return float(chi2), float(p), hr, hr_low, hr_high


def _hazard_ratio(
    high: np.ndarray, time: np.ndarray, event: np.ndarray, level: float
) -> tuple[float, float, float]:
    """exp(coef) of a Cox model on the high-risk indicator, with its Wald interval; NaN when
    the partial likelihood has no finite maximum (the groups order the events perfectly: the
    hazard ratio is 0 or infinite and has no Wald interval)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        fit = univariate_cox(high[:, None].astype(np.float64), time, event).iloc[0]
    if not np.isfinite(fit["se"]):
        return np.nan, np.nan, np.nan
    half = norm.ppf(0.5 + level / 2.0) * fit["se"]
    return (
        float(np.exp(fit["coef"])),
        float(np.exp(fit["coef"] - half)),
        float(np.exp(fit["coef"] + half)),
    )
