"""Tests of radiograph.stats.utility.

References: ``tests/stats/reference/calibration_reference.json`` (see
``calibration_reference.R``): a decision curve computed by hand in R (no Debian R package
implements decision curves), ``Hmisc::improveProb`` (continuous NRI, IDI and their SEs) and a
categorical NRI with the Pencina et al. 2008 SE computed by hand in R; float64 hand
computations on a ten-subject example written out below; property tests.

The worked example of Pencina et al. 2008 (Framingham, HDL added to a CHD model; NRI 0.121)
is not used: its reclassification counts could not be found in the sources available to the
search tool, and numbers are not invented.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from radiograph.stats.resampling import bootstrap_indices
from radiograph.stats.utility import decision_curve, idi, nri

REFERENCE = Path(__file__).parent / "reference" / "calibration_reference.json"
RTOL = 1e-6


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def data(ref: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.asarray(ref["y"]), np.asarray(ref["p_old"]), np.asarray(ref["p_new"])


def close(actual, expected, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12)


# ---- decision curve ----------------------------------------------------------------------------


def test_decision_curve_matches_r_hand_computation(ref, data):
    y, _, p = data
    expected = ref["decision_curve"]
    order = np.random.default_rng(0).permutation(len(expected["thresholds"]))
    thresholds = np.asarray(expected["thresholds"])[order]  # any order is accepted
    curve = decision_curve(y, p, thresholds)
    close(curve.thresholds, thresholds, rtol=0)
    close(curve.net_benefit, np.asarray(expected["net_benefit"])[order])
    close(curve.treat_all, np.asarray(expected["treat_all"])[order])
    close(curve.interventions_avoided, np.asarray(expected["interventions_avoided"])[order])
    np.testing.assert_array_equal(curve.treat_none, 0.0)
    assert np.isnan(curve.net_benefit_low).all() and curve.n_boot == 0


def test_decision_curve_hand_example_and_treat_all_identity():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 1])
    p = np.array([0.9, 0.7, 0.6, 0.4, 0.3, 0.3, 0.1, 0.05])
    curve = decision_curve(y, p, [0.3, 0.5, 0.04], per=50)
    # pt = 0.3: treated p >= 0.3 -> rows 0-5: TP 3, FP 3; pt = 0.5: rows 0-2: TP 2, FP 1
    close(curve.net_benefit[:2], [3 / 8 - 3 / 8 * 0.3 / 0.7, 2 / 8 - 1 / 8 * 1.0], rtol=1e-15)
    prevalence = y.mean()
    odds = curve.thresholds / (1 - curve.thresholds)
    np.testing.assert_array_equal(curve.treat_all, prevalence - (1 - prevalence) * odds)
    # below every risk everyone is treated: the model is treat-all, to the bit
    assert curve.net_benefit[2] == curve.treat_all[2] and curve.interventions_avoided[2] == 0
    close(curve.interventions_avoided[1], (0.125 - (0.5 - 0.5)) / 1.0 * 50, rtol=1e-15)
    frame = curve.to_frame()
    assert len(frame) == 3 and frame["threshold"].tolist() == [0.3, 0.5, 0.04]
    assert {
        "net_benefit",
        "treat_all",
        "treat_none",
        "interventions_avoided",
        "net_benefit_low",
        "interventions_avoided_high",
    } <= set(frame.columns)


def _naive_net_benefit(y, p, pt, indices):
    model, avoided = [], []
    for rows in indices:
        yy, pp = y[rows], p[rows]
        n = len(rows)
        w = pt / (1 - pt)
        treat = pp[:, None] >= pt[None, :]
        nb = (treat & (yy[:, None] == 1)).sum(0) / n - (treat & (yy[:, None] == 0)).sum(0) / n * w
        nb_all = yy.mean() - (1 - yy.mean()) * w
        model.append(nb)
        avoided.append((nb - nb_all) / w * 100)
    return np.array(model), np.array(avoided)


@pytest.mark.parametrize("clustered", [False, True])
def test_decision_curve_bands_equal_a_loop_over_the_same_resamples(data, clustered):
    y, _, p = data
    ids = np.arange(y.shape[0]) // 2 if clustered else None
    pt = np.array([0.6, 0.2, 0.35, 0.5])
    curve = decision_curve(y, p, pt, n_boot=250, seed=4, patient_ids=ids, level=0.9)
    model, avoided = _naive_net_benefit(y, p, pt, bootstrap_indices(ids, 250, 4, y.shape[0]))
    close(curve.net_benefit_low, np.percentile(model, 5, axis=0), rtol=1e-12)
    close(curve.net_benefit_high, np.percentile(model, 95, axis=0), rtol=1e-12)
    close(curve.interventions_avoided_low, np.percentile(avoided, 5, axis=0), rtol=1e-12)
    close(curve.interventions_avoided_high, np.percentile(avoided, 95, axis=0), rtol=1e-12)
    assert np.all(curve.net_benefit_low <= curve.net_benefit)
    assert np.all(curve.net_benefit <= curve.net_benefit_high)


def test_decision_curve_is_invariant_to_subject_order(data):
    y, _, p = data
    order = np.random.default_rng(9).permutation(y.shape[0])
    pt = np.linspace(0.05, 0.95, 19)
    a, b = decision_curve(y, p, pt), decision_curve(y[order], p[order], pt)
    close(a.net_benefit, b.net_benefit, rtol=1e-12)


def test_decision_curve_rejects_bad_input():
    y, p = np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8])
    for bad in ([0.0, 0.5], [0.5, 1.0], [np.nan]):
        with pytest.raises(ValueError, match="thresholds"):
            decision_curve(y, p, bad)
    with pytest.raises(ValueError, match="prob: has 3 entries"):
        decision_curve(y, p[:3], [0.5])
    with pytest.raises(ValueError, match="n_boot"):
        decision_curve(y, p, [0.5], n_boot=-1)
    with pytest.raises(ValueError, match="per"):
        decision_curve(y, p, [0.5], per=0)
    with pytest.raises(ValueError, match="patient_ids: has 3 entries"):
        decision_curve(y, p, [0.5], n_boot=10, patient_ids=[1, 2, 3])


# ---- IDI and NRI against R -------------------------------------------------------------------


def test_idi_matches_hmisc_improveprob(ref, data):
    y, old, new = data
    r = ref["improve_prob"]
    result = idi(y, old, new)
    close([result.estimate, result.se], [r["idi"], r["se_idi"]])
    close(result.p_value, 2 * norm.sf(abs(r["z_idi"])))
    close(
        [result.extra["idi_events"], result.extra["idi_nonevents"]],
        [r["improved_sens"], r["improved_spec"]],
    )
    slope_new = new[y == 1].mean() - new[y == 0].mean()
    slope_old = old[y == 1].mean() - old[y == 0].mean()
    close(result.extra["relative_idi"], slope_new / slope_old - 1, rtol=1e-12)


def test_category_free_nri_matches_hmisc_and_r(ref, data):
    y, old, new = data
    r = ref["improve_prob"]
    result = nri(y, old, new)
    close(
        [result.estimate, result.extra["nri_events"], result.extra["nri_nonevents"]],
        [r["nri"], r["nri_ev"], r["nri_ne"]],
    )
    close(result.se, ref["reclassification"]["continuous_pencina_se"])
    # Hmisc's multinomial variance = Pencina's minus NRI_class^2 / n_class in each class
    n_e, n_ne = result.extra["n_events"], result.extra["n_nonevents"]
    close(result.se**2 - r["nri_ev"] ** 2 / n_e - r["nri_ne"] ** 2 / n_ne, r["se_nri"] ** 2)


def test_categorical_nri_matches_r_hand_computation(ref, data):
    y, old, new = data
    r = ref["reclassification"]["categorical"]
    result = nri(y, old, new, cutoffs=r["cutoffs"])
    close(
        [
            result.estimate,
            result.se,
            result.p_value,
            result.extra["nri_events"],
            result.extra["nri_nonevents"],
        ],
        [r["nri"], r["se"], r["p_value"], r["nri_events"], r["nri_nonevents"]],
    )
    assert result.extra["cutoffs"] == r["cutoffs"] and result.method == "pencina-2008-categorical"


# ---- IDI and NRI: hand computation on ten subjects ---------------------------------------------

Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
OLD = np.array([0.3, 0.5, 0.2, 0.6, 0.2, 0.1, 0.4, 0.3, 0.5, 0.2])
NEW = np.array([0.5, 0.4, 0.3, 0.8, 0.1, 0.1, 0.3, 0.4, 0.2, 0.2])


def test_idi_hand_computation():
    # differences: events +0.2, -0.1, +0.1, +0.2 (mean 0.1, sum of squares 0.10);
    # non-events -0.1, 0, -0.1, +0.1, -0.3, 0 (mean -0.4/6, sum of squares 0.12)
    var_e = (0.10 - 4 * 0.1**2) / 3
    var_ne = (0.12 - 6 * (0.4 / 6) ** 2) / 5
    estimate = 0.1 + 0.4 / 6
    se = np.sqrt(var_e / 4 + var_ne / 6)
    result = idi(Y, OLD, NEW, level=0.9)
    close(
        [result.estimate, result.se, result.p_value],
        [estimate, se, 2 * norm.sf(estimate / se)],
        rtol=1e-12,
    )
    close(
        [result.ci_low, result.ci_high],
        [estimate - norm.ppf(0.95) * se, estimate + norm.ppf(0.95) * se],
        rtol=1e-12,
    )
    close([result.extra["idi_events"], result.extra["idi_nonevents"]], [0.1, 0.4 / 6], rtol=1e-12)
    # discrimination slopes: old 1.6/4 - 1.7/6, new 2.0/4 - 1.3/6
    close(result.extra["relative_idi"], (0.5 - 1.3 / 6) / (0.4 - 1.7 / 6) - 1, rtol=1e-12)


def test_category_free_nri_hand_computation():
    # events: 3 up, 1 down; non-events: 1 up, 3 down, 2 unchanged
    estimate = (3 - 1) / 4 + (3 - 1) / 6
    se = np.sqrt((3 + 1) / 4 / 4 + (1 + 3) / 6 / 6)
    result = nri(Y, OLD, NEW)
    close(
        [result.estimate, result.se, result.p_value],
        [estimate, se, 2 * norm.sf(estimate / se)],
        rtol=1e-12,
    )
    assert result.extra["cutoffs"] is None and result.method == "pencina-2011-category-free"


def test_categorical_nri_hand_computation():
    # categories [0, 0.25), [0.25, 0.45), [0.45, 1]
    # events old 1,2,0,2 -> new 2,1,1,2: 2 up, 1 down; non-events: one down (0.5 -> 0.2)
    estimate = (2 - 1) / 4 + (1 - 0) / 6
    se = np.sqrt((2 + 1) / 4 / 4 + (0 + 1) / 6 / 6)
    result = nri(Y, OLD, NEW, cutoffs=[0.25, 0.45])
    close([result.estimate, result.se], [estimate, se], rtol=1e-12)
    close(
        [
            result.extra["up_events"],
            result.extra["down_events"],
            result.extra["up_nonevents"],
            result.extra["down_nonevents"],
        ],
        [0.5, 0.25, 0.0, 1 / 6],
        rtol=1e-12,
    )


def test_categorical_nri_risk_on_a_cutoff_joins_the_higher_category():
    y = np.array([1, 0, 1, 0])
    result = nri(y, [0.19, 0.3, 0.05, 0.05], [0.2, 0.3, 0.05, 0.05], cutoffs=[0.2])
    assert result.extra["up_events"] == 0.5 and result.estimate == 0.5


# ---- IDI and NRI: properties -------------------------------------------------------------------


@pytest.mark.parametrize("measure", [idi, nri, lambda y, a, b: nri(y, a, b, cutoffs=[0.4, 0.6])])
def test_swapping_old_and_new_flips_the_sign(data, measure):
    y, old, new = data
    forward, backward = measure(y, old, new), measure(y, new, old)
    close(backward.estimate, -forward.estimate, rtol=1e-12)
    close([backward.se, backward.p_value], [forward.se, forward.p_value], rtol=1e-12)
    assert forward.estimate != 0


@pytest.mark.parametrize("measure", [idi, nri, lambda y, a, b: nri(y, a, b, cutoffs=[0.4, 0.6])])
def test_identical_predictions_give_zero_with_p_one(data, measure):
    y, _, new = data
    result = measure(y, new, new)
    assert result.estimate == 0.0 and result.p_value == 1.0 and result.se == 0.0
    assert result.ci_low == result.ci_high == 0.0


@pytest.mark.parametrize("measure", [idi, nri])
def test_permuting_subjects_changes_nothing(data, measure):
    y, old, new = data
    order = np.random.default_rng(1).permutation(y.shape[0])
    a, b = measure(y, old, new), measure(y[order], old[order], new[order])
    close([a.estimate, a.se, a.p_value], [b.estimate, b.se, b.p_value], rtol=1e-12)


def test_idi_and_nri_reject_bad_input():
    with pytest.raises(ValueError, match="p_new: has 9 entries"):
        idi(Y, OLD, NEW[:9])
    with pytest.raises(ValueError, match=r"p_old: 1 value\(s\) not in \[0, 1\], first at index 2"):
        nri(Y, np.r_[OLD[:2], 1.2, OLD[3:]], NEW)
    with pytest.raises(ValueError, match="label: a single class"):
        nri(np.zeros(10), OLD, NEW)
    with pytest.raises(ValueError, match="at least 2 of each"):
        idi(np.r_[1, np.zeros(9)], OLD, NEW)
    with pytest.raises(ValueError, match="p_new: 1 non-finite"):
        idi(Y, OLD, np.r_[NEW[:9], np.nan])
    with pytest.raises(ValueError, match="cutoffs: must be strictly increasing"):
        nri(Y, OLD, NEW, cutoffs=[0.3, 0.2])
    with pytest.raises(ValueError, match="cutoffs: must lie strictly between 0 and 1"):
        nri(Y, OLD, NEW, cutoffs=[0.0, 0.2])
