"""The selection chain: planted features recovered, no leakage from test labels, and each step
against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from radiograph.fusion.selection import (
    MRMR,
    CorrelationFilter,
    UnivariateFilter,
    fit_on_training,
    make_selection_chain,
    selected_names,
)


def _planted(seed: int, n: int = 240, d: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Columns 0 and 1 carry the label; column 2 is a near copy of 0; the rest is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d))
    x[:, 0] += 1.0 * y
    x[:, 1] -= 0.8 * y
    x[:, 2] = x[:, 0] + 0.05 * rng.normal(size=n)
    return x, y


def test_planted_columns_selected_in_most_folds():
    """Over 3 seeds x 5 folds, the chain keeps column 1 and one of the twins {0, 2} in every
    fold (measured 15/15 for both) and never both twins (|r| ~ 0.999 > 0.9)."""
    hits = twins = 0
    for seed in range(3):
        x, y = _planted(seed)
        names = [f"f{j}" for j in range(x.shape[1])]
        for train, _ in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
            chain = fit_on_training(
                make_selection_chain(k=10, inner_folds=3, seed=seed), x, y, train
            )
            kept = set(selected_names(chain, names))
            hits += "f1" in kept and bool({"f0", "f2"} & kept)
            twins += {"f0", "f2"} <= kept
    assert hits >= 13 and twins == 0


def test_permuted_test_labels_change_no_fitted_step():
    """Permuting the labels of the test rows (full arrays in) leaves every fitted attribute
    of every step identical."""
    x, y = _planted(1)
    train, test = next(StratifiedKFold(4, shuffle=True, random_state=0).split(x, y))
    y_perm = y.copy()
    y_perm[test] = np.random.default_rng(5).permutation(1 - y[test])
    assert (y_perm[test] != y[test]).any()
    a = fit_on_training(make_selection_chain(k=8, inner_folds=3), x, y, train)
    b = fit_on_training(make_selection_chain(k=8, inner_folds=3), x, y_perm, train)
    for (name, sa), (_, sb) in zip(a.steps, b.steps):
        for attr, value in vars(sa).items():
            if attr.endswith("_") and not attr.startswith("_"):
                np.testing.assert_array_equal(
                    np.asarray(value), np.asarray(getattr(sb, attr)), err_msg=f"{name}.{attr}"
                )
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    # the comparison can fail: permuting training labels does change the univariate p-values
    y_train_perm = y.copy()
    y_train_perm[train] = np.random.default_rng(6).permutation(y[train])
    c = fit_on_training(make_selection_chain(k=8, inner_folds=3), x, y_train_perm, train)
    assert not np.array_equal(a.steps[1][1].p_values_, c.steps[1][1].p_values_)


def test_univariate_filter_matches_scipy_by_hand():
    """A normal column gets Student's t p-value, a heavy-tailed one Mann-Whitney's."""
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 100)
    normal = rng.normal(size=200) + 0.5 * y
    skewed = rng.lognormal(sigma=1.5, size=200) * (1 + 0.5 * y)
    f = UnivariateFilter().fit(np.column_stack([normal, skewed]), y)
    assert f.tests_.tolist() == ["t", "u"]
    assert f.p_values_[0] == pytest.approx(stats.ttest_ind(normal[y == 1], normal[y == 0]).pvalue)
    assert f.p_values_[1] == pytest.approx(
        stats.mannwhitneyu(skewed[y == 1], skewed[y == 0]).pvalue
    )


def test_correlation_and_mrmr_against_hand_rules():
    x, y = _planted(2)
    support = CorrelationFilter(0.9).fit(x[:, :5], y).support_
    assert support[0] != support[2] and support[[1, 3, 4]].all()
    m = MRMR(k=3).fit(x[:, :6], y)
    f = [stats.f_oneway(x[y == 1, j], x[y == 0, j]).statistic for j in range(6)]
    assert m.order_[0] == int(np.argmax(f))
    # the near-copy of the first pick is never chosen second (its redundancy is ~1)
    twin = {0: 2, 2: 0}.get(int(m.order_[0]))
    assert twin is None or twin not in m.order_[:2]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="both classes"):
        UnivariateFilter().fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        MRMR().fit(np.array([[np.nan, 1.0], [1.0, 2.0]]), np.array([0, 1]))
