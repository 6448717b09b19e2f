"""Multi-centre pooling: fixed-effect and random-effects meta-analysis of per-centre estimates.

Each centre contributes an estimate ``y_i`` (a log hazard ratio, an AUC, a C-index, ...) and its
standard error ``s_i`` (within-study variance ``v_i = s_i^2``). The pooled estimate is the
inverse-variance weighted mean ``mu = sum w_i y_i / sum w_i`` with ``w_i = 1 / (v_i + tau^2)``,
``SE(mu) = 1 / sqrt(sum w_i)`` and a Wald interval and z-test:

- ``"FE"``: fixed (equal) effect, ``tau^2 = 0``.
- ``"DL"``: DerSimonian & Laird (1986) moment estimator
  ``tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))`` with fixed-effect weights.
- ``"REML"``: restricted maximum likelihood by Fisher scoring (Viechtbauer 2005), started at
  the Hedges estimator, steps halved to keep ``tau^2 >= 0``, as in ``metafor::rma``.

Heterogeneity follows metafor: Cochran's ``Q = sum (y_i - mu_FE)^2 / v_i`` on ``k - 1`` degrees
of freedom; for random effects ``I^2 = 100 tau^2 / (tau^2 + v~)`` and
``H^2 = (tau^2 + v~) / v~`` with the typical within-study variance
``v~ = (k - 1) sum w / ((sum w)^2 - sum w^2)`` (Higgins & Thompson 2002, eq. 9); for the fixed
effect ``I^2 = 100 max(0, (Q - (k - 1)) / Q)`` and ``H^2 = Q / (k - 1)``. For DL both forms
coincide. I^2 is in percent, as metafor reports it.

statsmodels' ``combine_effects`` offers DL but neither REML nor metafor's I^2/H^2 for REML, so
the few closed-form lines are written here; the tests check them against metafor and
statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from radiograph.stats._checks import as_vector, check_level
from radiograph.stats.results import Estimate

PoolingMethod = Literal["DL", "REML", "FE"]

_METHODS = ("DL", "REML", "FE")
_REML_TOLERANCE = 1e-10
_REML_MAX_ITER = 1000


@dataclass(frozen=True)
class MetaAnalysis:
    """A pooled estimate with its heterogeneity statistics.

    All numbers are on the scale of the inputs (e.g. log hazard ratios); ``exponentiate``
    only changes :meth:`forest_frame` and :meth:`as_estimate`.

    Attributes:
        estimate: pooled estimate ``mu``.
        se: its standard error ``1 / sqrt(sum w)``.
        ci_low, ci_high: Wald interval ``mu -/+ z_{(1+level)/2} se``.
        z: Wald statistic ``mu / se``.
        p_value: two-sided p-value of ``mu = 0``.
        tau2: between-centre variance (0 for ``"FE"``).
        i2: I^2 in percent.
        h2: H^2.
        q: Cochran's Q.
        q_df: its degrees of freedom, ``k - 1``.
        q_p_value: upper chi-square tail of Q (NaN when ``k = 1``).
        weights: (k,) weights of the centres in percent of the total.
        estimates, standard_errors: (k,) the inputs.
        labels: (k,) names of the centres.
        method: ``"DL"``, ``"REML"`` or ``"FE"``.
        level: confidence level.
        exponentiate: report exp() of estimates and bounds in the forest frame.
        extra: further numbers (``{"iterations": n}`` for REML).
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    tau2: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p_value: float
    weights: np.ndarray
    estimates: np.ndarray
    standard_errors: np.ndarray
    labels: tuple[str, ...]
    method: str
    level: float
    exponentiate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tau(self) -> float:
        """Between-centre standard deviation ``sqrt(tau^2)``."""
        return math.sqrt(self.tau2)

    @property
    def k(self) -> int:
        """Number of centres."""
        return int(self.estimates.shape[0])

    def as_estimate(self) -> Estimate:
        """The pooled estimate as an :class:`Estimate` (exp()-ed with ``exponentiate``, then
        ``se`` is NaN and the log-scale SE is in ``extra["se_log"]``)."""
        extra = {"tau2": self.tau2, "i2": self.i2, "q": self.q, "q_p_value": self.q_p_value}
        if not self.exponentiate:
            return Estimate(
                self.estimate,
                self.ci_low,
                self.ci_high,
                self.level,
                f"meta-{self.method}",
                se=self.se,
                p_value=self.p_value,
                n=self.k,
                extra=extra,
            )
        return Estimate(
            math.exp(self.estimate),
            math.exp(self.ci_low),
            math.exp(self.ci_high),
            self.level,
            f"meta-{self.method}",
            p_value=self.p_value,
            n=self.k,
            extra={**extra, "se_log": self.se},
        )

    def forest_frame(self) -> pd.DataFrame:
        """Rows of a forest plot: one per centre (Wald interval ``y_i -/+ z s_i``) and a final
        pooled row; columns ``label, estimate, ci_low, ci_high, weight`` (weight in percent,
        100 for the pooled row). With ``exponentiate`` estimates and bounds are exp()-ed
        (hazard ratios from log hazard ratios)."""
        half = norm.ppf(0.5 + self.level / 2.0) * self.standard_errors
        frame = pd.DataFrame(
            {
                "label": [*self.labels, f"Pooled ({self.method})"],
                "estimate": np.append(self.estimates, self.estimate),
                "ci_low": np.append(self.estimates - half, self.ci_low),
                "ci_high": np.append(self.estimates + half, self.ci_high),
                "weight": np.append(self.weights, 100.0),
            }
        )
        if self.exponentiate:
            columns = ["estimate", "ci_low", "ci_high"]
            frame[columns] = np.exp(frame[columns])
        return frame


def meta_analysis(
    estimates: Sequence[float] | np.ndarray,
    standard_errors: Sequence[float] | np.ndarray,
    *,
    method: PoolingMethod = "DL",
    labels: Sequence[str] | None = None,
    level: float = 0.95,
    exponentiate: bool = False,
) -> MetaAnalysis:
    """Pool per-centre estimates by inverse-variance weighting (see the module docstring).

    Args:
        estimates: (k,) per-centre estimates on an additive scale (log HR, logit AUC, ...).
        standard_errors: (k,) their standard errors, finite and > 0.
        method: ``"DL"`` (DerSimonian-Laird), ``"REML"`` or ``"FE"`` (fixed effect).
        labels: (k,) centre names; ``"1"``, ``"2"``, ... when None.
        level: confidence level of the intervals.
        exponentiate: report exp() of estimates in :meth:`MetaAnalysis.forest_frame`.

    Returns:
        :class:`MetaAnalysis`; matches ``metafor::rma(yi, sei = sei, method = method)``.

    Raises:
        ValueError: lengths differ, a NaN or non-positive standard error, an unknown method,
            fewer than 2 centres for a random-effects method, or a bad level.
    """
    y = as_vector("estimates", estimates)
    k = y.shape[0]
    se = as_vector("standard_errors", standard_errors, k)
    if (se <= 0).any():
        raise ValueError(
            f"standard_errors: {int((se <= 0).sum())} non-positive value(s), first "
            f"at index {int(np.flatnonzero(se <= 0)[0])}; each must be > 0"
        )
    if method not in _METHODS:
        raise ValueError(f"method: must be one of {_METHODS}, got {method!r}")
    if method != "FE" and k < 2:
        raise ValueError(
            f"estimates: random-effects pooling ({method}) needs at least 2 centres, got {k}"
        )
    level = check_level(level)
    names = _labels(labels, k)
    v = se**2
    extra: dict[str, Any] = {}
    if method == "FE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = _tau2_dersimonian_laird(y, v)
    else:
        tau2, extra["iterations"] = _tau2_reml(y, v)
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se_mu = float(1.0 / math.sqrt(np.sum(w)))
    half = float(norm.ppf(0.5 + level / 2.0)) * se_mu
    q = _cochran_q(y, v)
    i2, h2 = _i2_h2(q, v, tau2, method)
    return MetaAnalysis(
        estimate=mu,
        se=se_mu,
        ci_low=mu - half,
        ci_high=mu + half,
        z=mu / se_mu,
        p_value=float(2.0 * norm.sf(abs(mu / se_mu))),
        tau2=tau2,
        i2=i2,
        h2=h2,
        q=q,
        q_df=k - 1,
        q_p_value=float(chi2.sf(q, k - 1)) if k > 1 else math.nan,
        weights=100.0 * w / np.sum(w),
        estimates=y,
        standard_errors=se,
        labels=names,
        method=method,
        level=level,
        exponentiate=bool(exponentiate),
        extra=extra,
    )


def _labels(labels: Sequence[str] | None, k: int) -> tuple[str, ...]:
    """Centre names as strings, ``"1".."k"`` by default."""
    if labels is None:
        return tuple(str(i + 1) for i in range(k))
    names = tuple(str(label) for label in labels)
    if len(names) != k:
        raise ValueError(f"labels: has {len(names)} entries, expected {k} (lengths differ)")
    return names


def _cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Cochran's ``Q = sum w_i (y_i - mu_FE)^2`` with ``w_i = 1 / v_i``."""
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    return float(np.sum(w * (y - mu) ** 2))


def _tau2_dersimonian_laird(y: np.ndarray, v: np.ndarray) -> float:
    """``max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))``, ``w = 1 / v``."""
    w = 1.0 / v
    scale = np.sum(w) - np.sum(w**2) / np.sum(w)
    return float(max(0.0, (_cochran_q(y, v) - (y.shape[0] - 1)) / scale))


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> tuple[float, int]:
    """REML ``tau^2`` by Fisher scoring (Viechtbauer 2005, eq. 12), as ``metafor::rma``.

    With ``P = W - w w' / sum w`` (``W = diag(w)``, ``w = 1 / (v + tau^2)``) the update is
    ``tau^2 += (y'PPy - tr P) / tr(PP)``; for the intercept-only model ``Py = w (y - mu)``,
    ``tr P = S1 - S2/S1`` and ``tr PP = S2 - 2 S3/S1 + S2^2/S1^2`` with ``Sj = sum w^j``.
    Start: the Hedges estimator truncated at 0; a step that would make ``tau^2 < 0`` is
    halved until it does not. Stops when a step changes ``tau^2`` by at most 1e-10.

    Returns:
        ``(tau2, iterations)``.
    """
    k = y.shape[0]
    tau2 = max(0.0, (np.sum((y - y.mean()) ** 2) - np.sum(v) * (1.0 - 1.0 / k)) / (k - 1))
    for iteration in range(1, _REML_MAX_ITER + 1):
        w = 1.0 / (v + tau2)
        s1, s2, s3 = np.sum(w), np.sum(w**2), np.sum(w**3)
        residual = y - np.sum(w * y) / s1
        trace_p = s1 - s2 / s1
        trace_pp = s2 - 2.0 * s3 / s1 + (s2 / s1) ** 2
        step = (np.sum(w**2 * residual**2) - trace_p) / trace_pp
        if tau2 == 0.0:
            step = max(step, 0.0)  # the limit of halving a negative step at the boundary
        while tau2 + step < 0.0:
            step /= 2.0
        tau2 += step
        if abs(step) <= _REML_TOLERANCE:
            return float(tau2), iteration
    raise RuntimeError(
        f"REML: Fisher scoring did not converge in {_REML_MAX_ITER} iterations "
        f"(last tau2 = {tau2:.6g})"
    )


def _i2_h2(q: float, v: np.ndarray, tau2: float, method: str) -> tuple[float, float]:
    """I^2 (percent) and H^2 as metafor reports them (module docstring)."""
    df = v.shape[0] - 1
    if df == 0:
        return math.nan, math.nan
    if method == "FE":
        i2 = 100.0 * max(0.0, (q - df) / q) if q > 0 else 0.0
        return i2, q / df
    w = 1.0 / v
    typical = df * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))
    return float(100.0 * tau2 / (typical + tau2)), float((typical + tau2) / typical)
