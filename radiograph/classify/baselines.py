"""Classical binary classifiers on subject vectors, tuned by inner CV on the training fold.

The classification counterpart of :mod:`radiograph.survival.baselines` and the classifier bank
of the habitat-fusion study (seeds/000: "LR, Extra Trees, Random Forest, Naive Bayes, SVM, KNN,
XGBoost and LightGBM ... five-fold cross-validation coupled with a grid search"). Each
classifier is a scikit-learn :class:`~sklearn.pipeline.Pipeline` ``StandardScaler -> model``
whose hyper-parameters are chosen by a stratified inner K-fold cross-validation on the data
passed to ``fit`` (the outer training fold), scored by the AUROC; the chosen pipeline is
refitted on all of it. Neither the outer test fold nor the inner validation folds reach scaling
or fitting.

Models (:data:`CLASSIFIERS`) and what the inner CV chooses (:data:`DEFAULT_CLASSIFIER_GRIDS`):

- ``logistic``: L2-penalised :class:`~sklearn.linear_model.LogisticRegression`, ``C``.
- ``rf``: :class:`~sklearn.ensemble.RandomForestClassifier` (300 trees,
  ``min_samples_leaf=3``), ``max_depth``.
- ``extra_trees``: :class:`~sklearn.ensemble.ExtraTreesClassifier` (300 trees,
  ``min_samples_leaf=3``), ``max_depth``.
- ``svm``: RBF :class:`~sklearn.svm.SVC`, Platt-scaled by an inner
  :class:`~sklearn.calibration.CalibratedClassifierCV`, ``estimator__C`` and
  ``estimator__gamma``.
- ``knn``: :class:`~sklearn.neighbors.KNeighborsClassifier`, ``n_neighbors`` and weights.
- ``naive_bayes``: :class:`~sklearn.naive_bayes.GaussianNB`, ``var_smoothing``.
- ``hist_gb``: :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (the gradient
  boosting of the bank; XGBoost/LightGBM are not added: no measured reason),
  ``learning_rate`` and ``max_depth``.

:data:`DEFAULT_CLASSIFIERS` (logistic, rf) is what a study runs when it names no models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

_FACTORIES: dict[str, Callable[[int, int | None], Any]] = {
    "logistic": lambda seed, n_jobs: LogisticRegression(max_iter=5000),
    "rf": lambda seed, n_jobs: RandomForestClassifier(
        n_estimators=300, min_samples_leaf=3, random_state=seed, n_jobs=n_jobs
    ),
    "extra_trees": lambda seed, n_jobs: ExtraTreesClassifier(
        n_estimators=300, min_samples_leaf=3, random_state=seed, n_jobs=n_jobs
    ),
    "svm": lambda seed, n_jobs: CalibratedClassifierCV(
        SVC(kernel="rbf", random_state=seed), method="sigmoid", ensemble=False
    ),
    "knn": lambda seed, n_jobs: KNeighborsClassifier(n_jobs=n_jobs),
    "naive_bayes": lambda seed, n_jobs: GaussianNB(),
    "hist_gb": lambda seed, n_jobs: HistGradientBoostingClassifier(
        max_iter=150, early_stopping=False, random_state=seed
    ),
}
CLASSIFIERS = tuple(_FACTORIES)
"""Every registered classifier name (the bank)."""

DEFAULT_CLASSIFIERS = ("logistic", "rf")
"""What a study fits when its config names no models."""

DEFAULT_CLASSIFIER_GRIDS: dict[str, dict[str, list]] = {
    "logistic": {"C": [float(c) for c in np.logspace(-3, 2, 6)]},
    "rf": {"max_depth": [2, 4, 8, None]},
    "extra_trees": {"max_depth": [2, 4, 8, None]},
    "svm": {"estimator__C": [0.1, 1.0, 10.0], "estimator__gamma": ["scale", 0.01]},
    "knn": {"n_neighbors": [5, 15, 31], "weights": ["uniform", "distance"]},
    "naive_bayes": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
    "hist_gb": {"learning_rate": [0.03, 0.1], "max_depth": [2, 3]},
}
"""Inner-CV grids per classifier (parameter of the model step -> candidates)."""


def make_classifier(
    name: str,
    *,
    seed: int = 0,
    inner_folds: int = 5,
    grids: Mapping[str, Sequence] | None = None,
    model_params: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
) -> GridSearchCV | Pipeline:
    """One unfitted classifier of :data:`CLASSIFIERS`, tuned by inner CV when ``fit``.

    Args:
        name: one of :data:`CLASSIFIERS`.
        seed: seeds the inner folds and the model's own randomness.
        inner_folds: folds of the stratified inner CV.
        grids: model parameter -> candidates (without the ``model__`` prefix); replaces
            :data:`DEFAULT_CLASSIFIER_GRIDS` for this model. A single candidate is fitted
            directly, without inner CV.
        model_params: extra constructor arguments of the model.
        n_jobs: parallel jobs of the grid search (and of the forests).

    Returns:
        A :class:`~sklearn.model_selection.GridSearchCV` (``scoring="roc_auc"``,
        ``refit=True``) or, without a choice to make, the bare pipeline.

    Raises:
        ValueError: unknown ``name`` or ``inner_folds`` < 2.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown classifier {name!r}; expected one of {CLASSIFIERS}")
    if inner_folds < 2:
        raise ValueError(f"inner_folds: must be >= 2, got {inner_folds}")
    model = _FACTORIES[name](seed, n_jobs)
    model.set_params(**dict(model_params or {}))
    pipeline = Pipeline([("scale", StandardScaler()), ("model", model)])
    grid = dict(DEFAULT_CLASSIFIER_GRIDS[name] if grids is None else grids)
    candidates = {f"model__{k}": list(v) for k, v in grid.items()}
    if all(len(v) <= 1 for v in candidates.values()):
        return pipeline.set_params(**{k: v[0] for k, v in candidates.items() if v})
    folds = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
    return GridSearchCV(
        pipeline,
        candidates,
        cv=folds,
        scoring="roc_auc",
        refit=True,
        n_jobs=n_jobs,
        error_score=np.nan,
    )


def positive_probability(model: Any, X: np.ndarray) -> np.ndarray:
    """(n,) predicted probability of class 1 of a fitted classifier."""
    classes = list(model.classes_)
    if 1 not in classes:
        raise ValueError(f"the classifier was fitted without class 1 (classes {classes})")
    return np.asarray(model.predict_proba(X), dtype=np.float64)[:, classes.index(1)]
