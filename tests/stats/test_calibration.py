"""Tests of radiograph.stats.calibration.

References: ``tests/stats/reference/calibration_reference.json``, written by
``calibration_reference.R`` (survival::colon, logistic models fitted on the observation arm and
evaluated on the Lev+5FU arm): ``rms::val.prob`` (Intercept, Slope, Brier, U:Chi-sq, U:p),
``glm`` joint and offset-only recalibration fits (coefficients, Wald SEs and intervals), a
Hosmer-Lemeshow computation in R written in the ``ResourceSelection::hoslem.test`` convention
(that package is not packaged for Debian, so the test compares with the convention, not the
package), and ``prop.test(correct = FALSE)`` Wilson intervals. Plus
``sklearn.calibration.calibration_curve``, float64 hand computations and property tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit
from scipy.stats import chi2
from sklearn.calibration import calibration_curve as sklearn_calibration_curve

from radiograph.stats.calibration import (
    as_probability,
    brier_ci,
    brier_score,
    calibration_curve,
    calibration_intercept_slope,
    hosmer_lemeshow,
    scaled_brier,
)
from radiograph.stats.resampling import bootstrap_indices

REFERENCE = Path(__file__).parent / "reference" / "calibration_reference.json"
RTOL = 1e-6


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def data(ref: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.asarray(ref["y"]), np.asarray(ref["p_new"]), np.asarray(ref["p_old"])


def close(actual, expected, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12)


# ---- logistic recalibration against rms::val.prob and glm ------------------------------------


def test_intercept_slope_match_rms_and_glm(ref, data):
    y, p, _ = data
    r = ref["recalibration"]
    fit = calibration_intercept_slope(y, p)
    close(fit.slope.estimate, r["val_prob"]["Slope"])
    close(fit.intercept.estimate, r["val_prob"]["Intercept"])
    close(
        [fit.slope.estimate, fit.slope.se, fit.slope.ci_low, fit.slope.ci_high, fit.slope.p_value],
        [r["slope"], r["slope_se"], *r["slope_ci"], r["slope_p_vs_1"]],
    )
    close(
        [fit.intercept.se, fit.intercept.ci_low, fit.intercept.ci_high, fit.intercept.p_value],
        [r["joint_intercept_se"], *r["joint_intercept_ci"], r["joint_intercept_p"]],
    )
    large = fit.intercept_in_the_large
    close(
        [large.estimate, large.se, large.ci_low, large.ci_high, large.p_value],
        [
            r["intercept_in_the_large"],
            r["intercept_in_the_large_se"],
            *r["intercept_in_the_large_ci"],
            r["intercept_in_the_large_p"],
        ],
    )
    close(
        [fit.reliability_chi2, fit.reliability_p], [r["val_prob"]["U:Chi-sq"], r["val_prob"]["U:p"]]
    )
    # the two intercepts are different quantities and must not be confused
    assert abs(large.estimate - fit.intercept.estimate) > 0.01
    assert fit.n == ref["n"] and fit.slope.level == 0.95


def test_well_calibrated_simulation_has_slope_one_and_intercept_zero():
    rng = np.random.default_rng(20240611)
    p = expit(rng.normal(-0.5, 1.2, size=20_000))
    y = rng.random(p.shape[0]) < p
    fit = calibration_intercept_slope(y, p)
    assert fit.slope.ci_low < 1.0 < fit.slope.ci_high
    assert fit.intercept_in_the_large.ci_low < 0.0 < fit.intercept_in_the_large.ci_high
    assert fit.intercept.ci_low < 0.0 < fit.intercept.ci_high
    assert abs(fit.slope.estimate - 1.0) < 0.05


def test_overfitted_predictions_have_slope_below_one():
    rng = np.random.default_rng(7)
    true = expit(rng.normal(-0.5, 1.0, size=20_000))
    y = rng.random(true.shape[0]) < true
    too_extreme = expit(2.0 * logit(true))  # the true logit doubled: slope 1/2
    fit = calibration_intercept_slope(y, too_extreme, level=0.99)
    assert fit.slope.ci_low < 0.5 < fit.slope.ci_high
    assert fit.slope.p_value < 1e-10 and fit.reliability_p < 1e-10
    shifted = expit(logit(true) + 0.4)  # predictions too high: intercept -0.4
    large = calibration_intercept_slope(y, shifted).intercept_in_the_large
    assert large.ci_low < -0.4 < large.ci_high


def test_recalibration_is_invariant_to_subject_order(data):
    y, p, _ = data
    order = np.random.default_rng(3).permutation(y.shape[0])
    a, b = calibration_intercept_slope(y, p), calibration_intercept_slope(y[order], p[order])
    close(
        [a.slope.estimate, a.slope.se, a.intercept_in_the_large.estimate],
        [b.slope.estimate, b.slope.se, b.intercept_in_the_large.estimate],
        rtol=1e-10,
    )


def test_recalibration_rejects_bad_input():
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.2, 0.7, 0.4, 0.6, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"prob: .* first at index 3"):
        calibration_intercept_slope(y, np.array([0.2, 0.7, 0.4, 1.0, 0.3, 0.5]))
    with pytest.raises(ValueError, match=r"prob: .* first at index 0"):
        calibration_intercept_slope(y, np.r_[0.0, p[1:]])
    with pytest.raises(ValueError, match="prob: has 5 entries"):
        calibration_intercept_slope(y, p[:5])
    with pytest.raises(ValueError, match="label: a single class"):
        calibration_intercept_slope(np.ones(6), p)
    with pytest.raises(ValueError, match="prob: 1 non-finite"):
        calibration_intercept_slope(y, np.r_[p[:5], np.nan])
    with pytest.raises(ValueError, match="prob: all values are equal"):
        calibration_intercept_slope(y, np.full(6, 0.3))
    with pytest.raises(ValueError, match="prob: separates label"):
        calibration_intercept_slope(y, np.where(y == 1, 0.8, 0.2))
    with pytest.raises(ValueError, match="level"):
        calibration_intercept_slope(y, p, level=95)


def test_as_probability_names_argument_and_index():
    with pytest.raises(ValueError, match=r"p_new: 2 value\(s\) not in \[0, 1\], first at index 1"):
        as_probability("p_new", [0.5, 1.5, -0.1])
    assert as_probability("p", [0.0, 1.0]).tolist() == [0.0, 1.0]


# ---- Hosmer-Lemeshow -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "column", "g"),
    [("new_g10", "p_new", 10), ("old_g10", "p_old", 10), ("new_g8", "p_new", 8)],
)
def test_hosmer_lemeshow_matches_r(ref, key, column, g):
    y, p = np.asarray(ref["y"]), np.asarray(ref[column])
    expected = ref["hosmer_lemeshow"][key]
    hl = hosmer_lemeshow(y, p, g=g)
    close([hl.statistic, hl.p_value], [expected["statistic"], expected["p_value"]])
    assert hl.df == expected["df"] == g - 2 and hl.n_groups == g
    np.testing.assert_array_equal(hl.count, expected["size"])
    np.testing.assert_array_equal(hl.observed, expected["observed"])
    close(hl.expected, expected["expected"])


def test_hosmer_lemeshow_hand_computation_with_ties():
    """Ties at a boundary: quantile edges 0.2, 0.2, 0.4, 0.6 (g = 3) merge into two edges
    plus the maximum; all four subjects at 0.2 land in the first group, df = groups - 2."""
    p = np.array([0.2, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.9, 0.9, 0.9])
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1])
    # np.quantile(p, [0, 1/4, 1/2, 3/4, 1]) = 0.2, 0.2, 0.45, 0.675, 0.9 -> edges 0.2, 0.45,
    # 0.675, 0.9: groups [0.2, 0.45], (0.45, 0.675], (0.675, 0.9]
    groups = [[0, 1, 2, 3, 4, 5], [6, 7, 8], [9, 10, 11]]
    statistic = 0.0
    for rows in groups:
        o, e, m = y[rows].sum(), p[rows].sum(), len(rows)
        statistic += (o - e) ** 2 / e + ((m - o) - (m - e)) ** 2 / (m - e)
    hl = hosmer_lemeshow(y, p, g=4)
    assert hl.n_groups == 3 and hl.df == 1
    np.testing.assert_array_equal(hl.count, [6, 3, 3])
    close(hl.statistic, statistic, rtol=1e-13)
    close(hl.p_value, chi2.sf(statistic, 1), rtol=1e-13)


def test_hosmer_lemeshow_is_invariant_to_subject_order(data):
    y, p, _ = data
    order = np.random.default_rng(5).permutation(y.shape[0])
    assert hosmer_lemeshow(y, p).statistic == pytest.approx(
        hosmer_lemeshow(y[order], p[order]).statistic, rel=1e-12
    )


def test_hosmer_lemeshow_rejects_bad_input():
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="g: must be an integer >= 3"):
        hosmer_lemeshow(y, p, g=2)
    with pytest.raises(ValueError, match="prob: only 1 distinct risk group"):
        hosmer_lemeshow(y, np.full(4, 0.5))
    with pytest.raises(ValueError, match="label: labels must be 0/1"):
        hosmer_lemeshow([0, 2, 1, 0], p)


# ---- calibration curve -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_curve_matches_r_and_sklearn(ref, data, strategy):
    y, p, _ = data
    expected = ref["calibration_curve"][strategy]
    curve = calibration_curve(y, p, n_bins=10, strategy=strategy)
    np.testing.assert_array_equal(curve.count, expected["count"])
    np.testing.assert_array_equal(curve.events, expected["events"])
    close(curve.mean_predicted, expected["mean_predicted"])
    close(curve.observed, expected["observed"])
    close(curve.ci_low, expected["ci_low"])
    close(curve.ci_high, expected["ci_high"])
    prob_true, prob_pred = sklearn_calibration_curve(y, p, n_bins=10, strategy=strategy)
    close(curve.observed, prob_true, rtol=1e-12)
    close(curve.mean_predicted, prob_pred, rtol=1e-12)
    assert np.all(curve.bin_low < curve.bin_high)
    assert np.all((curve.ci_low <= curve.observed) & (curve.observed <= curve.ci_high))


def test_calibration_curve_edges_bins_and_frame():
    p = np.array([0.05, 0.15, 0.15, 0.35, 0.95])
    y = np.array([0, 0, 1, 1, 1])
    curve = calibration_curve(y, p, n_bins=10, strategy="uniform")
    # bins (0, 0.1] incl. 0, (0.1, 0.2], (0.3, 0.4], (0.9, 1.0]; empty bins dropped
    close(curve.bin_low, [0.0, 0.1, 0.3, 0.9])
    np.testing.assert_array_equal(curve.count, [1, 2, 1, 1])
    close(curve.observed, [0.0, 0.5, 1.0, 1.0])
    frame = curve.to_frame()
    assert list(frame.columns) == [
        "bin_low",
        "bin_high",
        "count",
        "events",
        "mean_predicted",
        "observed",
        "ci_low",
        "ci_high",
    ]
    assert len(frame) == 4
    with pytest.raises(ValueError):
        curve.count[0] = 3  # the arrays of a result are read-only


def test_calibration_curve_rejects_bad_input():
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="strategy: must be 'quantile' or 'uniform'"):
        calibration_curve(y, p, strategy="kmeans")
    with pytest.raises(ValueError, match="n_bins: must be a positive integer"):
        calibration_curve(y, p, n_bins=0)
    with pytest.raises(ValueError, match="prob: 1 value"):
        calibration_curve(y, [0.2, 0.4, 1.2, 0.8])


# ---- Brier score -----------------------------------------------------------------------------


def test_brier_matches_rms(ref, data):
    y, p, _ = data
    close(brier_score(y, p), ref["recalibration"]["val_prob"]["Brier"])
    close(scaled_brier(y, p), ref["brier"]["scaled"])


def test_brier_hand_computation_and_bounds():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.2, 0.6, 0.5])
    assert brier_score(y, p) == pytest.approx((0.01 + 0.04 + 0.16 + 0.25) / 4, rel=1e-15)
    assert scaled_brier(y, p) == pytest.approx(1 - 0.115 / 0.25, rel=1e-14)
    assert brier_score(y, y.astype(float)) == 0.0 and scaled_brier(y, y.astype(float)) == 1.0
    assert scaled_brier(y, np.full(4, 0.5)) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="label: a single class"):
        scaled_brier(np.zeros(4), p)


def _naive_brier_boot(y, p, indices, scaled):
    out = []
    for rows in indices:
        yy, pp = y[rows].astype(float), p[rows]
        b = np.mean((pp - yy) ** 2)
        ref = yy.mean() * (1 - yy.mean())
        out.append((1 - b / ref if ref > 0 else np.nan) if scaled else b)
    return np.asarray(out)


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("clustered", [False, True])
def test_brier_ci_equals_a_loop_over_the_same_resamples(data, scaled, clustered):
    y, p, _ = data
    ids = np.arange(y.shape[0]) // 3 if clustered else None
    result = brier_ci(y, p, n_boot=300, seed=11, patient_ids=ids, scaled=scaled)
    samples = _naive_brier_boot(y, p, bootstrap_indices(ids, 300, 11, y.shape[0]), scaled)
    low, high = np.percentile(samples[np.isfinite(samples)], [2.5, 97.5])
    close([result.ci_low, result.ci_high], [low, high], rtol=1e-12)
    close(result.se, np.std(samples[np.isfinite(samples)], ddof=1), rtol=1e-12)
    assert result.ci_low < result.estimate < result.ci_high
    assert result.estimate == (scaled_brier(y, p) if scaled else brier_score(y, p))
    assert result.extra["n_boot"] == 300


def test_brier_ci_bca_and_reproducibility(data):
    y, p, _ = data
    a = brier_ci(y, p, n_boot=400, seed=2, method="bca")
    b = brier_ci(y, p, n_boot=400, seed=2, method="bca")
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low < a.estimate < a.ci_high and a.method == "brier-bootstrap-bca"
    assert brier_ci(y, p, n_boot=400, seed=3).ci_low != brier_ci(y, p, n_boot=400, seed=2).ci_low


def test_brier_ci_drops_single_class_resamples_for_the_scaled_score():
    y = np.array([1] + [0] * 9)
    p = np.linspace(0.1, 0.6, 10)
    result = brier_ci(y, p, n_boot=200, seed=0, scaled=True)
    assert 0 < result.extra["n_valid"] < 200  # about (9/10)^10 of resamples have no event
    assert np.isfinite(result.ci_low) and np.isfinite(result.ci_high)
    with pytest.raises(ValueError, match="n_boot: must be a positive integer"):
        brier_ci(y, p, n_boot=0)


def test_brier_ci_rejects_patient_ids_of_another_length(data):
    y, p, _ = data
    with pytest.raises(ValueError, match="patient_ids: has 10 entries"):
        brier_ci(y, p, n_boot=10, patient_ids=np.arange(10))
