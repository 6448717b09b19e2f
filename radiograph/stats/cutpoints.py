"""Optimal cut-point of a continuous score by the maximally selected log-rank statistic.

For every candidate cut-point ``c`` the subjects split into ``score <= c`` (``m`` subjects) and
``score > c``; the statistic is the standardised linear rank statistic of the low group,

    T(c) = |S_m - E_m| / sqrt(V_m),   S_m = sum_{score_i <= c} a_i,   E_m = m/N sum_i a_i,
    V_m = m (N - m) / (N^2 (N - 1)) (N sum_i a_i^2 - (sum_i a_i)^2),

with log-rank (Savage) scores ``a_i`` of the survival times and their permutation variance
(Lausen & Schumacher 1992, Biometrics 48:73-85). The cut-point maximises ``T``; candidates are
the distinct observed scores with ``max(1, floor(N p)) <= m <= floor(N (1 - p))``, ``p`` =
``min_fraction``. This is ``maxstat::maxstat.test(Surv(time, event) ~ score,
smethod = "LogRank", minprop = p, maxprop = 1 - p)`` (also behind ``survminer::surv_cutpoint``),
whose ``statistic``, ``estimate``, ``stats`` and ``cuts`` it reproduces.

Because the cut-point is chosen to maximise ``T``, the naive p-value of ``T`` is far too small;
the p-values here are corrected for the selection:

- ``"lausen92"``: the Miller & Siegmund (1982) approximation of Lausen & Schumacher (1992),
  ``p = 4 phi(b)/b + phi(b) (b - 1/b) log(p2 (1 - p1) / ((1 - p2) p1))``.
- ``"lausen94"``: the improved Bonferroni bound of Lausen, Sauerbrei & Schumacher (1994),
  ``p = 2 (1 - Phi(b)) + sum_j exp(-b^2/2)/pi (t_j - (b^2/4 - 1) t_j^3/6)``, with
  ``t_j = sqrt(1 - m_j (N - m_{j+1}) / ((N - m_j) m_{j+1}))`` over consecutive candidates.
- ``"condmc"``: conditional Monte Carlo (Hothorn & Lausen 2003): the share of random
  permutations of the scores whose maximal statistic reaches the observed one.

The cut-point must be fitted on training data only and applied unchanged to validation data
(:func:`apply_cutpoint`); a cut-point optimised on the data it is evaluated on overstates the
separation of the groups (Altman et al. 1994, J Natl Cancer Inst 86:829).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from radiograph.stats._checks import as_survival, as_vector

PValueMethod = Literal["lausen94", "lausen92", "condmc"]

_P_METHODS = ("lausen94", "lausen92", "condmc")
_PERMUTATION_CELLS = 2_000_000  # permuted scores held in memory at once
_TIE_TOLERANCE = 1e-10  # relative: permutation maxima this close to the observed one count


@dataclass(frozen=True)
class Cutpoint:
    """An optimal cut-point of a score, fitted on training data (apply it unchanged to
    validation data with :func:`apply_cutpoint`).

    Attributes:
        cutpoint: the cut-point (score units); the groups are ``score <= cutpoint`` and
            ``score > cutpoint``.
        statistic: the maximally selected standardised log-rank statistic ``max_c T(c)``.
        p_value: p-value corrected for the maximal selection.
        p_method: ``"lausen94"``, ``"lausen92"`` or ``"condmc"``.
        fraction_above: share of subjects with ``score > cutpoint``.
        higher_risk_above: True when the subjects above the cut-point have more events than
            expected under no association (the signed statistic is negative for the low group).
        candidates: (K,) candidate cut-points, increasing.
        statistics: (K,) ``T`` at each candidate (for plotting).
        min_fraction: smallest share of subjects required on each side.
        n: subjects.
        n_events: events.
        extra: further numbers (``{"n_perm": B, "seed": s}`` for ``"condmc"``).
    """

    cutpoint: float
    statistic: float
    p_value: float
    p_method: str
    fraction_above: float
    higher_risk_above: bool
    candidates: np.ndarray
    statistics: np.ndarray
    min_fraction: float
    n: int
    n_events: int
    extra: dict[str, Any] = field(default_factory=dict)


def logrank_scores(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Log-rank (Savage) scores ``a_i = d_i - sum_{j: t_j <= t_i} d_j / (N - r_j + 1)``, with
    ``r_j = #{l: t_l <= t_j}`` (tied times share their largest rank), as
    ``exactRankTests::cscores(Surv(time, event), type = "LogRank")``.

    Args:
        time: (N,) follow-up times, >= 0.
        event: (N,) 1 for an event, 0 for censoring.

    Returns:
        (N,) float64 scores (higher = earlier event).
    """
    return _logrank_scores(*as_survival(time, event))


def _logrank_scores(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """:func:`logrank_scores` of checked (N,) float times and bool events."""
    n = t.shape[0]
    order = np.argsort(t, kind="stable")
    rank = np.searchsorted(t[order], t, side="right")
    increment = e / (n - rank + 1.0)
    return e - np.cumsum(increment[order])[rank - 1]


def optimal_cutpoint(
    time: np.ndarray,
    event: np.ndarray,
    score: np.ndarray,
    *,
    min_fraction: float = 0.1,
    pvalue: PValueMethod = "lausen94",
    n_perm: int = 10_000,
    seed: int = 0,
) -> Cutpoint:
    """The cut-point of ``score`` with the maximally selected log-rank statistic (module
    docstring), with a p-value corrected for the selection.

    Args:
        time: (N,) follow-up times, >= 0.
        event: (N,) 1 for an event, 0 for censoring.
        score: (N,) continuous score (e.g. a model's risk), finite.
        min_fraction: smallest share of subjects on each side, in (0, 0.5); maxstat's
            ``minprop``, with ``maxprop = 1 - min_fraction``.
        pvalue: ``"lausen94"``, ``"lausen92"`` or ``"condmc"``.
        n_perm: permutations for ``"condmc"``.
        seed: seed of ``np.random.default_rng`` for ``"condmc"``.

    Returns:
        :class:`Cutpoint`.

    Raises:
        ValueError: lengths differ, NaN, no events, ``min_fraction`` outside (0, 0.5), no
            candidate cut-point, log-rank scores without variance, or an unknown ``pvalue``.
    """
    min_fraction = float(min_fraction)
    if not 0.0 < min_fraction < 0.5:
        raise ValueError(f"min_fraction: must lie strictly between 0 and 0.5, got {min_fraction}")
    if pvalue not in _P_METHODS:
        raise ValueError(f"pvalue: must be one of {_P_METHODS}, got {pvalue!r}")
    if pvalue == "condmc" and int(n_perm) < 1:
        raise ValueError(f"n_perm: must be a positive number of permutations, got {n_perm}")
    t, e = as_survival(time, event)
    scores = _logrank_scores(t, e)
    n = scores.shape[0]
    x = as_vector("score", score, n)
    order = np.argsort(x, kind="stable")
    x_sorted, a_sorted = x[order], scores[order]
    sizes = _candidate_sizes(x_sorted, min_fraction)
    expected, sd = _null_moments(a_sorted, sizes)
    signed = (np.cumsum(a_sorted)[sizes - 1] - expected) / sd
    stats = np.abs(signed)
    best = int(np.argmax(stats))
    statistic = float(stats[best])
    if pvalue == "lausen92":
        p_value, extra = _p_lausen92(statistic, min_fraction, 1.0 - min_fraction), {}
    elif pvalue == "lausen94":
        p_value, extra = _p_lausen94(statistic, n, sizes), {}
    else:
        p_value = _p_conditional_mc(statistic, a_sorted, sizes, expected, sd, int(n_perm), seed)
        extra = {"n_perm": int(n_perm), "seed": seed}
    return Cutpoint(
        cutpoint=float(x_sorted[sizes[best] - 1]),
        statistic=statistic,
        p_value=p_value,
        p_method=pvalue,
        fraction_above=float((n - sizes[best]) / n),
        higher_risk_above=bool(signed[best] < 0),
        candidates=x_sorted[sizes - 1],
        statistics=stats,
        min_fraction=min_fraction,
        n=n,
        n_events=int(e.sum()),
        extra=extra,
    )


def apply_cutpoint(score: np.ndarray, cutpoint: float | Cutpoint) -> np.ndarray:
    """(N,) bool, True for ``score > cutpoint``: the group above a cut-point fitted on training
    data, applied unchanged to new (validation) subjects. It is the high-risk group when
    ``Cutpoint.higher_risk_above`` is True."""
    threshold = cutpoint.cutpoint if isinstance(cutpoint, Cutpoint) else float(cutpoint)
    if not math.isfinite(threshold):
        raise ValueError(f"cutpoint: must be finite, got {threshold}")
    return as_vector("score", score) > threshold


def _candidate_sizes(x_sorted: np.ndarray, min_fraction: float) -> np.ndarray:
    """(K,) sizes ``m`` of the low group ``score <= c`` at each distinct value ``c`` below the
    maximum, kept when ``max(1, floor(N p)) <= m <= floor(N (1 - p))`` (maxstat's rule)."""
    n = x_sorted.shape[0]
    first_of_value = np.flatnonzero(np.r_[True, x_sorted[1:] != x_sorted[:-1]])
    low, high = max(1, math.floor(n * min_fraction)), math.floor(n * (1.0 - min_fraction))
    sizes = first_of_value[(first_of_value >= low) & (first_of_value <= high)]
    if sizes.size == 0:
        raise ValueError(
            f"score: no cut-point leaves {min_fraction:.0%} of the {n} subjects "
            f"on each side ({np.unique(x_sorted).size} distinct value(s))"
        )
    return sizes


def _null_moments(a: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permutation mean ``E_m`` and standard deviation ``sqrt(V_m)`` of ``S_m`` (module
    docstring), (K,) each."""
    n = a.shape[0]
    total = np.sum(a)
    spread = n * np.sum(a**2) - total**2
    if not spread > 0:
        raise ValueError(
            "time, event: the log-rank scores are all equal (no variation in "
            "survival), the statistic is undefined"
        )
    variance = sizes * (n - sizes) / (n**2 * (n - 1.0)) * spread
    return sizes / n * total, np.sqrt(variance)


def _p_lausen92(b: float, min_prop: float, max_prop: float) -> float:
    """Lausen & Schumacher (1992) approximation (``maxstat::pLausen92``), clipped to [0, 1]
    (maxstat clips at 0 only; it exceeds 1 for ``b`` just above 1); 1 for ``b < 1``."""
    if b < 1.0:
        return 1.0
    density = norm.pdf(b)
    odds = (max_prop * (1.0 - min_prop)) / ((1.0 - max_prop) * min_prop)
    p = 4.0 * density / b + density * (b - 1.0 / b) * math.log(odds)
    return float(min(max(p, 0.0), 1.0))


def _p_lausen94(b: float, n: int, sizes: np.ndarray) -> float:
    """Improved Bonferroni bound of Lausen, Sauerbrei & Schumacher (1994) over the candidate
    sizes (``maxstat::pLausen94`` with ``m = sizes``), clipped to 1."""
    m1, m2 = sizes[:-1].astype(np.float64), sizes[1:].astype(np.float64)
    t = np.sqrt(1.0 - m1 * (n - m2) / ((n - m1) * m2))
    correction = np.sum(np.exp(-(b**2) / 2.0) / np.pi * (t - (b**2 / 4.0 - 1.0) * t**3 / 6.0))
    return float(min(2.0 * norm.sf(b) + correction, 1.0))


def _p_conditional_mc(
    statistic: float,
    a_sorted: np.ndarray,
    sizes: np.ndarray,
    expected: np.ndarray,
    sd: np.ndarray,
    n_perm: int,
    seed: int,
) -> float:
    """Conditional Monte Carlo p-value ``(1 + #{T*_b >= T}) / (B + 1)`` (Phipson & Smyth 2010)
    over ``B = n_perm`` permutations of the scores against the sorted score (maxstat's
    ``condMC`` reports ``#{T*_b > T} / B``). Permutations are drawn in blocks, each block
    vectorised."""
    n = a_sorted.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _PERMUTATION_CELLS // n)
    threshold = statistic * (1.0 - _TIE_TOLERANCE)
    reached = 0
    for start in range(0, n_perm, block):
        draws = rng.permuted(np.tile(a_sorted, (min(block, n_perm - start), 1)), axis=1)
        sums = np.cumsum(draws, axis=1)[:, sizes - 1]
        reached += int(np.count_nonzero(np.abs((sums - expected) / sd).max(axis=1) >= threshold))
    return (1.0 + reached) / (n_perm + 1.0)
