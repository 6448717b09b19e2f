"""Classifier baselines: the inner CV sees only the data given to fit, a planted signal is
recovered on held-out data, and bad names are rejected."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from radiograph.classify import CLASSIFIERS, make_classifier, positive_probability


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 12))
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1]
    y = (rng.random(240) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_planted_signal_is_recovered_out_of_sample(data, name):
    x, y = data
    small = {
        "rf": {"n_estimators": 60},
        "extra_trees": {"n_estimators": 60},
        "hist_gb": {"max_iter": 40},
    }.get(name)
    with threadpool_limits(limits=1):  # OpenMP (hist_gb) on shared cores
        model = make_classifier(name, seed=1, inner_folds=3, model_params=small).fit(
            x[:160], y[:160]
        )
    assert isinstance(model, GridSearchCV)
    prob = positive_probability(model, x[160:])
    assert prob.shape == (80,) and ((prob >= 0) & (prob <= 1)).all()
    assert roc_auc_score(y[160:], prob) > 0.75


def test_test_rows_do_not_change_the_fitted_model(data):
    """Fitting on the training rows only: whatever the other rows hold, same predictions."""
    x, y = data
    first = make_classifier("logistic", seed=0, inner_folds=3).fit(x[:160], y[:160])
    x_other = x.copy()
    x_other[160:] = np.random.default_rng(9).normal(size=(80, 12))
    second = make_classifier("logistic", seed=0, inner_folds=3).fit(x_other[:160], y[:160])
    np.testing.assert_array_equal(positive_probability(first, x), positive_probability(second, x))
    assert first.best_params_ == second.best_params_


def test_single_candidate_skips_the_search_and_unknown_name_fails(data):
    x, y = data
    model = make_classifier("logistic", grids={"C": [0.5]}).fit(x, y)
    assert not isinstance(model, GridSearchCV) and model.named_steps["model"].C == 0.5
    with pytest.raises(ValueError, match="unknown classifier 'xgboost'"):
        make_classifier("xgboost")
