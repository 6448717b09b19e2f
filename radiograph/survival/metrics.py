"""Survival metrics per outer fold (paper, section 3.1): direct scikit-survival calls. The
classification metrics are in :mod:`radiograph.stats.discrimination`.

Survival (all computed on the test fold; the censoring distribution of the IPCW metrics is the
Kaplan-Meier estimate of the *training* fold, as scikit-survival does):

- ``c_index``: Harrell's C (:func:`sksurv.metrics.concordance_index_censored`).
- ``c_ipcw``: Uno's C (:func:`sksurv.metrics.concordance_index_ipcw`) truncated at ``tau``.
  Default ``tau`` = the 80th percentile of the training follow-up times (:func:`default_tau`):
  inside the training follow-up, where the censoring survival estimated on the training fold
  is still well above zero, so the IPC weights stay bounded (Uno et al. 2011 recommend a tau
  with adequate follow-up). Only test events before ``tau`` are scored.
- ``c_auc``: mean cumulative/dynamic AUC (the ``mean_auc`` of
  :func:`sksurv.metrics.cumulative_dynamic_auc`) over :func:`evaluation_times`.
- ``ibs``: :func:`sksurv.metrics.integrated_brier_score` over the same times, for models with
  a survival function; NaN otherwise (FSVM, or a bare risk score), as "N/A" in the paper.

The IPCW metrics need every test event inside the training follow-up (scikit-survival raises
otherwise). Test subjects followed up to or beyond the last training time are therefore
censored at that time (:func:`truncate_follow_up`), which changes none of the three IPCW
metrics at times before it (all evaluation times and ``tau`` are).

Risk scores are "higher = earlier event" (estimators predicting survival times are negated,
following scikit-survival's ``_predict_risk_score`` flag).

Confidence intervals: percentile bootstrap over *patients* (all rows of a resampled patient
enter together, so several subjects of one patient are never split), seeded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv, check_y_survival

from radiograph.stats.resampling import bootstrap_indices

SURVIVAL_METRICS = ("c_index", "c_ipcw", "c_auc", "ibs")
LOWER_IS_BETTER = frozenset({"ibs"})


def risk_score(model: Any, X: np.ndarray) -> np.ndarray:
    """(n_subjects,) risk scores of a fitted scikit-survival estimator, pipeline or
    :class:`~radiograph.survival.baselines.TunedSurvivalModel` (higher = higher risk)."""
    prediction = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    return prediction if getattr(model, "_predict_risk_score", True) else -prediction


def default_tau(y_train: np.ndarray, quantile: float = 0.8) -> float:
    """Truncation time of Uno's C: the ``quantile`` of the training follow-up times."""
    _, time = check_y_survival(y_train)
    return float(np.quantile(time, quantile))


def truncate_follow_up(y_test: np.ndarray, horizon: float) -> np.ndarray:
    """Censor at ``horizon`` every subject of ``y_test`` whose time is >= ``horizon``.

    Args:
        y_test: structured array (event, time).
        horizon: the last time of the training follow-up (same unit as the times).

    Returns:
        A new structured array with the same field names.
    """
    event, time = check_y_survival(y_test)
    beyond = time >= horizon
    name_event, name_time = y_test.dtype.names
    return Surv.from_arrays(
        np.where(beyond, False, event), np.where(beyond, horizon, time), name_event, name_time
    )


def evaluation_times(
    y_train: np.ndarray,
    y_test: np.ndarray,
    *,
    n_times: int = 10,
    lower: float = 0.1,
    upper: float = 0.8,
) -> np.ndarray:
    """Time grid of the C-AUC and the IBS: quantiles of the test event times.

    ``n_times`` quantiles between the ``lower`` and ``upper`` quantile of the test event times,
    kept inside the test follow-up ``[min, max)`` (scikit-survival's condition) and below the
    last training time; duplicates removed. The result may have fewer than ``n_times`` points.

    Returns:
        (n,) sorted times, same unit as ``y_test``.
    """
    _, train_time = check_y_survival(y_train)
    test_event, test_time = check_y_survival(y_test)
    if not test_event.any():
        return np.empty(0)
    grid = np.quantile(test_time[test_event], np.linspace(lower, upper, n_times))
    keep = (grid >= test_time.min()) & (grid < test_time.max()) & (grid < train_time.max())
    return np.unique(grid[keep])


def survival_metrics(
    y_train: np.ndarray,
    y_test: np.ndarray,
    risk: np.ndarray,
    survival: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None,
    *,
    times: np.ndarray | None = None,
    tau: float | None = None,
) -> dict[str, float]:
    """The four survival metrics of one test fold from risk scores (and survival functions).

    Args:
        y_train: structured array (event, time) of the training fold (censoring distribution).
        y_test: structured array of the test fold.
        risk: (n_test,) risk scores, higher = earlier event.
        survival: n_test callables t -> S(t | x) (scikit-survival StepFunctions), or None.
        times: evaluation times of C-AUC and IBS; default :func:`evaluation_times`.
        tau: truncation time of Uno's C; default :func:`default_tau`.

    Returns:
        ``{"c_index", "c_ipcw", "c_auc", "ibs"}`` -> float. A metric that scikit-survival cannot
        compute on this fold (e.g. no comparable pair, fewer than two evaluation times) is NaN
        and a ``UserWarning`` gives the reason.
    """
    risk = np.asarray(risk, dtype=np.float64).reshape(-1)
    event, time = check_y_survival(y_test)
    if risk.shape[0] != time.shape[0]:
        raise ValueError(f"risk has {risk.shape[0]} entries but y_test has {time.shape[0]}")
    _, train_time = check_y_survival(y_train)
    y_ipcw = truncate_follow_up(y_test, float(train_time.max()))
    times = evaluation_times(y_train, y_ipcw) if times is None else np.asarray(times, float)
    tau = default_tau(y_train) if tau is None else tau

    def ibs() -> float:
        if survival is None:
            return np.nan
        probs = np.vstack([fn(times) for fn in survival])
        return integrated_brier_score(y_train, y_ipcw, probs, times)

    return {
        "c_index": _guard("c_index", lambda: concordance_index_censored(event, time, risk)[0]),
        "c_ipcw": _guard("c_ipcw", lambda: concordance_index_ipcw(y_train, y_ipcw, risk, tau)[0]),
        "c_auc": _guard("c_auc", lambda: cumulative_dynamic_auc(y_train, y_ipcw, risk, times)[1]),
        "ibs": _guard("ibs", ibs),
    }


def evaluate_survival(
    model_or_risk: Any,
    y_train: np.ndarray,
    y_test: np.ndarray,
    X_test: np.ndarray | None = None,
    *,
    times: np.ndarray | None = None,
    tau: float | None = None,
    patient_ids: Sequence | None = None,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Survival metrics of one outer fold, optionally with patient-level bootstrap CIs.

    Args:
        model_or_risk: a fitted survival model (risk scores from ``predict``; survival
            functions, hence the IBS, when it has ``predict_survival_function``) or
            (n_test,) risk scores, anything without ``predict`` (IBS NaN).
        y_train: structured array (event, time) of the training fold.
        y_test: structured array of the test fold.
        X_test: (n_test, n_features) test features; required with a model.
        times: evaluation times (C-AUC, IBS); default :func:`evaluation_times`, recomputed on
            every bootstrap resample.
        tau: truncation time of Uno's C; default :func:`default_tau`.
        patient_ids: (n_test,) patient of each test row; default one patient per row.
        n_boot: bootstrap resamples (0 = no intervals).
        seed: bootstrap seed.
        level: confidence level of the percentile intervals.

    Returns:
        ``c_index``, ``c_ipcw``, ``c_auc``, ``ibs`` and, with ``n_boot > 0``,
        ``<metric>_ci_low`` / ``<metric>_ci_high``.
    """
    if not hasattr(model_or_risk, "predict"):
        risk, survival = np.asarray(model_or_risk, dtype=np.float64).reshape(-1), None
    else:
        if X_test is None:
            raise ValueError("evaluate_survival: X_test is required when a model is given")
        risk = risk_score(model_or_risk, X_test)
        survival = (
            model_or_risk.predict_survival_function(X_test)
            if _has_survival_function(model_or_risk)
            else None
        )
    result = survival_metrics(y_train, y_test, risk, survival, times=times, tau=tau)
    if n_boot > 0:
        samples = []
        for rows in bootstrap_indices(patient_ids, n_boot, seed, n_rows=risk.shape[0]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples.append(
                    survival_metrics(
                        y_train,
                        y_test[rows],
                        risk[rows],
                        None if survival is None else survival[rows],
                        times=times,
                        tau=tau,
                    )
                )
        result.update(_percentile_intervals(samples, SURVIVAL_METRICS, level))
    return result


def _has_survival_function(model: Any) -> bool:
    if hasattr(model, "has_survival_function"):
        return bool(model.has_survival_function)
    final = model.steps[-1][-1] if hasattr(model, "steps") else model
    return hasattr(final, "predict_survival_function")


def _percentile_intervals(
    samples: list[dict[str, float]], names: Sequence[str], level: float
) -> dict[str, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    out = {}
    for name in names:
        values = np.array([s[name] for s in samples], dtype=np.float64)
        valid = values[np.isfinite(values)]
        if valid.size < 0.9 * values.size:
            warnings.warn(
                f"bootstrap: {name} undefined on {values.size - valid.size} of {values.size} "
                "resamples; the interval uses the others",
                UserWarning,
                stacklevel=3,
            )
        low, high = np.percentile(valid, [tail, 100.0 - tail]) if valid.size else (np.nan, np.nan)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def _guard(name: str, compute: Callable[[], float]) -> float:
    """Run one scikit-survival metric; NaN with a warning when it is undefined on the fold."""
    try:
        return float(compute())
    except ValueError as err:
        warnings.warn(f"{name} is undefined on this fold: {err}", UserWarning, stacklevel=3)
        return np.nan
