"""Classical survival baselines on subject vectors (paper, section 3.1), tuned by inner CV.

Each baseline is a scikit-learn :class:`~sklearn.pipeline.Pipeline`
``StandardScaler -> UnivariateCoxSelector (optional) -> model`` wrapped in
:class:`TunedSurvivalModel`, which chooses the model's regularisation by an inner K-fold
cross-validation (stratified by the event indicator) on the data passed to ``fit``, i.e. the
outer training fold. The whole pipeline is refitted inside every inner split, so neither the
outer test fold nor the inner validation folds reach scaling, screening or model fitting.
The inner score is Harrell's C-index (the estimators' ``score``).

Models (scikit-survival) and what the inner CV chooses:

- ``rsf``: :class:`~sksurv.ensemble.RandomSurvivalForest`, ``max_depth``.
- ``coxph``: :class:`~sksurv.linear_model.CoxPHSurvivalAnalysis` with ridge penalty ``alpha``.
- ``coxnet``: :class:`~sksurv.linear_model.CoxnetSurvivalAnalysis` (elastic net, ``l1_ratio``
  fixed, default 0.5). The candidate alphas are the path of a first fit on the training fold;
  the chosen alpha is refitted alone (``alphas=[best]``), so predictions are made at the
  chosen alpha and not at the last alpha of a path.
- ``fsvm``: :class:`~sksurv.svm.FastSurvivalSVM` (``rank_ratio=1``: predictions are risk
  scores), ``alpha``. It has no survival function, so its Integrated Brier Score is N/A.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from sksurv.ensemble import RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis
from sksurv.svm import FastSurvivalSVM
from sksurv.util import check_y_survival
from tqdm.auto import tqdm

from radiograph.survival.screening import UnivariateCoxSelector

BASELINES = ("rsf", "coxph", "coxnet", "fsvm")

DEFAULT_GRIDS: dict[str, dict[str, list]] = {
    "rsf": {"max_depth": [2, 4, 8, None]},
    "coxph": {"alpha": [float(a) for a in np.logspace(-1, 4, 6)]},
    "fsvm": {"alpha": [float(a) for a in 2.0 ** np.arange(-12, 13, 2)]},
}
"""Inner-CV grids per model (parameter of the model step -> candidates). Coxnet's candidates
come from its regularisation path; give ``{"alpha": [...]}`` to fix them instead."""


class TunedSurvivalModel(BaseEstimator):
    """A survival pipeline whose hyper-parameters are chosen by inner CV on the fit data.

    Args:
        pipeline: unfitted :class:`~sklearn.pipeline.Pipeline` whose last step is named
            ``"model"`` and is a scikit-survival estimator.
        param_grid: ``{"model__<param>": [candidates]}``; ``None`` or an empty dict with
            ``coxnet_path=False`` means no search.
        coxnet_path: the candidate alphas are the ``alphas_`` of a first fit of ``pipeline``
            on the fit data (the regularisation path) instead of ``param_grid``.
        inner_folds: folds of the inner CV.
        seed: seed of the inner fold assignment.
        n_jobs: parallel jobs of the grid search.

    A grid with a single candidate is fitted directly (no inner CV is needed to choose it).

    Attributes (after ``fit``):
        best_estimator_: the pipeline refitted on all fit data with the chosen parameters.
        best_params_: the chosen parameters.
        cv_results_: GridSearchCV's results, or ``None`` without search.
        path_alphas_: Coxnet's candidate alphas (only with ``coxnet_path``).
        chosen_alpha_: Coxnet's alpha chosen by the inner CV (Coxnet only).

    Coxnet is fitted along its path, as glmnet is: candidate ``a`` is the path from the
    largest candidate down to ``a`` (``model__alphas``, warm-started from one alpha to the
    next) and the model predicts at its last alpha, ``a``. Fitted cold at a single small alpha,
    Coxnet's coordinate descent can diverge ("weights are too large").
    """

    def __init__(
        self,
        pipeline: Pipeline,
        param_grid: Mapping[str, Sequence] | None = None,
        *,
        coxnet_path: bool = False,
        inner_folds: int = 5,
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.param_grid = param_grid
        self.coxnet_path = coxnet_path
        self.inner_folds = inner_folds
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, X: np.ndarray | pd.DataFrame, y: np.ndarray) -> TunedSurvivalModel:
        """Choose the hyper-parameters by inner CV on (X, y) and refit on all of it.

        Args:
            X: (n_subjects, n_features) training features.
            y: scikit-survival structured array (event, time) of the same subjects.
        """
        grid = dict(self.param_grid or {})
        if self.coxnet_path:
            first = clone(self.pipeline).fit(X, y)
            self.path_alphas_ = np.asarray(first[-1].alphas_, dtype=float)
            grid = {"model__alphas": _path_prefixes(self.path_alphas_)}
        elif "model__alphas" in grid:
            grid["model__alphas"] = _path_prefixes(np.concatenate(grid["model__alphas"]))
        n_candidates = int(np.prod([len(v) for v in grid.values()])) if grid else 1
        if n_candidates == 1:
            self.best_params_ = {key: values[0] for key, values in grid.items()}
            self.best_estimator_ = clone(self.pipeline).set_params(**self.best_params_).fit(X, y)
            self.cv_results_ = None
            self._set_chosen_alpha()
            return self
        search = GridSearchCV(
            clone(self.pipeline),
            grid,
            cv=inner_splits(y, self.inner_folds, self.seed),
            refit=True,
            n_jobs=self.n_jobs,
            error_score=np.nan,
        )
        with warnings.catch_warnings():
            # Coxnet's largest path alphas zero every coefficient by construction.
            warnings.filterwarnings("ignore", message="all coefficients are zero")
            search.fit(X, y)
        self.best_params_ = search.best_params_
        self.best_estimator_ = search.best_estimator_
        self.cv_results_ = search.cv_results_
        self._set_chosen_alpha()
        return self

    def _set_chosen_alpha(self) -> None:
        if "model__alphas" in self.best_params_:
            self.chosen_alpha_ = float(self.best_params_["model__alphas"][-1])

    def predict(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """(n_subjects,) predictions of the tuned pipeline (risk scores for every baseline)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def _has_survival_function(self) -> bool:
        return hasattr(self.pipeline[-1], "predict_survival_function")

    @property
    def has_survival_function(self) -> bool:
        """Whether the model gives survival functions (False for FastSurvivalSVM)."""
        return self._has_survival_function()

    @available_if(_has_survival_function)
    def predict_survival_function(
        self, X: np.ndarray | pd.DataFrame, return_array: bool = False
    ) -> np.ndarray:
        """Survival functions S(t | x) of the tuned pipeline (scikit-survival's format)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_survival_function(X, return_array=return_array)

    def score(self, X: np.ndarray | pd.DataFrame, y: np.ndarray) -> float:
        """Harrell's C-index of the tuned pipeline on (X, y)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.score(X, y)

    @property
    def _predict_risk_score(self) -> bool:
        return getattr(self.pipeline[-1], "_predict_risk_score", True)


def _path_prefixes(alphas: np.ndarray) -> list[list[float]]:
    """Coxnet candidates: for each alpha, the descending path from the largest down to it."""
    path = sorted({float(a) for a in alphas}, reverse=True)
    return [path[: i + 1] for i in range(len(path))]


def inner_splits(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold splits of the subjects of ``y`` stratified by the event indicator.

    Falls back to plain shuffled K-fold (with a warning) when there are fewer events or
    censored subjects than folds.
    """
    event, _ = check_y_survival(y)
    index = np.zeros(event.shape[0])
    if min(event.sum(), (~event).sum()) >= n_folds:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(index, event))
    warnings.warn(
        f"inner CV: {int(event.sum())} events and {int((~event).sum())} censored subjects "
        f"cannot be stratified into {n_folds} folds; using unstratified K-fold",
        UserWarning,
        stacklevel=2,
    )
    return list(KFold(n_folds, shuffle=True, random_state=seed).split(index))


def make_baseline(
    name: str,
    *,
    screening: bool = True,
    scaling: bool = True,
    seed: int = 0,
    inner_folds: int = 5,
    grids: Mapping[str, Sequence] | None = None,
    model_params: Mapping[str, Any] | None = None,
    screening_p: float = 0.2,
    n_jobs: int | None = None,
) -> TunedSurvivalModel:
    """Build one of the paper's four baselines as an unfitted :class:`TunedSurvivalModel`.

    Args:
        name: one of :data:`BASELINES` (``"rsf"``, ``"coxph"``, ``"coxnet"``, ``"fsvm"``).
        screening: insert a :class:`UnivariateCoxSelector` (p < ``screening_p``) after the
            scaler.
        scaling: start with a :class:`~sklearn.preprocessing.StandardScaler`. A forest is
            invariant to it in exact arithmetic, but scikit-learn trees cast features to
            float32, so scaled features can split differently (GBSG2 user-guide RSF: C-index
            0.6745 unscaled, 0.6741 scaled).
        seed: seeds the inner folds and the model's randomness (RSF, FSVM).
        inner_folds: folds of the inner CV.
        grids: model parameter -> candidates (without the ``model__`` prefix); replaces
            :data:`DEFAULT_GRIDS` for this model. For Coxnet, ``{"alpha": [...]}`` fixes the
            candidate alphas instead of taking them from the path.
        model_params: extra constructor arguments of the model (e.g. ``n_estimators`` for RSF,
            ``l1_ratio`` for Coxnet). RSF's defaults (200 trees, ``min_samples_split=10``,
            ``min_samples_leaf=15``, the scikit-survival user guide's) suit a hundred or more
            training subjects: a bootstrap sample of n subjects holds about 0.63 n distinct
            ones and a split needs 15 on each side, so with fewer than about 48 training
            subjects no tree splits and the forest predicts one risk for everyone (38: no
            split; 50: 2.7 nodes per tree). Lower ``min_samples_leaf`` for small cohorts.
        screening_p: p-value threshold of the screening (paper: 0.2).
        n_jobs: parallel jobs of the grid search (and of the RSF trees).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    model = _make_model(name, seed, n_jobs).set_params(**dict(model_params or {}))
    steps: list[tuple[str, Any]] = [("scale", StandardScaler())] if scaling else []
    if screening:
        steps.append(("screen", UnivariateCoxSelector(p=screening_p)))
    steps.append(("model", model))
    pipeline = Pipeline(steps)
    grid = dict(grids if grids is not None else DEFAULT_GRIDS.get(name, {}))
    coxnet_path = name == "coxnet" and "alpha" not in grid
    if name == "coxnet" and not coxnet_path:
        grid = {"alphas": [[float(a)] for a in grid.pop("alpha")], **grid}  # see _path_prefixes
    return TunedSurvivalModel(
        pipeline,
        {f"model__{key}": list(values) for key, values in grid.items()},
        coxnet_path=coxnet_path,
        inner_folds=inner_folds,
        seed=seed,
        n_jobs=n_jobs,
    )


def run_baselines(
    X: np.ndarray | pd.DataFrame,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    names: Sequence[str] = BASELINES,
    seed: int = 0,
    screening: bool = True,
    screening_p: float = 0.2,
    scaling: bool = True,
    inner_folds: int = 5,
    grids: Mapping[str, Mapping[str, Sequence]] | None = None,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int | None = None,
    patient_ids: Sequence | None = None,
    n_boot: int = 0,
) -> pd.DataFrame:
    """Fit every baseline on every outer training fold and evaluate it on the test fold.

    Each fold goes through :func:`radiograph.survival.folds.fit_fold_baselines`, as a study's
    folds do; a model that fails on a fold gets NaN metrics and a ``UserWarning`` saying why.

    Args:
        X: (n_subjects, n_features) subject vectors.
        y: scikit-survival structured array (event, time) of the subjects.
        splits: outer folds as (train indices, test indices).
        names: baselines to run.
        seed, screening, screening_p, scaling, inner_folds, n_jobs: as in
            :func:`make_baseline` (``seed`` also seeds the bootstrap).
        grids: per baseline name, its ``grids`` argument of :func:`make_baseline`.
        model_params: per baseline name, its ``model_params`` argument.
        patient_ids: (n_subjects,) patient of each subject, resampled by the bootstrap.
        n_boot: bootstrap resamples of each fold's test metrics (0: no intervals).

    Returns:
        Long DataFrame with columns ``model``, ``fold``, ``metric``, ``value`` (metrics of
        :func:`radiograph.survival.metrics.evaluate_survival`).
    """
    from radiograph.survival.folds import fit_fold_baselines

    values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
    patients = None if patient_ids is None else np.asarray(patient_ids)
    tables = []
    for fold, (train, test) in enumerate(
        tqdm(splits, desc="baselines", leave=False, disable=None)
    ):  # a bar on a terminal only
        rows = np.concatenate([train, test])
        is_test = np.arange(len(rows)) >= len(train)
        result = fit_fold_baselines(
            values[rows],
            y[rows],
            is_test,
            names=names,
            seed=seed,
            screening=screening,
            screening_p=screening_p,
            scaling=scaling,
            inner_folds=inner_folds,
            grids=grids,
            model_params=model_params,
            n_jobs=n_jobs,
            patient_ids=None if patients is None else patients[rows],
            n_boot=n_boot,
        )
        for note in result.notes:
            warnings.warn(f"baselines, fold {fold}: {note}", UserWarning, stacklevel=2)
        tables.append(result.metrics.assign(fold=fold))
    columns = ["model", "fold", "metric", "value"]
    return (
        pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)
    )


def _make_model(name: str, seed: int, n_jobs: int | None) -> BaseEstimator:
    if name == "rsf":
        return RandomSurvivalForest(
            n_estimators=200,
            min_samples_split=10,
            min_samples_leaf=15,
            n_jobs=n_jobs,
            random_state=seed,
        )
    if name == "coxph":
        return CoxPHSurvivalAnalysis(ties="efron", n_iter=100)
    if name == "coxnet":
        return CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=50, fit_baseline_model=True)
    return FastSurvivalSVM(rank_ratio=1.0, max_iter=100, random_state=seed)
