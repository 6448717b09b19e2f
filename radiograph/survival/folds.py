"""The downstream survival models of one outer fold: the one path by which a study
(:func:`radiograph.study.fit_baselines`) and :func:`radiograph.survival.run_baselines` fit and
score them.

Each model (:func:`~radiograph.survival.baselines.make_baseline`) sees only the fold's
training subjects (scaling, screening and inner-CV tuning included) and is scored on its test
subjects (:func:`~radiograph.survival.metrics.evaluate_survival`). A model that cannot be
fitted on the fold (too few subjects, no event, a diverging path) gets NaN metrics and a note
instead of stopping the other models.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import FitFailedWarning

from radiograph.survival.baselines import BASELINES, make_baseline
from radiograph.survival.metrics import SURVIVAL_METRICS, evaluate_survival, risk_score

CONSTANT_RISK_HINTS = {
    "rsf": "min_samples_leaf may be too large for {n_train} training subjects "
    "(baselines.model_params.rsf)",
    "coxnet": "the inner CV chose an alpha that zeroes every coefficient",
}
"""Why a model may give every test subject the same risk (C-index 0.5), per model."""


@dataclass(frozen=True)
class FoldBaselines:
    """The downstream models of one fold.

    Attributes:
        metrics: long table ``model, metric, value`` (:data:`SURVIVAL_METRICS` of every
            model, NaN for a model that failed; with ``n_boot > 0`` also the interval bounds).
        risks: model -> (n,) risk score of every subject of the fold (training and test, in
            input order); absent for a model that failed.
        notes: one line per problem (a model that failed, or that gives every test subject
            the same risk), naming the model and why.
    """

    metrics: pd.DataFrame
    risks: dict[str, np.ndarray]
    notes: tuple[str, ...]


def fit_fold_baselines(
    x: np.ndarray,
    y: np.ndarray,
    is_test: np.ndarray,
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
) -> FoldBaselines:
    """Fit each model on the fold's training rows and score it on its test rows.

    Args:
        x: (n, p) subject vectors of the fold's subjects (training and test).
        y: (n,) scikit-survival structured array (event, time) of the same subjects.
        is_test: (n,) bool, True for the test subjects.
        names: models of :data:`~radiograph.survival.baselines.BASELINES`, in output order.
        seed: seeds the inner folds, the models' randomness and the bootstrap.
        screening, screening_p, scaling, inner_folds, n_jobs: as in
            :func:`~radiograph.survival.baselines.make_baseline`.
        grids, model_params: per model name, its ``grids`` / ``model_params`` argument of
            :func:`~radiograph.survival.baselines.make_baseline`.
        patient_ids: (n,) patient of each row (the bootstrap resamples patients); default one
            patient per row.
        n_boot: bootstrap resamples of the test metrics' intervals (0: none).

    Returns:
        A :class:`FoldBaselines`. Inner-CV candidates that fail to fit score NaN and are not
        chosen (their warnings are silenced); other warnings pass through.

    Raises:
        ValueError: ``x``, ``y``, ``is_test`` or ``patient_ids`` of different lengths, or a
            fold without training or test rows.
    """
    x = np.asarray(x, dtype=np.float64)
    is_test = np.asarray(is_test, dtype=bool)
    if x.ndim != 2 or len(y) != len(x) or is_test.shape != (len(x),):
        raise ValueError(
            f"x (n, p), y (n,) and is_test (n,) must match; got x {x.shape}, "
            f"y {len(y)}, is_test {is_test.shape}"
        )
    if is_test.all() or not is_test.any():
        raise ValueError(
            f"is_test: the fold needs training and test rows, got "
            f"{int((~is_test).sum())} and {int(is_test.sum())}"
        )
    if patient_ids is not None and len(patient_ids) != len(x):
        raise ValueError(f"patient_ids: {len(patient_ids)} for {len(x)} rows")
    test_patients = None if patient_ids is None else np.asarray(patient_ids)[is_test]
    rows: list[dict[str, Any]] = []
    risks: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name in names:
        model = make_baseline(
            name,
            screening=screening,
            scaling=scaling,
            seed=seed,
            inner_folds=inner_folds,
            grids=(grids or {}).get(name),
            model_params=(model_params or {}).get(name),
            screening_p=screening_p,
            n_jobs=n_jobs,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=FitFailedWarning)
                model.fit(x[~is_test], y[~is_test])
            metrics = evaluate_survival(
                model,
                y[~is_test],
                y[is_test],
                x[is_test],
                patient_ids=test_patients,
                n_boot=n_boot,
                seed=seed,
            )
        except (ValueError, ArithmeticError) as err:  # a fold too small, no events, divergence
            reason = str(err).strip().splitlines()[0]
            notes.append(f"{name} failed, its metrics are N/A: {reason}")
            rows += [{"model": name, "metric": k, "value": np.nan} for k in SURVIVAL_METRICS]
            continue
        rows += [{"model": name, "metric": k, "value": v} for k, v in metrics.items()]
        risks[name] = risk_score(model, x)
        if np.ptp(risks[name][is_test]) == 0:
            hint = CONSTANT_RISK_HINTS.get(name, "no feature carries signal")
            notes.append(
                f"{name} gives every test subject the same risk (C-index 0.5); "
                + hint.format(n_train=int((~is_test).sum()))
            )
    return FoldBaselines(
        pd.DataFrame(rows, columns=["model", "metric", "value"]), risks, tuple(notes)
    )
