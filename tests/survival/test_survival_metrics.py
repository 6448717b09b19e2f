"""Fold metrics against direct scikit-survival / scikit-learn calls and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.svm import FastSurvivalSVM
from sksurv.util import Surv

from radiograph.stats.resampling import bootstrap_indices
from radiograph.survival.metrics import (
    evaluate_survival,
    risk_score,
    survival_metrics,
    truncate_follow_up,
)


@pytest.fixture(scope="module")
def fold():
    """A Cox model fitted on 150 subjects; 50 test subjects all inside the training follow-up."""
    rng = np.random.default_rng(11)
    n = 200
    X = rng.normal(size=(n, 5))
    event_time = rng.exponential(np.exp(-(X[:, 0] - 0.7 * X[:, 1])))
    censor_time = rng.exponential(2.0, size=n)
    y = Surv.from_arrays(event_time <= censor_time, np.minimum(event_time, censor_time) + 1e-3)
    train, test = np.arange(150), np.arange(150, n)
    longest = train[np.argmax(y["time"][train])]
    if y["time"][test].max() >= y["time"][longest]:  # keep the test fold inside training
        raise AssertionError("fixture assumption broken: change the seed")
    model = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis()).fit(X[train], y[train])
    return model, X[train], y[train], X[test], y[test]


def reference_times(y_test: np.ndarray) -> np.ndarray:
    """The documented grid, computed here independently: 10 quantiles of the test event times
    between the 10th and 80th percentile."""
    return np.unique(np.quantile(y_test["time"][y_test["event"]], np.linspace(0.1, 0.8, 10)))


def test_metrics_equal_direct_scikit_survival_calls(fold):
    model, _, y_train, X_test, y_test = fold
    risk = model.predict(X_test)
    times = reference_times(y_test)
    tau = np.quantile(y_train["time"], 0.8)
    survival = np.vstack([fn(times) for fn in model.predict_survival_function(X_test)])
    ours = evaluate_survival(model, y_train, y_test, X_test)
    assert ours["c_index"] == concordance_index_censored(y_test["event"], y_test["time"], risk)[0]
    assert ours["c_ipcw"] == concordance_index_ipcw(y_train, y_test, risk, tau=tau)[0]
    assert ours["c_auc"] == cumulative_dynamic_auc(y_train, y_test, risk, times)[1]
    assert ours["ibs"] == integrated_brier_score(y_train, y_test, survival, times)
    assert 0.6 < ours["c_index"] < 1 and 0 < ours["ibs"] < 0.25


def test_risk_array_has_no_ibs(fold):
    model, _, y_train, X_test, y_test = fold
    from_array = evaluate_survival(model.predict(X_test), y_train, y_test)
    from_model = evaluate_survival(model, y_train, y_test, X_test)
    assert np.isnan(from_array["ibs"])
    for key in ("c_index", "c_ipcw", "c_auc"):
        assert from_array[key] == from_model[key]


def test_test_subjects_outliving_training_are_censored_at_its_end(fold):
    model, _, y_train, X_test, y_test = fold
    horizon = y_train["time"].max()
    longer = y_test.copy()
    longer["time"][:3] = horizon + np.array([0.5, 1.0, 2.0])
    longer["event"][:3] = True
    risk = model.predict(X_test)
    times = reference_times(y_test)
    with pytest.raises(ValueError):  # scikit-survival refuses events beyond training
        cumulative_dynamic_auc(y_train, longer, risk, times)
    truncated = truncate_follow_up(longer, horizon)
    assert not truncated["event"][:3].any() and (truncated["time"][:3] == horizon).all()
    ours = survival_metrics(y_train, longer, risk, times=times)
    assert ours["c_auc"] == cumulative_dynamic_auc(y_train, truncated, risk, times)[1]
    assert ours["c_index"] == concordance_index_censored(longer["event"], longer["time"], risk)[0]


def test_risk_score_follows_the_estimator_direction():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3))
    event_time = rng.exponential(np.exp(-X[:, 0]))
    y = Surv.from_arrays(np.ones(120, dtype=bool), event_time + 1e-3)
    regression = FastSurvivalSVM(rank_ratio=0.0, fit_intercept=True, random_state=0).fit(X, y)
    risk = risk_score(regression, X)
    np.testing.assert_array_equal(risk, -regression.predict(X))  # predicts times: negated
    assert concordance_index_censored(y["event"], y["time"], risk)[0] == regression.score(X, y)
    assert regression.score(X, y) > 0.6


def test_patient_bootstrap_resamples_patients_not_rows():
    patients = np.repeat(np.array(["a", "b", "c", "d", "e"]), [1, 2, 3, 1, 2])
    resamples = bootstrap_indices(patients, 200, seed=0)
    for rows in resamples:
        drawn, counts = np.unique(patients[rows], return_counts=True)
        sizes = dict(zip(*np.unique(patients, return_counts=True)))
        for patient, count in zip(drawn, counts):
            assert count % sizes[patient] == 0  # all rows of a drawn patient, together
        assert sum(count // sizes[p] for p, count in zip(drawn, counts)) == 5
    again = bootstrap_indices(patients, 200, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(resamples, again))


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded(fold):
    model, _, y_train, X_test, y_test = fold
    patients = np.arange(y_test.shape[0]) // 2  # two subjects per patient
    first = evaluate_survival(
        model, y_train, y_test, X_test, patient_ids=patients, n_boot=100, seed=3
    )
    again = evaluate_survival(
        model, y_train, y_test, X_test, patient_ids=patients, n_boot=100, seed=3
    )
    assert first == again
    for key in ("c_index", "c_ipcw", "c_auc", "ibs"):
        assert first[f"{key}_ci_low"] < first[key] < first[f"{key}_ci_high"], key


@pytest.mark.parametrize("patients", [np.arange(12), np.array(list("qwertyqwerab"))])
def test_resamples_are_those_of_the_former_survival_bootstrap(patients):
    """evaluate_survival's intervals are unchanged by the move to radiograph.stats.resampling:
    the former implementation (sorted patients, one rng.integers draw) gives the same rows."""

    def former(patient_ids, n_boot, seed):
        ids, inverse = np.unique(patient_ids, return_inverse=True)
        rows_of = [np.flatnonzero(inverse == k) for k in range(ids.shape[0])]
        draws = np.random.default_rng(seed).integers(0, ids.shape[0], size=(n_boot, ids.shape[0]))
        return [np.concatenate([rows_of[k] for k in draw]) for draw in draws]

    for seed in (0, 3):
        new, old = bootstrap_indices(patients, 50, seed), former(patients, 50, seed)
        assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True))
