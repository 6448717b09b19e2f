"""Patient-level resampling and the percentile / BCa intervals.

References: the multiplicities of every patient's rows (a float64 count by hand), and
scipy.stats.bootstrap's BCa and percentile intervals (independent code, its own resamples, so
equal only to the Monte Carlo tolerance of B = 20,000 resamples).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from radiograph.stats.resampling import (
    bca_interval,
    bootstrap_indices,
    bootstrap_statistic,
    jackknife_indices,
    jackknife_statistic,
    patient_groups,
    percentile_interval,
)


def test_rows_of_a_patient_are_drawn_together():
    patients = np.array(["p2", "p1", "p2", "p3", "p1", "p1", "p4"])
    for rows in bootstrap_indices(patients, 200, seed=1):
        drawn = patients[rows]
        for patient in np.unique(drawn):
            # every draw of a patient brings all of its rows
            size = int((patients == patient).sum())
            assert (drawn == patient).sum() % size == 0
        assert len(set(drawn)) <= 4


def test_one_row_per_patient_is_a_matrix_with_uniform_draws():
    draws = bootstrap_indices(None, 4000, seed=7, n_rows=5)
    assert isinstance(draws, np.ndarray) and draws.shape == (4000, 5)
    counts = np.bincount(draws.ravel(), minlength=5) / draws.size
    np.testing.assert_allclose(counts, 0.2, atol=0.01)
    again = bootstrap_indices(np.arange(5), 4000, seed=7)
    np.testing.assert_array_equal(draws, again)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="patient_ids.*lengths differ"):
        bootstrap_indices(np.arange(6), 5, 0, n_rows=5)
    with pytest.raises(ValueError, match="patient_ids or n_rows"):
        bootstrap_indices(None, 5, 0)


def test_jackknife_leaves_out_one_patient_at_a_time():
    patients = np.array([3, 1, 3, 2])
    groups = patient_groups(patients, 4)
    assert [list(g) for g in groups] == [[1], [3], [0, 2]]
    samples = jackknife_indices(patients, 4)
    assert [list(s) for s in samples] == [[0, 2, 3], [0, 1, 2], [1, 3]]


@pytest.fixture(scope="module")
def skewed():
    return np.random.default_rng(3).gamma(2.0, size=60)


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_intervals_agree_with_scipy(skewed, method):
    n_boot = 20_000
    values = bootstrap_statistic(
        lambda rows: float(np.mean(skewed[rows])), skewed.size, n_boot=n_boot, seed=0
    )
    if method == "BCa":
        jack = jackknife_statistic(lambda rows: float(np.mean(skewed[rows])), skewed.size)
        low, high = bca_interval(values, float(skewed.mean()), jack, 0.95)
    else:
        low, high = percentile_interval(values, 0.95)
    reference = stats.bootstrap(
        (skewed,), np.mean, n_resamples=n_boot, method=method, confidence_level=0.95, random_state=1
    ).confidence_interval
    width = reference.high - reference.low
    assert low == pytest.approx(reference.low, abs=0.03 * width)
    assert high == pytest.approx(reference.high, abs=0.03 * width)


def test_bca_moves_the_interval_toward_the_skew(skewed):
    values = bootstrap_statistic(
        lambda rows: float(np.mean(skewed[rows])), skewed.size, n_boot=4000, seed=2
    )
    jack = jackknife_statistic(lambda rows: float(np.mean(skewed[rows])), skewed.size)
    bca = bca_interval(values, float(skewed.mean()), jack)
    percentile = percentile_interval(values)
    assert bca[0] > percentile[0] and bca[1] > percentile[1]  # right-skewed statistic


def test_undefined_resamples_are_nan_and_skipped():
    label = np.array([0, 0, 0, 1])

    def share_positive_among_first_three(rows):
        if not label[rows].any():
            raise ValueError("no positive")
        return float(label[rows].mean())

    values = bootstrap_statistic(share_positive_among_first_three, 4, n_boot=300, seed=0)
    assert np.isnan(values).any() and np.isfinite(values).any()
    low, high = percentile_interval(values)
    assert 0 < low <= high <= 1
    with pytest.raises(ValueError, match="level"):
        percentile_interval(values, 1.5)
