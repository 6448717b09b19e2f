"""Tests of radiograph.stats.pooling against metafor (tests/stats/reference/pooling_reference.R)
and statsmodels, plus invariance properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from radiograph.stats.pooling import meta_analysis
from radiograph.stats.results import Estimate

REFERENCE = json.loads((Path(__file__).parent / "reference" / "pooling_reference.json").read_text())
CASES = ("bcg", "four_centres", "four_centres_90", "homogeneous")
METHODS = ("DL", "REML", "FE")
# our field -> metafor's
FIELDS = {
    "estimate": "estimate",
    "se": "se",
    "ci_low": "ci_lb",
    "ci_high": "ci_ub",
    "z": "zval",
    "p_value": "pval",
    "tau2": "tau2",
    "i2": "I2",
    "h2": "H2",
    "q": "QE",
    "q_p_value": "QEp",
}


def _bcg() -> tuple[np.ndarray, np.ndarray]:
    case = REFERENCE["bcg"]
    return np.array(case["yi"]), np.array(case["sei"])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_matches_metafor_rma(case, method):
    data, expected = REFERENCE[case], REFERENCE[case][method]
    fit = meta_analysis(data["yi"], data["sei"], method=method, level=data["level"])
    for ours, theirs in FIELDS.items():
        np.testing.assert_allclose(
            getattr(fit, ours),
            expected[theirs],
            rtol=1e-6,
            atol=0,
            err_msg=f"{case} {method} {ours}",
        )
    np.testing.assert_allclose(fit.weights, expected["weights"], rtol=1e-6, atol=0)
    assert fit.tau == pytest.approx(np.sqrt(expected["tau2"]), rel=1e-6)
    assert fit.q_df == len(data["yi"]) - 1


@pytest.mark.parametrize(("method", "method_re"), [("DL", "dl"), ("FE", "dl")])
def test_matches_statsmodels_combine_effects(method, method_re):
    y, se = _bcg()
    fit = meta_analysis(y, se, method=method)
    ref = combine_effects(y, se**2, method_re=method_re, use_t=False)
    frame = ref.summary_frame()
    row = "random effect" if method == "DL" else "fixed effect"
    assert fit.estimate == pytest.approx(frame.loc[row, "eff"], rel=1e-10)
    assert fit.se == pytest.approx(frame.loc[row, "sd_eff"], rel=1e-10)
    assert fit.ci_low == pytest.approx(frame.loc[row, "ci_low"], rel=1e-10)
    assert fit.q == pytest.approx(ref.q, rel=1e-10)
    if method == "DL":
        assert fit.tau2 == pytest.approx(ref.tau2, rel=1e-10)
        assert fit.i2 == pytest.approx(100.0 * ref.i2, rel=1e-10)
    weights = frame["w_re" if method == "DL" else "w_fe"].to_numpy()[: len(y)]
    np.testing.assert_allclose(fit.weights, 100.0 * weights, rtol=1e-10)


def test_hand_computed_dersimonian_laird_two_centres():
    # y = (0, 1), v = (1, 1): Q = 0.5 (mu_FE = 0.5), sum w - sum w^2/sum w = 2 - 2/2 = 1,
    # so tau^2 = max(0, 0.5 - 1) = 0; y = (0, 3): Q = 4.5, tau^2 = 3.5, w = 1/4.5 each.
    assert meta_analysis([0.0, 1.0], [1.0, 1.0]).tau2 == 0.0
    fit = meta_analysis([0.0, 3.0], [1.0, 1.0])
    assert fit.tau2 == pytest.approx(3.5, rel=1e-14)
    assert fit.estimate == pytest.approx(1.5, rel=1e-14)
    assert fit.se == pytest.approx(np.sqrt(4.5 / 2.0), rel=1e-14)
    assert fit.i2 == pytest.approx(100.0 * 3.5 / 4.5, rel=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_permuting_centres_changes_nothing_but_the_order(method):
    y, se = _bcg()
    order = np.random.default_rng(3).permutation(y.shape[0])
    fit = meta_analysis(y, se, method=method)
    shuffled = meta_analysis(y[order], se[order], method=method)
    for name in ("estimate", "se", "tau2", "i2", "h2", "q", "p_value"):
        assert getattr(shuffled, name) == pytest.approx(getattr(fit, name), rel=1e-9, abs=1e-15)
    np.testing.assert_allclose(shuffled.weights, fit.weights[order], rtol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_shifting_all_estimates_shifts_the_pooled_one_only(method):
    y, se = _bcg()
    fit, shifted = meta_analysis(y, se, method=method), meta_analysis(y + 2.5, se, method=method)
    assert shifted.estimate == pytest.approx(fit.estimate + 2.5, rel=1e-12)
    assert shifted.ci_high - shifted.ci_low == pytest.approx(fit.ci_high - fit.ci_low, rel=1e-9)
    assert shifted.tau2 == pytest.approx(fit.tau2, rel=1e-9)
    assert shifted.q == pytest.approx(fit.q, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_identical_estimates_have_no_heterogeneity(method):
    fit = meta_analysis([0.3] * 5, [0.1, 0.2, 0.15, 0.3, 0.25], method=method)
    assert fit.estimate == pytest.approx(0.3, rel=1e-14)
    assert fit.tau2 == 0.0
    assert fit.q == pytest.approx(0.0, abs=1e-25)
    assert fit.i2 == 0.0
    assert fit.q_p_value == pytest.approx(1.0)


def test_random_effects_equal_fixed_effect_when_tau2_truncates_at_zero():
    data = REFERENCE["homogeneous"]
    fixed = meta_analysis(data["yi"], data["sei"], method="FE")
    for method in ("DL", "REML"):
        fit = meta_analysis(data["yi"], data["sei"], method=method)
        assert fit.tau2 == 0.0
        assert (fit.estimate, fit.se) == pytest.approx((fixed.estimate, fixed.se), rel=1e-14)


def test_heterogeneity_widens_the_random_effects_interval():
    y, se = _bcg()
    fixed, random = meta_analysis(y, se, method="FE"), meta_analysis(y, se, method="DL")
    assert random.tau2 > 0.1
    assert random.ci_high - random.ci_low > 3.0 * (fixed.ci_high - fixed.ci_low)


def test_forest_frame_rows_weights_and_exponentiation():
    y, se = _bcg()
    labels = [f"trial {i}" for i in range(1, y.shape[0] + 1)]
    fit = meta_analysis(y, se, method="REML", labels=labels, exponentiate=True)
    frame = fit.forest_frame()
    assert list(frame.columns) == ["label", "estimate", "ci_low", "ci_high", "weight"]
    assert list(frame["label"]) == [*labels, "Pooled (REML)"]
    assert frame["weight"].iloc[:-1].sum() == pytest.approx(100.0, rel=1e-12)
    np.testing.assert_allclose(frame["estimate"].iloc[:-1], np.exp(y), rtol=1e-14)
    np.testing.assert_allclose(
        frame["ci_low"].iloc[:-1], np.exp(y - 1.959963984540054 * se), rtol=1e-12
    )
    pooled = frame.iloc[-1]
    expected = np.exp([fit.estimate, fit.ci_low, fit.ci_high])
    np.testing.assert_allclose(
        pooled[["estimate", "ci_low", "ci_high"]].astype(float), expected, rtol=1e-14
    )
    log_frame = meta_analysis(y, se, method="REML").forest_frame()
    np.testing.assert_allclose(log_frame["estimate"], np.log(frame["estimate"]), rtol=1e-12)


def test_as_estimate_carries_the_pooled_numbers():
    y, se = _bcg()
    fit = meta_analysis(y, se, method="DL")
    estimate = fit.as_estimate()
    assert isinstance(estimate, Estimate)
    assert (estimate.estimate, estimate.se, estimate.p_value, estimate.n) == (
        fit.estimate,
        fit.se,
        fit.p_value,
        13,
    )
    ratio = meta_analysis(y, se, method="DL", exponentiate=True).as_estimate()
    assert ratio.estimate == pytest.approx(np.exp(fit.estimate), rel=1e-14)
    assert ratio.extra["se_log"] == fit.se


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"estimates": [0.1, 0.2, 0.3], "standard_errors": [0.1, 0.2]}, "standard_errors"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, 0.0]}, "standard_errors"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, -0.2]}, "standard_errors"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, np.nan]}, "standard_errors"),
        ({"estimates": [0.1, np.nan], "standard_errors": [0.1, 0.2]}, "estimates"),
        ({"estimates": [0.1], "standard_errors": [0.1]}, "estimates"),
        ({"estimates": [0.1], "standard_errors": [0.1], "method": "REML"}, "estimates"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, 0.2], "method": "PM"}, "method"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, 0.2], "labels": ["a"]}, "labels"),
        ({"estimates": [0.1, 0.2], "standard_errors": [0.1, 0.2], "level": 95}, "level"),
    ],
)
def test_bad_input_names_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        meta_analysis(**kwargs)


def test_single_centre_fixed_effect_is_that_centre():
    fit = meta_analysis([0.4], [0.2], method="FE")
    assert (fit.estimate, fit.se, fit.q) == pytest.approx((0.4, 0.2, 0.0), rel=1e-14, abs=1e-30)
    assert np.isnan(fit.q_p_value) and np.isnan(fit.i2)
