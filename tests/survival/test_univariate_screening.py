"""Univariate Cox screening against lifelines and scikit-survival, one model per feature.

lifelines' default stopping rule (precision 1e-7 on its own criterion) leaves coefficients up
to ~5e-5 from the optimum on this data; with ``precision=1e-12`` lifelines converges and both
implementations agree to ~1e-7, so the reference fits use that precision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sksurv.datasets import load_breast_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from radiograph.survival.screening import UnivariateCoxSelector, screen, univariate_cox


@pytest.fixture(scope="module")
def breast_cancer():
    """30 gene-expression columns of GSE7390 (198 subjects, 51 events)."""
    X, y = load_breast_cancer()
    genes = [c for c in X.columns if c.startswith("X")][:30]
    return X[genes].astype(float), y["t.tdm"], y["e.tdm"]


def lifelines_fits(X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> pd.DataFrame:
    rows = {}
    for column in X.columns:
        frame = pd.DataFrame({"x": X[column].to_numpy(), "T": time, "E": event})
        fit = CoxPHFitter().fit(frame, "T", "E", fit_options={"precision": 1e-12})
        rows[column] = fit.summary.loc["x", ["coef", "se(coef)", "z", "p"]].to_numpy(float)
    return pd.DataFrame(rows, index=["coef", "se", "z", "p"]).T


def test_matches_lifelines_efron(breast_cancer):
    X, time, event = breast_cancer
    ours = univariate_cox(X, time, event)
    reference = lifelines_fits(X, time, event)
    assert list(ours.index) == list(X.columns)
    assert ours["converged"].all()
    for key in ("coef", "se", "z", "p"):
        np.testing.assert_allclose(ours[key], reference[key], atol=1e-5, rtol=0, err_msg=key)


def test_matches_lifelines_with_many_tied_times(breast_cancer):
    X, time, event = breast_cancer
    tied = np.floor(time / 365.25) + 1.0  # whole years: ~20 distinct times for 198 subjects
    assert np.unique(tied).size < 30
    ours = univariate_cox(X.iloc[:, :10], tied, event)
    reference = lifelines_fits(X.iloc[:, :10], tied, event)
    for key in ("coef", "se", "p"):
        np.testing.assert_allclose(ours[key], reference[key], atol=1e-5, rtol=0, err_msg=key)


def test_breslow_and_efron_match_scikit_survival(breast_cancer):
    X, time, event = breast_cancer
    tied = np.floor(time / 365.25) + 1.0
    y = Surv.from_arrays(event, tied)
    for ties in ("breslow", "efron"):
        ours = univariate_cox(X.iloc[:, :8], tied, event, ties=ties)["coef"].to_numpy()
        reference = [
            CoxPHSurvivalAnalysis(ties=ties).fit(X[[c]], y).coef_[0] for c in X.columns[:8]
        ]
        np.testing.assert_allclose(ours, reference, atol=1e-6, err_msg=ties)
    breslow = univariate_cox(X.iloc[:, :8], tied, event, ties="breslow")["coef"]
    efron = univariate_cox(X.iloc[:, :8], tied, event, ties="efron")["coef"]
    assert np.abs(breslow - efron).max() > 1e-3  # the tie handling matters on this data


def test_coefficient_scales_with_feature_units(breast_cancer):
    X, time, event = breast_cancer
    base = univariate_cox(X.iloc[:, :5], time, event)
    scaled = univariate_cox(X.iloc[:, :5] * 1000.0 + 7.0, time, event)
    np.testing.assert_allclose(scaled["coef"], base["coef"] / 1000.0, rtol=1e-8)
    np.testing.assert_allclose(scaled["p"], base["p"], rtol=1e-8)


def test_screen_keeps_p_below_threshold(breast_cancer):
    X, time, event = breast_cancer
    reference_p = lifelines_fits(X, time, event)["p"].to_numpy()
    assert 0 < (reference_p < 0.2).sum() < X.shape[1]  # a real selection
    np.testing.assert_array_equal(screen(X, time, event, p=0.2), reference_p < 0.2)


def test_screen_keeps_best_feature_when_none_passes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 6))
    time = rng.exponential(size=80) + 0.01
    event = rng.random(80) < 0.7
    p = univariate_cox(X, time, event)["p"].to_numpy()
    with pytest.warns(UserWarning, match="keeping the best one"):
        mask = screen(X, time, event, p=p.min() / 2)
    np.testing.assert_array_equal(mask, np.arange(6) == np.argmin(p))


def test_constant_column_is_nan_and_never_selected():
    rng = np.random.default_rng(4)
    X = np.c_[rng.normal(size=60), np.full(60, 3.0)]
    time, event = rng.exponential(size=60) + 0.1, np.ones(60, dtype=bool)
    result = univariate_cox(X, time, event)
    assert result.loc[1, ["coef", "se", "z", "p"]].isna().all()
    assert not screen(X, time, event, p=1.0)[1]


def test_selector_in_pipeline_screens_training_rows_only(breast_cancer):
    X, time, event = breast_cancer
    y = Surv.from_arrays(event, time)
    train = np.arange(150)
    pipe = Pipeline([("scale", StandardScaler()), ("screen", UnivariateCoxSelector(p=0.2))])
    out = pipe.fit(X.iloc[train], y[train]).transform(X)
    selector = pipe.named_steps["screen"]
    expected = univariate_cox(X.iloc[train], time[train], event[train])
    np.testing.assert_allclose(selector.result_["p"], expected["p"], rtol=1e-10)
    np.testing.assert_array_equal(selector.get_support(), expected["p"].to_numpy() < 0.2)
    assert out.shape == (X.shape[0], selector.get_support().sum())
    names = pipe.get_feature_names_out()
    assert list(names) == list(X.columns[selector.get_support()])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": np.array([[1.0], [np.nan]])}, "row 1, column 0"),
        ({"time": np.array([1.0, -2.0])}, "row 1"),
        ({"event": np.array([0, 0])}, "no events"),
        ({"ties": "exact"}, "ties"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = {
        "X": np.array([[1.0], [2.0]]),
        "time": np.array([1.0, 2.0]),
        "event": np.array([1, 0]),
        "ties": "efron",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        univariate_cox(args["X"], args["time"], args["event"], ties=args["ties"])


def test_perfectly_ordering_feature_warns_once_and_is_not_selected():
    """A feature that orders every event before every later subject has no finite Cox estimate:
    it is reported unconverged with NaN p (one RuntimeWarning for the call, no NumPy noise),
    the other features are unaffected, and screening does not select it."""
    import warnings

    rng = np.random.default_rng(0)
    n = 20
    time = np.arange(1.0, n + 1.0)
    event = np.ones(n)
    event[::3] = 0.0
    noise = rng.normal(size=n)
    X = np.column_stack([-time, noise])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = univariate_cox(X, time, event)
    assert [str(w.message)[:60] for w in caught] == [
        "univariate_cox: 1 of 2 non-constant features did not converg"
    ]
    assert not result.loc[0, "converged"] and np.isnan(result.loc[0, "p"])
    alone = univariate_cox(noise[:, None], time, event)
    pd.testing.assert_series_equal(result.iloc[1], alone.iloc[0], check_names=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not screen(X, time, event, p=0.99)[0]
