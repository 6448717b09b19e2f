"""Patient-level bootstrap and jackknife, and the percentile and BCa intervals built on them.

Patients, not rows, are the unit of resampling: every row (subject, slide, time point) of a
drawn patient enters together, so rows of one patient are never split across a resample
(Efron & Tibshirani 1993, ch. 6; the cluster bootstrap of Davison & Hinkley 1997, section 3.8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import norm

from radiograph.stats._checks import check_level


def patient_groups(patient_ids: Sequence | None, n_rows: int) -> list[np.ndarray]:
    """Row indices of each distinct patient, patients in sorted order; one patient per row
    when ``patient_ids`` is None."""
    if patient_ids is None:
        return [np.array([i]) for i in range(n_rows)]
    patients = np.asarray(patient_ids)
    if patients.shape[0] != n_rows:
        raise ValueError(
            f"patient_ids: has {patients.shape[0]} entries for {n_rows} rows (lengths differ)"
        )
    _, inverse = np.unique(patients, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def bootstrap_indices(
    patient_ids: Sequence | None, n_boot: int, seed: int, n_rows: int | None = None
) -> np.ndarray | list[np.ndarray]:
    """Row indices of ``n_boot`` patient-level bootstrap resamples.

    Patients are drawn with replacement (as many as there are distinct patients) from
    ``np.random.default_rng(seed)``; every row of a drawn patient is included, once per draw.

    Args:
        patient_ids: (n_rows,) patient of each row, or None (one patient per row; then
            ``n_rows`` is required).
        n_boot: number of resamples.
        seed: seed of the generator.

    Returns:
        A (n_boot, n_rows) int array when every patient has one row (the fast, vectorised
        case), else a list of ``n_boot`` index arrays of varying length.
    """
    if patient_ids is None and n_rows is None:
        raise ValueError("bootstrap_indices: give patient_ids or n_rows")
    n = int(n_rows) if n_rows is not None else len(patient_ids)
    groups = patient_groups(patient_ids, n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(groups), size=(int(n_boot), len(groups)))
    sizes = np.array([g.shape[0] for g in groups])
    order = np.concatenate(groups)
    if (sizes == 1).all():
        return order[draws]
    starts = np.cumsum(sizes) - sizes
    flat = draws.ravel()
    lengths = sizes[flat]
    ends = np.cumsum(lengths)
    within = np.arange(ends[-1]) - np.repeat(ends - lengths, lengths)
    rows = order[np.repeat(starts[flat], lengths) + within]
    per_resample = lengths.reshape(draws.shape).sum(axis=1)
    return np.split(rows, np.cumsum(per_resample)[:-1])


def jackknife_indices(patient_ids: Sequence | None, n_rows: int) -> list[np.ndarray]:
    """Row indices of the leave-one-patient-out samples (one per patient)."""
    groups = patient_groups(patient_ids, n_rows)
    everything = np.arange(n_rows)
    return [np.setdiff1d(everything, g, assume_unique=True) for g in groups]


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the finite ``samples``."""
    level = check_level(level)
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.nan, np.nan
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def bca_interval(
    samples: np.ndarray, estimate: float, jackknife: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Bias-corrected and accelerated bootstrap interval (Efron 1987; Efron & Tibshirani
    1993, eq. 14.9-14.15).

    z0 = Phi^-1(#{theta*_b < theta_hat} / B) corrects the median bias; the acceleration
    a = sum(d_i^3) / (6 (sum d_i^2)^1.5), d_i = mean(theta_(.)) - theta_(i), comes from the
    leave-one-patient-out jackknife values; the interval is the bootstrap quantiles at
    Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha))).

    Args:
        samples: (B,) bootstrap replicates (non-finite ones are dropped).
        estimate: the statistic on the original data.
        jackknife: (n_patients,) leave-one-patient-out values.
        level: confidence level.
    """
    level = check_level(level)
    boot = np.asarray(samples, dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    jack = np.asarray(jackknife, dtype=np.float64)
    jack = jack[np.isfinite(jack)]
    if boot.size == 0:
        return np.nan, np.nan
    share_below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size
    share_below = np.clip(share_below, 1.0 / (boot.size + 1), boot.size / (boot.size + 1))
    z0 = norm.ppf(share_below)
    d = jack.mean() - jack if jack.size else np.zeros(1)
    denominator = 6.0 * np.sum(d**2) ** 1.5
    a = float(np.sum(d**3) / denominator) if denominator > 0 else 0.0
    z = norm.ppf([(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0])
    adjusted = norm.cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
    low, high = np.quantile(boot, adjusted)
    return float(low), float(high)


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float],
    n_rows: int,
    *,
    patient_ids: Sequence | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """(n_boot,) values of ``statistic(rows)`` over patient-level resamples (NaN where the
    statistic raises ``ValueError`` on a resample, e.g. a single class)."""
    values = np.empty(int(n_boot))
    for b, rows in enumerate(bootstrap_indices(patient_ids, n_boot, seed, n_rows)):
        try:
            values[b] = statistic(np.asarray(rows))
        except ValueError:
            values[b] = np.nan
    return values


def jackknife_statistic(
    statistic: Callable[[np.ndarray], float], n_rows: int, *, patient_ids: Sequence | None = None
) -> np.ndarray:
    """(n_patients,) leave-one-patient-out values of ``statistic(rows)``."""
    out = []
    for rows in jackknife_indices(patient_ids, n_rows):
        try:
            out.append(statistic(rows))
        except ValueError:
            out.append(np.nan)
    return np.asarray(out, dtype=np.float64)


def interval(
    method: str,
    samples: np.ndarray,
    estimate: float,
    level: float,
    jackknife: Callable[[], np.ndarray] | None = None,
) -> tuple[float, float]:
    """``"percentile"`` or ``"bca"`` interval of bootstrap ``samples`` (``jackknife`` is
    called only for BCa)."""
    if method == "percentile":
        return percentile_interval(samples, level)
    if method == "bca":
        if jackknife is None:
            raise ValueError("interval: method 'bca' needs the jackknife values")
        return bca_interval(samples, estimate, jackknife(), level)
    raise ValueError(f"interval: method must be 'percentile' or 'bca', got {method!r}")
