"""Risk groups against lifelines (log-rank test, Cox hazard ratio, Kaplan-Meier)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from sksurv.util import Surv

from radiograph.survival.risk_groups import risk_threshold, stratify_risk


@pytest.fixture(scope="module")
def cohort():
    """Risk scores with a real effect; integer times so that ties occur."""
    rng = np.random.default_rng(21)
    risk_train = rng.normal(size=120) + 0.3
    risk_test = rng.normal(size=60)
    event_time = np.ceil(10 * rng.exponential(np.exp(-risk_test)))
    censor_time = np.ceil(10 * rng.exponential(2.0, size=60))
    y = Surv.from_arrays(event_time <= censor_time, np.minimum(event_time, censor_time))
    return risk_train, risk_test, y


def test_threshold_is_the_training_mean_or_median():
    risk = np.array([0.0, 1.0, 2.0, 9.0])
    assert risk_threshold(risk, "mean") == 3.0
    assert risk_threshold(risk, "median") == 1.5
    with pytest.raises(ValueError, match="rule"):
        risk_threshold(risk, "max")


@pytest.mark.parametrize("rule", ["mean", "median"])
def test_groups_logrank_and_hazard_ratio_match_lifelines(cohort, rule):
    risk_train, risk_test, y = cohort
    groups = stratify_risk(risk_train, risk_test, y, rule=rule)
    threshold = np.mean(risk_train) if rule == "mean" else np.median(risk_train)
    np.testing.assert_array_equal(groups.high, risk_test > threshold)
    high = groups.high
    time, event = y["time"], y["event"]
    reference = logrank_test(time[high], time[~high], event[high], event[~high])
    assert groups.logrank_p == pytest.approx(reference.p_value, rel=1e-8)
    assert groups.logrank_chi2 == pytest.approx(reference.test_statistic, rel=1e-8)
    frame = pd.DataFrame({"high": high.astype(float), "T": time, "E": event})
    cox = CoxPHFitter().fit(frame, "T", "E", fit_options={"precision": 1e-12})
    summary = cox.summary.loc["high"]
    assert groups.hazard_ratio == pytest.approx(summary["exp(coef)"], rel=1e-6)
    assert groups.hr_low == pytest.approx(summary["exp(coef) lower 95%"], rel=1e-6)
    assert groups.hr_high == pytest.approx(summary["exp(coef) upper 95%"], rel=1e-6)
    assert groups.hazard_ratio > 1 and groups.logrank_p < 0.05  # the planted effect


def test_kaplan_meier_curves_match_lifelines(cohort):
    risk_train, risk_test, y = cohort
    groups = stratify_risk(risk_train, risk_test, y)
    for name, members in (("low", ~groups.high), ("high", groups.high)):
        curve = groups.curves[name]
        assert curve.n == members.sum()
        km = KaplanMeierFitter().fit(y["time"][members], y["event"][members])
        expected = km.survival_function_at_times(curve.time).to_numpy()
        np.testing.assert_allclose(curve.survival, expected, rtol=1e-10)
        band = km.confidence_interval_survival_function_.loc[curve.time].to_numpy()
        np.testing.assert_allclose(curve.lower, band[:, 0], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(curve.upper, band[:, 1], rtol=1e-6, atol=1e-12)


def test_single_group_has_no_comparison(cohort):
    _, risk_test, y = cohort
    with pytest.warns(UserWarning, match="one group"):
        groups = stratify_risk(np.array([100.0]), risk_test, y)
    assert not groups.high.any() and set(groups.curves) == {"low"}
    assert np.isnan(groups.logrank_p) and np.isnan(groups.hazard_ratio)
