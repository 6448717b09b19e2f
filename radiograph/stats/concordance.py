r"""Discrimination of survival predictions: Harrell's and Uno's C-index with Noether-type or
patient-level bootstrap intervals, the U-statistic covariance of several C-indices on the same
subjects, and the cumulative/dynamic AUC at named horizons.

**Pairs and ties.** The convention of scikit-survival's ``concordance_index_censored`` (also
that of Hmisc's ``rcorr.cens`` and of ``survival::concordance``). Subject :math:`i` precedes
:math:`j` in a comparable pair, :math:`A_{ij} = 1`, when :math:`i` has an event and either
:math:`t_i < t_j`, or :math:`t_i = t_j` and :math:`j` is censored (an event precedes a
censoring at the same time). Two events at one time, and pairs whose earlier member is
censored, are not comparable. A comparable pair is concordant when the earlier subject has the
higher risk (risk higher = earlier event); risks within ``1e-8`` of each other (absolute, as
scikit-survival) are tied and count 1/2:

.. math::

    P_{ij} = 1[r_i - r_j > 10^{-8}] + \tfrac12 1[|r_i - r_j| \le 10^{-8}], \qquad
    C_{\text{Harrell}} = \frac{\sum_{ij} A_{ij} P_{ij}}{\sum_{ij} A_{ij}}.

Uno's C (Uno et al. 2011, Stat Med 30:1105, eq. 6) weights the pairs led by :math:`i` by
:math:`u_i = \hat G(t_i)^{-2} 1[t_i < \tau]`, :math:`\hat G` the Kaplan-Meier estimate of the
censoring survival function (events precede censorings at tied times; evaluated at
:math:`t_i` itself), exactly as scikit-survival's ``concordance_index_ipcw``:
:math:`C_{\text{Uno}} = \sum_{ij} u_i A_{ij} P_{ij} / \sum_{ij} u_i A_{ij}`.

**Vectorised bootstrap.** A resample is a vector :math:`m` of multiplicities (how often each
row was drawn). The pairs of the resampled data are all pairs of copies, and a row never forms
a comparable pair with its own copy (same time, same event), so the resample's sums are
bilinear forms in :math:`m` with fixed kernels :math:`K = A \circ P` and :math:`A`:

.. math::

    \text{num}(m) = \sum_i m_i u_i (K m)_i, \qquad \text{den}(m) = \sum_i m_i u_i (A m)_i.

For ``B`` resamples stacked as the rows of ``M`` (B, n), :math:`(K m)_i` for every resample is
one matrix product ``M @ K[rows].T``. Only rows that can lead a pair (events, before
:math:`\tau`) are needed; they are taken in blocks of at most ``2**21 / n`` rows, so the kernels
never exist as n x n arrays. The products are exact in float32 (multiplicities are integers,
kernel entries are 0, 1/2 or 1, every partial sum is a multiple of 1/2 below
:math:`2 \sum_j m_j < 2^{24}`), so float32 is used whenever that bound holds.

Memory: the multiplicities (B, n) (float64, plus a float32 copy) and, for Uno's C
re-estimated per resample, the case weights (B, n) (float64), plus per block the ``k + 1``
kernels and their product, at most ``(k + 1) (2**21 + B * 2**21 / n)`` float32 entries; so
O(B n) in all (36 MiB peak measured for B = n = 1000 with one risk, see benchmarks/stats.py).
Time: O(B n e) multiply-adds for e events.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import norm
from sksurv.metrics import cumulative_dynamic_auc
from sksurv.util import Surv

from radiograph.stats._checks import as_survival, as_vector, check_level
from radiograph.stats.resampling import bootstrap_indices, interval, patient_groups
from radiograph.stats.results import Estimate

Kind = Literal["harrell", "uno"]

TIED_TOL = 1e-8
_BLOCK_ENTRIES = 1 << 21
_FLOAT32_EXACT = float(1 << 23)


# --- pair kernels ---------------------------------------------------------------------------


def _comparable(
    t_first: np.ndarray, e_first: np.ndarray, t_second: np.ndarray, e_second: np.ndarray
) -> np.ndarray:
    """Broadcast ``A``: the first subject has an event and precedes the second (an event
    precedes a censoring at the same time; two events at one time are not comparable)."""
    return e_first & ((t_first < t_second) | ((t_first == t_second) & ~e_second))


def _concordant(r_first: np.ndarray, r_second: np.ndarray) -> np.ndarray:
    """Broadcast ``P``: 1 when the first risk is higher, 1/2 when tied within TIED_TOL."""
    difference = r_first - r_second
    return (difference > TIED_TOL) + 0.5 * (np.abs(difference) <= TIED_TOL)


def _row_blocks(rows: np.ndarray, n: int) -> list[np.ndarray]:
    """``rows`` in chunks of at most ``_BLOCK_ENTRIES / n`` rows."""
    size = max(1, _BLOCK_ENTRIES // max(n, 1))
    return [rows[start : start + size] for start in range(0, rows.shape[0], size)]


def _pair_sums(
    time: np.ndarray,
    event: np.ndarray,
    risks: np.ndarray,
    weights: np.ndarray,
    case_weight: np.ndarray | None,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted pair sums ``num[l, b] = sum_ij w_bi u_bi w_bj A_ij P^l_ij`` and
    ``den[b] = sum_ij w_bi u_bi w_bj A_ij`` for risks (k, n), weights (B, n), case weights
    ``u`` (B, n), (n,) or None (all 1) and the rows ``i`` that can lead a pair."""
    n_boot, n = weights.shape
    k = risks.shape[0]
    exact32 = np.array_equal(weights, np.round(weights)) and weights.sum(1).max() < _FLOAT32_EXACT
    dtype = np.float32 if exact32 else np.float64
    stacked_weights = weights.astype(dtype)
    num = np.zeros((k, n_boot))
    den = np.zeros(n_boot)
    for block in _row_blocks(rows, n):
        comparable = _comparable(
            time[block, None], event[block, None], time[None, :], event[None, :]
        )
        kernels = [comparable] + [
            comparable * _concordant(r[block, None], r[None, :]) for r in risks
        ]
        stacked = np.concatenate(kernels, axis=0).astype(dtype)
        product = (stacked_weights @ stacked.T).astype(np.float64).reshape(n_boot, k + 1, -1)
        left = weights[:, block]
        if case_weight is not None:
            left = np.where(left > 0, left * case_weight[..., block], 0.0)
        sums = np.einsum("bkj,bj->kb", product, left)
        den += sums[0]
        num += sums[1:]
    return num, den


# --- censoring distribution (Uno) -----------------------------------------------------------


def _censoring_km(
    time: np.ndarray, event: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate of the censoring survival function for each row of ``weights``.

    At each distinct time :math:`s_k`, with weighted counts of events :math:`d_k`, censorings
    :math:`c_k` and subjects at risk :math:`n_k`, :math:`G(s_k) = \\prod_{l \\le k}
    (1 - c_l / (n_l - d_l))` (events leave the risk set before censorings at a tied time;
    0/0 = no step), as scikit-survival's ``kaplan_meier_estimator(reverse=True)``.

    Returns:
        distinct times (K,), G (B, K) and each subject's index into the distinct times (n,).
    """
    order = np.argsort(time, kind="stable")
    unique, starts, inverse = np.unique(time[order], return_index=True, return_inverse=True)
    sorted_weights = weights[:, order]
    total = np.add.reduceat(sorted_weights, starts, axis=1)
    events = np.add.reduceat(sorted_weights * event[order], starts, axis=1)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    censored = total - events
    ratio = np.divide(censored, at_risk - events, out=np.zeros_like(censored), where=censored > 0)
    subject_index = np.empty_like(inverse)
    subject_index[order] = inverse
    return unique, np.cumprod(1.0 - ratio, axis=1), subject_index


def _censoring_at(time_train: np.ndarray, event_train: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The training censoring survival function (step function, right-continuous) at ``at``;
    ValueError beyond the largest training time unless G has already dropped to 0 there."""
    unique, survival, _ = _censoring_km(time_train, event_train, np.ones((1, time_train.size)))
    survival = survival[0]
    beyond = at > unique[-1]
    if beyond.any() and survival[-1] > 0:
        raise ValueError(
            f"time: {at[beyond][0]:g} exceeds the largest training time "
            f"{unique[-1]:g}, where the censoring distribution is undefined"
        )
    index = np.searchsorted(unique, at, side="right") - 1
    values = np.where(index >= 0, survival[np.clip(index, 0, None)], 1.0)
    return np.where(beyond, 0.0, values)


def _uno_weights(
    time: np.ndarray,
    event: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray,
    train: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """Case weights :math:`\\hat G(t_i)^{-2}` of the rows that lead pairs (NaN where G = 0),
    0 elsewhere: (n,) from the training data, else (B, n) re-estimated under each row of
    ``weights``."""
    if train is not None:
        survival = _censoring_at(*train, time[rows])
        case_weight = np.zeros(time.shape[0])
    else:
        _, survival_b, subject_index = _censoring_km(time, event, weights)
        survival = survival_b[:, subject_index[rows]]
        case_weight = np.zeros(weights.shape)
    with np.errstate(divide="ignore"):
        case_weight[..., rows] = np.where(survival > 0, 1.0 / survival**2, np.nan)
    return case_weight


# --- checks ---------------------------------------------------------------------------------


def _inputs(time: Any, event: Any, risk: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, e = as_survival(time, event)
    return t, e, as_vector("risk", risk, t.shape[0])


def _train(
    kind: str, tau: float | None, time_train: Any, event_train: Any
) -> tuple[np.ndarray, np.ndarray] | None:
    """Validate ``kind`` with its options; the training (time, event) for Uno's C or None."""
    if kind not in ("harrell", "uno"):
        raise ValueError(f"kind: must be 'harrell' or 'uno', got {kind!r}")
    given = time_train is not None or event_train is not None
    if kind == "harrell" and (tau is not None or given):
        raise ValueError("tau / time_train / event_train: apply to kind='uno' only")
    if tau is not None and not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau: must be a positive finite time, got {tau}")
    if not given:
        return None
    if time_train is None or event_train is None:
        raise ValueError("time_train / event_train: give both or neither")
    return as_survival(time_train, event_train, need_events=False)


def _lead_rows(time: np.ndarray, event: np.ndarray, tau: float | None) -> np.ndarray:
    """Rows that can lead a comparable pair: events (before ``tau``)."""
    lead = event if tau is None else event & (time < tau)
    return np.flatnonzero(lead)


def _one_row_per_patient(patient_ids: Sequence | None, n: int, method: str) -> None:
    if patient_ids is not None and len(patient_groups(patient_ids, n)) != n:
        raise ValueError(
            f"patient_ids: method {method!r} assumes independent rows (one per "
            "patient); use the patient-level bootstrap for repeated patients"
        )


# --- public API -----------------------------------------------------------------------------


def bootstrap_weights(
    patient_ids: Sequence | None, n_rows: int, n_boot: int, seed: int
) -> np.ndarray:
    """(n_boot, n_rows) multiplicities of the patient-level resamples of
    :func:`radiograph.stats.resampling.bootstrap_indices` (same seed, same draws): entry
    (b, i) is how often row i enters resample b."""
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: must be at least 1, got {n_boot}")
    draws = bootstrap_indices(patient_ids, int(n_boot), seed, n_rows)
    if isinstance(draws, np.ndarray):
        flat = (draws + n_rows * np.arange(draws.shape[0])[:, None]).ravel()
        counts = np.bincount(flat, minlength=draws.shape[0] * n_rows)
        return counts.reshape(draws.shape[0], n_rows).astype(np.float64)
    return np.stack([np.bincount(rows, minlength=n_rows) for rows in draws]).astype(np.float64)


def jackknife_weights(patient_ids: Sequence | None, n_rows: int) -> np.ndarray:
    """(n_patients, n_rows) 0/1 weights of the leave-one-patient-out samples."""
    groups = patient_groups(patient_ids, n_rows)
    weights = np.ones((len(groups), n_rows))
    for g, rows in enumerate(groups):
        weights[g, rows] = 0.0
    return weights


def weighted_concordance(
    time: Any,
    event: Any,
    risks: Any,
    weights: Any,
    *,
    kind: Kind = "harrell",
    tau: float | None = None,
    time_train: Any = None,
    event_train: Any = None,
) -> np.ndarray:
    """C-index of each risk under each row of case weights (bootstrap multiplicities).

    Row ``b`` of ``weights`` gives every subject a weight :math:`m_{bi} \\ge 0`; the C-index
    is that of the data in which subject i appears :math:`m_{bi}` times (see the module
    docstring for the bilinear form). For ``kind="uno"`` without training data the censoring
    distribution is re-estimated under each row's weights, as in the resampled data.

    Args:
        time, event: (n,) follow-up time and event indicator.
        risks: (n,) or (k, n) risk scores (higher = earlier event).
        weights: (B, n) non-negative weights.
        kind, tau, time_train, event_train: as in :func:`concordance_ci`.

    Returns:
        (k, B) C-indices (NaN where a row has no comparable pair or G = 0 at a used time).
    """
    t, e = as_survival(time, event)
    risk_matrix = np.atleast_2d(np.asarray(risks, dtype=np.float64))
    if risk_matrix.ndim != 2 or risk_matrix.shape[1] != t.shape[0]:
        raise ValueError(f"risks: expected shape (k, {t.shape[0]}), got {np.shape(risks)}")
    if not np.isfinite(risk_matrix).all():
        raise ValueError("risks: non-finite value(s) (NaN or inf)")
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.ndim != 2 or w.shape[1] != t.shape[0]:
        raise ValueError(f"weights: expected shape (B, {t.shape[0]}), got {np.shape(weights)}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights: must be finite and non-negative")
    train = _train(kind, tau, time_train, event_train)
    rows = _lead_rows(t, e, tau)
    case_weight = _uno_weights(t, e, rows, w, train) if kind == "uno" else None
    num, den = _pair_sums(t, e, risk_matrix, w, case_weight, rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def harrell_c(time: Any, event: Any, risk: Any) -> float:
    """Harrell's C-index (Harrell et al. 1982, JAMA 247:2543) of a risk score.

    :math:`C = \\sum_{ij} A_{ij} P_{ij} / \\sum_{ij} A_{ij}` with the pair and tie convention
    of the module docstring: equal to scikit-survival's ``concordance_index_censored(event,
    time, risk)[0]``. O(n e) time for e events, in blocks of at most 2**21 pairs.

    Args:
        time: (n,) follow-up times. event: (n,) 1 = event, 0 = censored.
        risk: (n,) risk scores, higher = earlier event.
    """
    t, e, r = _inputs(time, event, risk)
    num, den = _pair_sums(t, e, r[None], np.ones((1, t.shape[0])), None, np.flatnonzero(e))
    if den[0] == 0:
        raise ValueError("time/event: no comparable pair (no event precedes another time)")
    return float(num[0, 0] / den[0])


def uno_c(
    time: Any,
    event: Any,
    risk: Any,
    *,
    tau: float | None = None,
    time_train: Any = None,
    event_train: Any = None,
) -> float:
    """Uno's IPCW C-index (Uno et al. 2011), truncated at ``tau``.

    Pairs led by an event at :math:`t_i < \\tau` get weight :math:`\\hat G(t_i)^{-2}`,
    :math:`\\hat G` the Kaplan-Meier censoring survival function of the training data
    (``time_train``, ``event_train``) or, when none is given, of the data itself; equal to
    scikit-survival's ``concordance_index_ipcw(train, test, risk, tau)[0]``.
    """
    t, e, r = _inputs(time, event, risk)
    value = weighted_concordance(
        t,
        e,
        r,
        np.ones((1, t.shape[0])),
        kind="uno",
        tau=tau,
        time_train=time_train,
        event_train=event_train,
    )[0, 0]
    if not np.isfinite(value):
        raise ValueError(
            "time/event: no comparable pair before tau, or the censoring survival "
            "function is 0 at an event time used (lower tau)"
        )
    return float(value)


def concordance_covariance(
    time: Any, event: Any, risks: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Harrell's C of k risk scores on the same subjects and their covariance matrix by the
    one-shot nonparametric U-statistic method of Kang, Chen, Petrick & Gallas (2015, Stat Med
    34:685; R package compareC).

    With the symmetric kernels :math:`a_{ij} = A_{ij} + A_{ji}` (comparable) and
    :math:`b^l_{ij} = (A_{ij} - A_{ji}) \\operatorname{sgn}(r^l_i - r^l_j)` (+1 concordant,
    -1 discordant, 0 tied risk or not comparable), the U-statistics
    :math:`\\tau_h = \\sum_{i \\ne j} h_{ij} / (n(n-1))` give
    :math:`C_l = (1 + \\tau_{b^l} / \\tau_a) / 2`. For kernels h, g with row sums
    :math:`H_i, G_i`, totals :math:`H, G` and :math:`Q = \\sum_{i \\ne j} h_{ij} g_{ij}`, the
    unbiased covariance estimate of the two U-statistics is

    .. math::

        \\widehat{\\mathrm{Cov}}(\\tau_h, \\tau_g) = \\frac{4 \\sum_i H_i G_i - 2 Q
        - 2 (2n - 3) H G / (n (n - 1))}{n (n - 1) (n - 2) (n - 3)},

    i.e. :math:`\\tau_h \\tau_g` minus the unbiased estimate of :math:`\\theta_h \\theta_g`
    from quadruples of distinct subjects. The delta method then gives
    :math:`\\mathrm{Cov}(C) = J V J^T` with :math:`\\partial C_l / \\partial \\tau_{b^l} =
    1 / (2 \\tau_a)` and :math:`\\partial C_l / \\partial \\tau_a = -\\tau_{b^l} /
    (2 \\tau_a^2)`.

    Returns:
        (k,) C-indices and (k, k) covariance. Needs n >= 4.
    """
    t, e = as_survival(time, event)
    n = t.shape[0]
    if n < 4:
        raise ValueError(f"time: the U-statistic covariance needs at least 4 subjects, got {n}")
    risk_list = [as_vector(f"risks[{k}]", r, n) for k, r in enumerate(risks)]
    row_sums, cross = _kernel_sums(t, e, risk_list)
    totals = row_sums.sum(0)
    if totals[0] == 0:
        raise ValueError("time/event: no comparable pair (no event precedes another time)")
    pairs = n * (n - 1.0)
    v = (
        4.0 * row_sums.T @ row_sums
        - 2.0 * cross
        - 2.0 * (2 * n - 3) * np.outer(totals, totals) / pairs
    )
    v /= pairs * (n - 2.0) * (n - 3.0)
    tau_a, tau_b = totals[0] / pairs, totals[1:] / pairs
    jacobian = np.zeros((len(risk_list), len(risk_list) + 1))
    jacobian[:, 0] = -tau_b / (2.0 * tau_a**2)
    jacobian[:, 1:] = np.eye(len(risk_list)) / (2.0 * tau_a)
    return (1.0 + tau_b / tau_a) / 2.0, jacobian @ v @ jacobian.T


def _kernel_sums(
    time: np.ndarray, event: np.ndarray, risks: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Row sums (n, k + 1) of the symmetric kernels (a, b^1, ..., b^k) and their cross sums
    :math:`\\sum_{i \\ne j} h_{ij} g_{ij}` (k + 1, k + 1), in blocks of rows."""
    n, k = time.shape[0], len(risks)
    row_sums = np.zeros((n, k + 1))
    cross = np.zeros((k + 1, k + 1))
    for block in _row_blocks(np.arange(n), n):
        first = _comparable(time[block, None], event[block, None], time[None, :], event[None, :])
        second = _comparable(time[None, :], event[None, :], time[block, None], event[block, None])
        direction = first.astype(np.float64) - second
        kernels = [np.abs(direction)] + [
            direction * (2.0 * _concordant(r[block, None], r[None, :]) - 1.0) for r in risks
        ]
        flat = np.stack([kernel.ravel() for kernel in kernels])
        row_sums[block] = np.stack([kernel.sum(1) for kernel in kernels], axis=1)
        cross += flat @ flat.T
    return row_sums, cross


def noether_se(time: Any, event: Any, risk: Any) -> float:
    """Noether-type standard error of Harrell's C (Pencina & D'Agostino 2004, Stat Med
    23:2109): the delta-method variance of the ratio of U-statistics with the first-order
    (Hoeffding projection) variance, as Hmisc's ``rcorr.cens`` computes it.

    With :math:`r_i` the comparable pairs subject i belongs to (either role), :math:`w_i` its
    concordant minus discordant pairs, :math:`R = \\sum_i r_i` (each pair twice) and Somers'
    :math:`D = \\sum_i w_i / R = 2C - 1`:

    .. math::

        \\mathrm{SE}(C) = \\frac{\\sqrt{\\sum_i (w_i - D r_i)^2}}{R}
        = \\tfrac12 \\mathrm{SD}(D_{xy}),

    half of ``rcorr.cens``'s ``S.D.`` (and the square root of ``survival::concordance``'s
    infinitesimal-jackknife variance). It relates exactly to the unbiased variance of
    :func:`concordance_covariance` by :math:`\\mathrm{Var}_{Kang} = \\frac{n(n-1)}{(n-2)(n-3)}
    (\\mathrm{SE}^2 - \\sum_{i \\ne j}(b_{ij} - D a_{ij})^2 / (2R^2))`, so both agree to
    O(1/n).
    """
    t, e, r = _inputs(time, event, risk)
    row_sums, _ = _kernel_sums(t, e, [r])
    pairs, score = row_sums[:, 0], row_sums[:, 1]
    total = pairs.sum()
    if total == 0:
        raise ValueError("time/event: no comparable pair (no event precedes another time)")
    somers_d = score.sum() / total
    return float(np.sqrt(np.sum((score - somers_d * pairs) ** 2)) / total)


def concordance_ci(
    time: Any,
    event: Any,
    risk: Any,
    *,
    method: Literal["bootstrap", "noether"] = "bootstrap",
    kind: Kind = "harrell",
    tau: float | None = None,
    time_train: Any = None,
    event_train: Any = None,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    patient_ids: Sequence | None = None,
    bootstrap_interval: Literal["percentile", "bca"] = "percentile",
) -> Estimate:
    """C-index with a confidence interval.

    ``method="noether"`` (Harrell's C only): Wald interval :math:`C \\pm z_{1-\\alpha/2}
    \\mathrm{SE}` with :func:`noether_se`, clipped to [0, 1], and the two-sided Wald p-value
    of :math:`C = 1/2`. ``method="bootstrap"``: ``n_boot`` patient-level resamples (all rows
    of a drawn patient enter together), computed at once as in the module docstring,
    percentile or BCa interval (jackknife over patients for the acceleration); ``se`` is the
    bootstrap standard deviation, no p-value. For Uno's C without training data the censoring
    distribution is re-estimated in every resample; with it, it stays that of the training
    data.

    Args:
        time, event: (n,) follow-up and event indicator. risk: (n,) higher = earlier event.
        kind: ``"harrell"`` or ``"uno"`` (then ``tau`` and the training data apply).
        level: confidence level. n_boot, seed: bootstrap size and seed.
        patient_ids: (n,) patient of each row for the patient-level bootstrap.
        bootstrap_interval: ``"percentile"`` or ``"bca"``.
        (``"noether"`` ignores n_boot, seed and bootstrap_interval, and refuses
        ``patient_ids`` with a repeated patient.)

    Returns:
        :class:`Estimate` with ``n`` = rows and ``extra`` = kind, tau and (bootstrap) n_boot
        and the number of resamples with a defined C.
    """
    level = check_level(level)
    if bootstrap_interval not in ("percentile", "bca"):
        raise ValueError(
            f"bootstrap_interval: must be 'percentile' or 'bca', got {bootstrap_interval!r}"
        )
    t, e, r = _inputs(time, event, risk)
    _train(kind, tau, time_train, event_train)
    n = t.shape[0]
    options = dict(kind=kind, tau=tau, time_train=time_train, event_train=event_train)
    estimate = (
        harrell_c(t, e, r)
        if kind == "harrell"
        else uno_c(t, e, r, tau=tau, time_train=time_train, event_train=event_train)
    )
    extra: dict[str, Any] = {"kind": kind, "tau": tau}
    if method == "noether":
        if kind != "harrell":
            raise ValueError(
                "method: 'noether' is defined for Harrell's C; use 'bootstrap' for Uno's C"
            )
        _one_row_per_patient(patient_ids, n, method)
        se = noether_se(t, e, r)
        z = float(norm.ppf(0.5 + level / 2.0))
        p = _wald_p(estimate - 0.5, se)
        return Estimate(
            estimate,
            max(0.0, estimate - z * se),
            min(1.0, estimate + z * se),
            level,
            "noether",
            se=se,
            p_value=p,
            n=n,
            extra=extra,
        )
    if method != "bootstrap":
        raise ValueError(f"method: must be 'bootstrap' or 'noether', got {method!r}")
    weights = bootstrap_weights(patient_ids, n, n_boot, seed)
    samples = weighted_concordance(t, e, r, weights, **options)[0]
    low, high = interval(
        bootstrap_interval,
        samples,
        estimate,
        level,
        jackknife=lambda: weighted_concordance(
            t, e, r, jackknife_weights(patient_ids, n), **options
        )[0],
    )
    finite = samples[np.isfinite(samples)]
    se = float(np.std(finite, ddof=1)) if finite.size > 1 else np.nan
    extra.update(n_boot=int(n_boot), n_valid=int(finite.size))
    return Estimate(
        estimate, low, high, level, f"bootstrap-{bootstrap_interval}", se=se, n=n, extra=extra
    )


def _wald_p(difference: float, se: float) -> float:
    """Two-sided normal p-value of ``difference / se``; a zero SE gives 1 for a zero
    difference and 0 otherwise."""
    if se > 0:
        return float(2.0 * norm.sf(abs(difference) / se))
    return 1.0 if difference == 0 else 0.0


def time_dependent_auc(
    time_train: Any,
    event_train: Any,
    time: Any,
    event: Any,
    risk: Any,
    times: Any,
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    patient_ids: Sequence | None = None,
) -> list[Estimate]:
    """Cumulative/dynamic AUC at named horizons with patient-level bootstrap intervals.

    At horizon :math:`h`, cases are :math:`t_i \\le h` with an event, controls
    :math:`t_j > h`, and :math:`\\mathrm{AUC}(h) = \\sum_{ij} \\omega_i 1[t_i \\le h, \\delta_i]
    1[t_j > h] 1[r_i > r_j] / (\\sum_i \\omega_i 1[t_i \\le h, \\delta_i] \\cdot
    \\#\\{j: t_j > h\\})` with IPCW :math:`\\omega_i = 1 / \\hat G(t_i)` from the training data
    (Uno et al. 2007; Hung & Chiang 2010), computed by scikit-survival's
    ``cumulative_dynamic_auc`` (called, also in every resample). The test data are resampled
    by patient; the training data stay fixed. A horizon outside a resample's follow-up, or
    without a case in it, leaves that resample undefined (NaN) for that horizon.

    Args:
        time_train, event_train: training data for the censoring distribution.
        time, event, risk: (n,) test data, risk higher = earlier event.
        times: horizons (same unit as ``time``), each within the test follow-up
            ``[min(time), max(time))`` and with at least one event at or before it.

    Returns:
        One :class:`Estimate` per horizon, in the order given, ``extra["time"]`` = horizon.
    """
    level = check_level(level)
    t, e, r = _inputs(time, event, risk)
    train_t, train_e = as_survival(time_train, event_train, need_events=False)
    horizons = _check_horizons(t, e, as_vector("times", times))
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: must be at least 1, got {n_boot}")
    order = np.argsort(horizons)
    train = Surv.from_arrays(train_e, train_t)
    estimates = _dynamic_auc(train, t, e, r, horizons[order])
    boot = np.full((int(n_boot), horizons.size), np.nan)
    draws = bootstrap_indices(patient_ids, int(n_boot), seed, t.shape[0])
    for b, rows in enumerate(draws):
        boot[b] = _resample_auc(train, t[rows], e[rows], r[rows], horizons[order])
    results = []
    for position, column in enumerate(order):
        low, high = interval("percentile", boot[:, position], estimates[position], level)
        finite = boot[np.isfinite(boot[:, position]), position]
        results.append(
            (
                column,
                Estimate(
                    float(estimates[position]),
                    low,
                    high,
                    level,
                    "bootstrap-percentile",
                    se=float(np.std(finite, ddof=1)) if finite.size > 1 else np.nan,
                    n=t.shape[0],
                    extra={
                        "time": float(horizons[column]),
                        "n_boot": int(n_boot),
                        "n_valid": int(finite.size),
                    },
                ),
            )
        )
    return [estimate for _, estimate in sorted(results, key=lambda item: item[0])]


def _check_horizons(time: np.ndarray, event: np.ndarray, horizons: np.ndarray) -> np.ndarray:
    if np.unique(horizons).size != horizons.size:
        raise ValueError(f"times: horizons must be distinct, got {horizons.tolist()}")
    for h in horizons:
        if not time.min() <= h < time.max():
            raise ValueError(
                f"times: horizon {h:g} lies outside the follow-up of the data "
                f"[{time.min():g}, {time.max():g})"
            )
        if not (event & (time <= h)).any():
            raise ValueError(f"times: no event at or before horizon {h:g} (no case)")
    return horizons


def _dynamic_auc(
    train: np.ndarray, time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizons: np.ndarray
) -> np.ndarray:
    try:
        return cumulative_dynamic_auc(train, Surv.from_arrays(event, time), risk, horizons)[0]
    except ValueError as err:
        raise ValueError(f"time_train: {err}") from err


def _resample_auc(
    train: np.ndarray, time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizons: np.ndarray
) -> np.ndarray:
    """AUC of one resample at the sorted horizons, NaN where a horizon is outside its
    follow-up or has no case."""
    values = np.full(horizons.size, np.nan)
    inside = (horizons >= time.min()) & (horizons < time.max())
    if not inside.any() or not event.any():
        return values
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values[inside] = cumulative_dynamic_auc(
            train, Surv.from_arrays(event, time), risk, horizons[inside]
        )[0]
    return values
