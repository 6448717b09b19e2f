"""Tests of radiograph.stats.cutpoints against maxstat (tests/stats/reference/cutpoints_reference.R)
plus simulation and invariance properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from radiograph.stats.cutpoints import (
    Cutpoint,
    apply_cutpoint,
    logrank_scores,
    optimal_cutpoint,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "cutpoints_reference.json").read_text()
)
CASES = ("dlbcl_mge", "lung_age", "lung_karno")


def _case(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    case = REFERENCE[name]
    return np.array(case["time"]), np.array(case["event"]), np.array(case["x"]), case["minprop"]


def _planted(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Exponential times whose hazard triples above the 0.3 quantile of a normal score;
    uniform censoring on (0, 3) (about 17% censored)."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    threshold = float(np.quantile(score, 0.3))
    latent = rng.exponential(1.0 / np.where(score > threshold, 3.0, 1.0))
    censor = rng.uniform(0.0, 3.0, size=n)
    return np.minimum(latent, censor), (latent <= censor).astype(int), score, threshold


@pytest.mark.parametrize("name", CASES)
def test_logrank_scores_match_exactranktests(name):
    time, event, _, _ = _case(name)
    np.testing.assert_allclose(
        logrank_scores(time, event), REFERENCE[name]["logrank_scores"], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("name", CASES)
def test_statistic_curve_and_cutpoint_match_maxstat(name):
    time, event, x, minprop = _case(name)
    expected = REFERENCE[name]
    fit = optimal_cutpoint(time, event, x, min_fraction=minprop)
    np.testing.assert_array_equal(fit.candidates, expected["cuts"])
    np.testing.assert_allclose(fit.statistics, expected["stats"], rtol=1e-6, atol=0)
    assert fit.statistic == pytest.approx(expected["statistic"], rel=1e-6)
    assert fit.cutpoint == expected["estimate"]
    assert fit.fraction_above == pytest.approx(np.mean(x > expected["estimate"]), rel=1e-15)
    assert (fit.n, fit.n_events) == (x.shape[0], int(event.sum()))


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize(("method", "key"), [("lausen92", "p_lau92"), ("lausen94", "p_lau94")])
def test_lausen_p_values_match_maxstat(name, method, key):
    time, event, x, minprop = _case(name)
    fit = optimal_cutpoint(time, event, x, min_fraction=minprop, pvalue=method)
    assert fit.p_value == pytest.approx(REFERENCE[name][key], rel=1e-6)
    assert fit.p_method == method


@pytest.mark.parametrize("name", CASES)
def test_conditional_monte_carlo_agrees_with_maxstat_within_its_error(name):
    time, event, x, minprop = _case(name)
    n_perm = 20_000
    fit = optimal_cutpoint(
        time, event, x, min_fraction=minprop, pvalue="condmc", n_perm=n_perm, seed=11
    )
    reference, b_ref = REFERENCE[name]["p_condmc"], REFERENCE[name]["condmc_b"]
    se = np.sqrt(reference * (1.0 - reference) * (1.0 / n_perm + 1.0 / b_ref))
    assert abs(fit.p_value - reference) < 4.0 * se
    assert fit.extra == {"n_perm": n_perm, "seed": 11}
    again = optimal_cutpoint(
        time, event, x, min_fraction=minprop, pvalue="condmc", n_perm=n_perm, seed=11
    )
    assert again.p_value == fit.p_value


def test_planted_threshold_is_found():
    time, event, score, threshold = _planted(seed=7)
    fit = optimal_cutpoint(time, event, score)
    assert 0.28 <= np.mean(score <= fit.cutpoint) <= 0.32
    assert abs(fit.cutpoint - threshold) < 0.05
    assert fit.higher_risk_above
    assert fit.p_value < 1e-20
    assert fit.statistics.shape == fit.candidates.shape
    assert np.all(np.diff(fit.candidates) > 0)


def test_corrected_p_values_hold_their_level_under_the_null():
    # 300 null data sets: the naive p-value 2(1 - Phi(max T)) rejects far more often than 5%;
    # the corrected ones must not (Lau94 is a bound, so conservative).
    rejections = {"lausen92": 0, "lausen94": 0, "naive": 0}
    for seed in range(300):
        rng = np.random.default_rng(seed)
        time, event = rng.exponential(size=150), rng.uniform(size=150) < 0.7
        score = rng.normal(size=150)
        for method in ("lausen92", "lausen94"):
            fit = optimal_cutpoint(time, event, score, pvalue=method)
            rejections[method] += fit.p_value < 0.05
        rejections["naive"] += 2.0 * norm.sf(fit.statistic) < 0.05
    assert rejections["naive"] / 300 > 0.25
    assert rejections["lausen92"] / 300 < 0.08
    assert rejections["lausen94"] / 300 < 0.08


def test_monotone_transformation_moves_the_cutpoint_and_keeps_the_statistic():
    time, event, x, minprop = _case("dlbcl_mge")
    fit = optimal_cutpoint(time, event, x, min_fraction=minprop)
    for transform in (np.exp, lambda v: 5.0 * v**3 - 2.0):
        moved = optimal_cutpoint(time, event, transform(x), min_fraction=minprop)
        assert moved.cutpoint == pytest.approx(transform(fit.cutpoint), rel=1e-12)
        assert moved.statistic == fit.statistic
        np.testing.assert_array_equal(moved.statistics, fit.statistics)
        assert moved.p_value == fit.p_value


@pytest.mark.parametrize(("name", "method"), [("lung_age", "lausen94"), ("dlbcl_mge", "condmc")])
def test_permuting_subjects_changes_nothing(name, method):
    time, event, x, minprop = _case(name)
    order = np.random.default_rng(5).permutation(x.shape[0])
    fit = optimal_cutpoint(time, event, x, min_fraction=minprop, pvalue=method, n_perm=2000)
    shuffled = optimal_cutpoint(
        time[order], event[order], x[order], min_fraction=minprop, pvalue=method, n_perm=2000
    )
    assert shuffled.cutpoint == fit.cutpoint
    assert shuffled.fraction_above == fit.fraction_above
    np.testing.assert_allclose(shuffled.statistics, fit.statistics, rtol=1e-12)
    assert shuffled.p_value == pytest.approx(fit.p_value, rel=1e-12)


def test_apply_cutpoint_reproduces_the_training_split_and_is_unchanged_on_new_data():
    time, event, score, _ = _planted(seed=3)
    fit = optimal_cutpoint(time[:1000], event[:1000], score[:1000])
    assert np.mean(apply_cutpoint(score[:1000], fit)) == fit.fraction_above
    validation = score[1000:]
    np.testing.assert_array_equal(apply_cutpoint(validation, fit), validation > fit.cutpoint)
    np.testing.assert_array_equal(
        apply_cutpoint(validation, fit.cutpoint), apply_cutpoint(validation, fit)
    )


def test_min_fraction_follows_maxstats_sample_size_rule():
    # 20 distinct scores: minprop 0.2 keeps low groups of 4..16 subjects, cut-points 4th..16th.
    rng = np.random.default_rng(0)
    score = np.arange(1.0, 21.0)
    fit = optimal_cutpoint(rng.exponential(size=20), np.ones(20), score, min_fraction=0.2)
    np.testing.assert_array_equal(fit.candidates, np.arange(4.0, 17.0))
    assert isinstance(fit, Cutpoint) and fit.min_fraction == 0.2


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"event": np.zeros(40)}, "event"),
        ({"min_fraction": 0.0}, "min_fraction"),
        ({"min_fraction": 0.5}, "min_fraction"),
        ({"min_fraction": -0.1}, "min_fraction"),
        ({"min_fraction": np.nan}, "min_fraction"),
        ({"score": np.r_[np.nan, np.arange(39.0)]}, "score"),
        ({"score": np.arange(39.0)}, "score"),
        ({"score": np.ones(40)}, "score"),
        ({"time": np.r_[np.nan, np.ones(39)]}, "time"),
        ({"pvalue": "exact"}, "pvalue"),
        ({"pvalue": "condmc", "n_perm": 0}, "n_perm"),
    ],
)
def test_bad_input_names_the_argument(kwargs, argument):
    rng = np.random.default_rng(1)
    arguments = {
        "time": rng.exponential(size=40),
        "event": rng.uniform(size=40) < 0.6,
        "score": rng.normal(size=40),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=argument):
        optimal_cutpoint(**arguments)


def test_apply_cutpoint_rejects_nan():
    with pytest.raises(ValueError, match="score"):
        apply_cutpoint(np.array([0.1, np.nan]), 0.0)
    with pytest.raises(ValueError, match="cutpoint"):
        apply_cutpoint(np.array([0.1, 0.2]), np.nan)
