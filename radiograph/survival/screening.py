r"""Univariate Cox screening: one Cox model per feature, all features fitted at once.

The paper (Gao et al., MICCAI, section 3.1) keeps the features whose univariate Cox regression
has a Wald p-value below 0.2 before fitting the classical survival models. Fitting one
``CoxPHFitter`` per column is slow for thousands of features, so :func:`univariate_cox` runs
Newton-Raphson on every column simultaneously: the risk-set sums are reverse cumulative sums
over the time-sorted subjects, computed for a block of columns as ``(n, block)`` arrays.

Notation (as in :func:`radiograph.nn.losses.cox_nll`): for one feature with values
:math:`x_i` and coefficient :math:`\beta`, let :math:`r_i = e^{\beta x_i}`,
:math:`\xi_1 < \xi_2 < \dots` the distinct event times, :math:`H_k` the events at
:math:`\xi_k` (:math:`d_k = |H_k|`), :math:`R_k = \{j: t_j \ge \xi_k\}` the risk set, and for
:math:`p = 0, 1, 2`

.. math::

    S_{p,k} = \sum_{j \in R_k} r_j x_j^p, \qquad D_{p,k} = \sum_{j \in H_k} r_j x_j^p,
    \qquad A_{p,kl} = S_{p,k} - \tfrac{l}{d_k} D_{p,k} \quad (l = 0, \dots, d_k - 1).

Efron's partial log-likelihood, its gradient and the observed information are

.. math::

    \ell = \sum_k \Big[\beta \sum_{i \in H_k} x_i - \sum_l \log A_{0,kl}\Big], \quad
    U = \sum_k \Big[\sum_{i \in H_k} x_i - \sum_l \frac{A_{1,kl}}{A_{0,kl}}\Big], \quad
    I = \sum_{k,l} \Big[\frac{A_{2,kl}}{A_{0,kl}} - \Big(\frac{A_{1,kl}}{A_{0,kl}}\Big)^2\Big].

Breslow's approximation is the same with :math:`l/d_k` replaced by 0. The Newton step is
:math:`U / I` (halved while it lowers :math:`\ell`); the standard error is
:math:`I(\hat\beta)^{-1/2}`, :math:`z = \hat\beta / \mathrm{se}` and the two-sided Wald
p-value is :math:`2 \Phi(-|z|)`, as in lifelines' ``CoxPHFitter`` (Efron, no penalty).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from sksurv.util import check_y_survival

Ties = Literal["efron", "breslow"]

_MAX_HALVINGS = 30


def univariate_cox(
    X: np.ndarray | pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    ties: Ties = "efron",
    max_iter: int = 50,
    tol: float = 1e-9,
    block_size: int = 2048,
) -> pd.DataFrame:
    """Fit one Cox proportional-hazards model per column of ``X``, all columns at once.

    Args:
        X: (n_subjects, n_features) covariates, any units. Columns are standardised internally
            (like lifelines) and the coefficients are reported on the original scale.
        time: (n_subjects,) observed times (> 0, any time unit).
        event: (n_subjects,) event indicator (1/True = event, 0/False = censored).
        ties: ``"efron"`` (lifelines' method) or ``"breslow"``.
        max_iter: Newton-Raphson iterations at most.
        tol: convergence when the Newton step on the standardised scale is below ``tol``.
        block_size: columns processed together (memory is about 10 * n * block_size floats).

    Returns:
        DataFrame indexed by feature (the column names of a DataFrame ``X``, else 0..D-1) with
        columns ``coef`` (log hazard ratio per unit of the feature), ``se`` (its standard
        error), ``z`` (coef / se), ``p`` (two-sided Wald p-value) and ``converged`` (bool).
        A constant column has ``coef``, ``se``, ``z`` and ``p`` NaN. A column without a finite
        estimate (it orders the events perfectly) has ``converged`` False and, once its
        information has vanished, ``se``, ``z`` and ``p`` NaN; one ``RuntimeWarning`` counts
        such columns.

    Raises:
        ValueError: on non-finite values, non-positive times, mismatched lengths, an unknown
            ``ties`` or no events.
    """
    names = list(X.columns) if isinstance(X, pd.DataFrame) else None
    values, time, event = _check_inputs(X, time, event, ties)
    n_features = values.shape[1]
    out = {key: np.full(n_features, np.nan) for key in ("coef", "se", "z", "p")}
    converged = np.zeros(n_features, dtype=bool)

    order = np.argsort(time, kind="stable")
    layout = _EventLayout(time[order], event[order], ties)
    values = values[order]
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    usable = std > 0
    # A feature that orders the events perfectly has no finite estimate: its coefficient grows
    # without bound, exp() underflows and the information goes to 0 or below by rounding. That
    # yields NaN and is reported once below rather than as NumPy warnings per block.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, n_features, block_size):
            cols = np.arange(start, min(start + block_size, n_features))
            cols = cols[usable[cols]]
            if cols.size == 0:
                continue
            x = (values[:, cols] - mean[cols]) / std[cols]
            beta, info, done = _newton(x, layout, max_iter, tol)
            se = 1.0 / np.sqrt(info)
            out["coef"][cols] = beta / std[cols]
            out["se"][cols] = se / std[cols]
            out["z"][cols] = beta / se
            out["p"][cols] = 2.0 * norm.sf(np.abs(beta / se))
            converged[cols] = done
    failed = usable & ~converged
    if failed.any():
        warnings.warn(
            f"univariate_cox: {int(failed.sum())} of {int(usable.sum())} non-constant features "
            f"did not converge in {max_iter} Newton iterations (typically a feature that orders "
            "the events perfectly, whose partial likelihood has no finite maximum); where their "
            "information vanished, se, z and p are NaN, and screening treats NaN as p = 1",
            RuntimeWarning,
            stacklevel=2,
        )
    frame = pd.DataFrame(out, index=names)
    frame["converged"] = converged
    return frame


def screen(
    X: np.ndarray | pd.DataFrame,
    time: np.ndarray,
    event: np.ndarray,
    *,
    p: float = 0.2,
    ties: Ties = "efron",
) -> np.ndarray:
    """Boolean mask (n_features,) of the features whose univariate Cox Wald p-value is < ``p``.

    If no feature passes, the single feature with the smallest p-value is kept and a
    ``UserWarning`` says so. Arguments as in :func:`univariate_cox`; ``p`` is the paper's 0.2.
    """
    return _select(univariate_cox(X, time, event, ties=ties)["p"].to_numpy(), p)


class UnivariateCoxSelector(SelectorMixin, BaseEstimator):
    """scikit-learn transformer keeping the features with univariate Cox p-value < ``p``.

    Fit it on the training fold only (it sits inside a :class:`sklearn.pipeline.Pipeline`,
    so cross-validation refits it on every training split).

    Args:
        p: p-value threshold (paper: 0.2).
        ties: ``"efron"`` or ``"breslow"``.

    Attributes (after ``fit``):
        result_: the :func:`univariate_cox` table of the training data.
        support_: (n_features,) bool mask of the kept features.
    """

    def __init__(self, p: float = 0.2, ties: Ties = "efron") -> None:
        self.p = p
        self.ties = ties

    def fit(self, X: np.ndarray | pd.DataFrame, y: np.ndarray) -> UnivariateCoxSelector:
        """Screen the columns of ``X`` (n, D) against ``y``, a scikit-survival structured array
        (first field event, second field time)."""
        values = validate_data(self, X, dtype=np.float64, reset=True)
        event, time = check_y_survival(y)
        self.result_ = univariate_cox(values, time, event, ties=self.ties)
        self.support_ = _select(self.result_["p"].to_numpy(), self.p)
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_


def _select(pvalues: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of ``pvalues < threshold``; the smallest p-value alone when none passes."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"p threshold must be in (0, 1], got {threshold}")
    if np.all(np.isnan(pvalues)):
        raise ValueError(
            "univariate Cox screening: no feature has a p-value on the training data (each is "
            "constant or has no finite estimate)"
        )
    keep = np.nan_to_num(pvalues, nan=1.0) < threshold
    if not keep.any():
        best = int(np.nanargmin(pvalues))
        warnings.warn(
            f"univariate Cox screening: no feature has p < {threshold}; keeping the best one "
            f"(feature {best}, p = {pvalues[best]:.3g})",
            UserWarning,
            stacklevel=3,
        )
        keep[best] = True
    return keep


def _check_inputs(
    X: np.ndarray | pd.DataFrame, time: np.ndarray, event: np.ndarray, ties: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    values = np.asarray(X, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64).reshape(-1)
    event = np.asarray(event).reshape(-1)
    if values.ndim != 2:
        raise ValueError(f"X: expected a 2-D (n_subjects, n_features) array, got {values.shape}")
    n = values.shape[0]
    if time.shape[0] != n or event.shape[0] != n:
        raise ValueError(
            f"X has {n} rows but time has {time.shape[0]} and event {event.shape[0]} entries"
        )
    if not np.isfinite(values).all():
        rows, cols = np.nonzero(~np.isfinite(values))
        raise ValueError(f"X: non-finite value at row {rows[0]}, column {cols[0]}")
    bad_time = ~(np.isfinite(time) & (time > 0))
    if bad_time.any():
        row = int(np.flatnonzero(bad_time)[0])
        raise ValueError(f"time: every time must be finite and > 0; row {row} has {time[row]}")
    if not np.isin(event, (0, 1)).all():
        raise ValueError("event: expected 0/1 or boolean values")
    event = event.astype(bool)
    if not event.any():
        raise ValueError("event: no events, the Cox model cannot be fitted")
    return values, time, event


class _EventLayout:
    """Index arrays for the risk-set and tie sums of time-sorted subjects."""

    def __init__(self, time_sorted: np.ndarray, event_sorted: np.ndarray, ties: str) -> None:
        n = time_sorted.shape[0]
        new_time = np.r_[True, time_sorted[1:] != time_sorted[:-1]]
        group_start = np.maximum.accumulate(np.where(new_time, np.arange(n), 0))
        self.events = np.flatnonzero(event_sorted)
        start_of_event = group_start[self.events]
        first = np.r_[True, start_of_event[1:] != start_of_event[:-1]]
        self.tie_first = np.flatnonzero(first)
        self.risk_start = start_of_event[self.tie_first]
        group = np.cumsum(first) - 1
        rank = np.arange(self.events.size) - self.tie_first[group]
        size = np.diff(np.r_[self.tie_first, self.events.size])[group]
        self.group = group
        self.fraction = (rank / size if ties == "efron" else np.zeros(self.events.size))[:, None]


def _sums(
    x: np.ndarray, beta: np.ndarray, layout: _EventLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partial log-likelihood, gradient and information (each (block,)) at ``beta``."""
    eta = x * beta
    r = np.exp(eta - eta.max(axis=0))
    rx = r * x
    rxx = rx * x
    moments = []
    for term in (r, rx, rxx):
        at_risk = np.cumsum(term[::-1], axis=0)[::-1][layout.risk_start]
        tied = np.add.reduceat(term[layout.events], layout.tie_first, axis=0)
        moments.append(at_risk[layout.group] - layout.fraction * tied[layout.group])
    a0, a1, a2 = moments
    ratio = a1 / a0
    x_events = x[layout.events]
    shift = eta.max(axis=0)
    loglik = (eta[layout.events] - shift).sum(axis=0) - np.log(a0).sum(axis=0)
    grad = (x_events - ratio).sum(axis=0)
    info = (a2 / a0 - ratio**2).sum(axis=0)
    return loglik, grad, info


def _newton(
    x: np.ndarray, layout: _EventLayout, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton-Raphson with step halving on every column of ``x`` (n, block).

    Returns the coefficients, the information at the coefficients and a convergence mask.
    """
    block = x.shape[1]
    beta = np.zeros(block)
    done = np.zeros(block, dtype=bool)
    loglik, grad, info = _sums(x, beta, layout)
    for _ in range(max_iter):
        active = np.flatnonzero(~done)
        if active.size == 0:
            break
        xa = x[:, active]
        step = grad[active] / info[active]
        old = loglik[active]
        trial = beta[active] + step
        new_ll, new_grad, new_info = _sums(xa, trial, layout)
        for _ in range(_MAX_HALVINGS):
            worse = ~(new_ll >= old - 1e-12 * np.abs(old))
            if not worse.any():
                break
            step = np.where(worse, step / 2.0, step)
            trial = beta[active] + step
            new_ll, new_grad, new_info = _sums(xa, trial, layout)
        beta[active] = trial
        loglik[active], grad[active], info[active] = new_ll, new_grad, new_info
        done[active] = np.abs(step) < tol
    return beta, info, done
