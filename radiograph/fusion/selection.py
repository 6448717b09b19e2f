"""The feature-selection chain of seeds/000 as scikit-learn transformers, fitted inside the
cross-validation (training rows only): z-score -> t-test or Mann-Whitney at p < 0.05 ->
Pearson |r| > 0.9 keep one -> mRMR to k -> LASSO-logistic with an inner-CV penalty.

Every step learns from the ``(X, y)`` given to ``fit`` and nothing else; ``transform`` only
drops columns (and the z-score rescales them). Each selecting step exposes ``support_`` (bool
over its input columns). :func:`make_selection_chain` builds the chain;
:func:`selected_names` traces the kept input columns through it; :func:`fit_on_training`
fits a fresh chain on the training indices of full arrays, the only way the study calls it
(``tests/fusion/test_selection.py`` shows that permuting the test rows' labels changes no
fitted step).

Each step keeps at least ``min_features`` columns (the most relevant ones by its own
criterion) so that the chain never returns an empty matrix; that fallback is recorded in
``fallback_``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def _xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X, y: expected (n, d) and (n,), got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X: non-finite values (fill absent features before selection)")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ValueError(f"y: needs both classes 0 and 1, got {sorted(set(y.tolist()))}")
    return X, y.astype(int)


class _Selector(TransformerMixin, BaseEstimator):
    """Shared ``transform`` / ``get_support`` of a column-dropping step."""

    min_features: int = 1

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.support_.size:
            raise ValueError(f"X: expected {self.support_.size} columns, got {X.shape}")
        return X[:, self.support_]

    def get_support(self) -> np.ndarray:
        return self.support_

    def _keep(self, passed: np.ndarray, relevance: np.ndarray) -> None:
        """support_ = passed, or the ``min_features`` most relevant columns if too few."""
        self.fallback_ = int(passed.sum()) < self.min_features
        if self.fallback_:
            passed = np.zeros_like(passed)
            passed[np.argsort(-relevance, kind="stable")[: self.min_features]] = True
        self.support_ = passed


class UnivariateFilter(_Selector):
    """Keep columns whose two classes differ at ``p < alpha``.

    Per column, Shapiro-Wilk in each class (normal when both p >= ``normality_alpha``): then
    Student's two-sample t-test, otherwise the two-sided Mann-Whitney U test.

    Attributes (fitted): ``p_values_`` (d,), ``tests_`` (d,) ``"t"`` or ``"u"``, ``support_``.
    """

    def __init__(self, alpha: float = 0.05, normality_alpha: float = 0.05, min_features: int = 1):
        self.alpha = alpha
        self.normality_alpha = normality_alpha
        self.min_features = min_features

    def fit(self, X: np.ndarray, y: np.ndarray) -> UnivariateFilter:
        X, y = _xy(X, y)
        a, b = X[y == 1], X[y == 0]
        normal = np.array(
            [
                min(len(a), len(b)) >= 3
                and np.ptp(a[:, j]) > 0
                and np.ptp(b[:, j]) > 0
                and stats.shapiro(a[:, j]).pvalue >= self.normality_alpha
                and stats.shapiro(b[:, j]).pvalue >= self.normality_alpha
                for j in range(X.shape[1])
            ]
        )
        p = np.ones(X.shape[1])
        if normal.any():
            p[normal] = stats.ttest_ind(a[:, normal], b[:, normal]).pvalue
        if (~normal).any():
            p[~normal] = stats.mannwhitneyu(
                a[:, ~normal], b[:, ~normal], alternative="two-sided"
            ).pvalue
        p = np.nan_to_num(p, nan=1.0)
        self.p_values_ = p
        self.tests_ = np.where(normal, "t", "u")
        self._keep(p < self.alpha, -p)
        return self


def _abs_corr(X: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(X, rowvar=False)
    return np.nan_to_num(np.abs(np.atleast_2d(r)), nan=0.0)


def _relevance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Pearson r| of each column with the 0/1 label (point-biserial)."""
    return _abs_corr(np.column_stack([y.astype(np.float64), X]))[0, 1:]


class CorrelationFilter(_Selector):
    """Of every pair with Pearson ``|r| > threshold`` keep one: columns are visited by
    decreasing relevance (``|r|`` with the label) and kept when no kept column exceeds the
    threshold with them."""

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold
        self.min_features = 1

    def fit(self, X: np.ndarray, y: np.ndarray) -> CorrelationFilter:
        X, y = _xy(X, y)
        r = _abs_corr(X)
        kept: list[int] = []
        for j in np.argsort(-_relevance(X, y), kind="stable"):
            if all(r[j, i] <= self.threshold for i in kept):
                kept.append(int(j))
        support = np.zeros(X.shape[1], dtype=bool)
        support[kept] = True
        self._keep(support, _relevance(X, y))
        return self


class MRMR(_Selector):
    """Minimum redundancy maximum relevance, greedy to ``k`` columns (Ding & Peng 2005, the
    F-test correlation quotient "FCQ" for continuous features): first the column with the
    largest F statistic; then repeatedly the column maximising ``F_j / mean_{i in S} |r_ij|``.

    Attributes (fitted): ``order_`` (the chosen columns in order), ``support_``.
    """

    def __init__(self, k: int = 20):
        self.k = k
        self.min_features = 1

    def fit(self, X: np.ndarray, y: np.ndarray) -> MRMR:
        if self.k < 1:
            raise ValueError(f"k: must be >= 1, got {self.k}")
        X, y = _xy(X, y)
        from sklearn.feature_selection import f_classif

        f = np.nan_to_num(f_classif(X, y)[0], nan=0.0)
        r = _abs_corr(X)
        order = [int(np.argmax(f))]
        while len(order) < min(self.k, X.shape[1]):
            redundancy = np.maximum(r[:, order].mean(axis=1), 1e-12)
            score = f / redundancy
            score[order] = -np.inf
            order.append(int(np.argmax(score)))
        self.order_ = np.array(order)
        support = np.zeros(X.shape[1], dtype=bool)
        support[order] = True
        self._keep(support, f)
        return self


class LassoSelector(_Selector):
    """Columns with a non-zero coefficient in an L1-penalised logistic regression whose
    penalty is chosen by stratified inner CV (``LogisticRegressionCV``, AUROC, ``Cs``
    candidates on a log grid, liblinear solver)."""

    def __init__(self, Cs: int = 10, inner_folds: int = 5, seed: int = 0, min_features: int = 1):
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.seed = seed
        self.min_features = min_features

    def fit(self, X: np.ndarray, y: np.ndarray) -> LassoSelector:
        X, y = _xy(X, y)
        folds = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)
        model = LogisticRegressionCV(
            Cs=self.Cs,
            cv=folds,
            l1_ratios=(1.0,),
            solver="liblinear",
            scoring="roc_auc",
            max_iter=2000,
            random_state=self.seed,
            use_legacy_attributes=False,
        )
        model.fit(X, y)
        self.C_ = float(np.ravel(model.C_)[0])
        self.coef_ = model.coef_.ravel()
        self._keep(self.coef_ != 0, np.abs(self.coef_) + _relevance(X, y) * 1e-9)
        return self


def make_selection_chain(
    *, k: int = 20, alpha: float = 0.05, threshold: float = 0.9, inner_folds: int = 5, seed: int = 0
) -> Pipeline:
    """The seeds/000 chain as an unfitted :class:`~sklearn.pipeline.Pipeline` (steps
    ``zscore``, ``univariate``, ``correlation``, ``mrmr``, ``lasso``)."""
    return Pipeline(
        [
            ("zscore", StandardScaler()),
            ("univariate", UnivariateFilter(alpha=alpha)),
            ("correlation", CorrelationFilter(threshold=threshold)),
            ("mrmr", MRMR(k=k)),
            ("lasso", LassoSelector(inner_folds=inner_folds, seed=seed)),
        ]
    )


def selected_names(chain: Pipeline, names: Sequence[str]) -> list[str]:
    """Input column names that survive every selecting step of a fitted chain."""
    names = np.asarray(list(names))
    for _, step in chain.steps:
        if hasattr(step, "support_"):
            names = names[step.support_]
    return names.tolist()


def fit_on_training(chain: Pipeline, X: np.ndarray, y: np.ndarray, train: np.ndarray) -> Pipeline:
    """A fresh clone of ``chain`` fitted on ``X[train], y[train]`` only (full arrays in, so a
    caller cannot pass test rows by mistake)."""
    train = np.asarray(train)
    return clone(chain).fit(np.asarray(X)[train], np.asarray(y)[train])
