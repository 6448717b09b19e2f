"""The pathomics signature: Pearson filter, univariate Cox screening, LASSO-Cox (seed 003,
section 5.4), fitted on training subjects only.

1. Correlation filter: walking the columns in order, drop a column whose Pearson |r| with an
   already kept column exceeds ``max_correlation`` (0.9); constant columns are dropped.
2. Univariate Cox screening: keep columns with Wald p < ``screen_p`` (0.05)
   (:func:`radiograph.survival.screening.screen`; the best column is kept if none passes).
3. LASSO-Cox (:class:`sksurv.linear_model.CoxnetSurvivalAnalysis`, ``l1_ratio = 1``) on the
   standardised kept columns; the penalty ``alpha`` is chosen on the model's own path by
   ``cv_folds``-fold cross-validation on the training subjects (Harrell's C of the held-out
   fold, averaged); the coefficients are the path's at that alpha (as glmnet's
   ``coef(cv.fit, s = "lambda.max")``; a cold refit at a small alpha can overflow).

The score is the Cox linear predictor ``sum_j beta_j x_j`` (x standardised with the training
mean and SD): higher = higher hazard, by construction of the Cox model. (The paper reports a
score where lower is worse; we do not.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.util import Surv

from radiograph.stats import harrell_c
from radiograph.survival.screening import screen


@dataclass
class SignatureModel:
    """LASSO-Cox signature (module docstring).

    Attributes:
        max_correlation: Pearson |r| above which a later column is dropped.
        screen_p: univariate Cox p-value threshold.
        cv_folds: folds choosing the penalty.
        n_alphas: length of the penalty path.
        seed: seed of the CV folds.
    """

    max_correlation: float = 0.9
    screen_p: float = 0.05
    cv_folds: int = 10
    n_alphas: int = 30
    seed: int = 0

    def fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray) -> SignatureModel:
        """Fit on training subjects: X (N, F), time (N,) > 0, event (N,) 0/1.

        Attributes set: ``kept_`` (indices into F surviving filter and screening),
        ``alpha_`` (chosen penalty), ``coef_`` (len(kept_),), ``mean_``, ``scale_``,
        ``cv_c_`` (mean held-out C per path alpha), ``alphas_``.
        """
        X = np.asarray(X, dtype=np.float64)
        time = np.asarray(time, dtype=np.float64)
        event = np.asarray(event).astype(bool)
        if X.ndim != 2 or X.shape[0] != time.shape[0] or event.shape != time.shape:
            raise ValueError(
                f"X: shape {X.shape} does not match time {time.shape} / event {event.shape}"
            )
        filtered = correlation_filter(X, self.max_correlation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            passed = screen(X[:, filtered], time, event, p=self.screen_p)
        self.kept_ = filtered[passed]
        Z = X[:, self.kept_]
        self.mean_, self.scale_ = Z.mean(axis=0), Z.std(axis=0)
        Z = (Z - self.mean_) / self.scale_
        y = Surv.from_arrays(event, time)
        path = CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=self.n_alphas).fit(Z, y)
        self.alphas_ = path.alphas_
        folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.seed)
        scores = np.zeros((self.cv_folds, len(self.alphas_)))
        for k, (fit_rows, held) in enumerate(folds.split(Z, event)):
            inner = CoxnetSurvivalAnalysis(l1_ratio=1.0, alphas=self.alphas_).fit(
                Z[fit_rows], y[fit_rows]
            )
            for a, alpha in enumerate(self.alphas_):
                risk = inner.predict(Z[held], alpha=alpha)
                scores[k, a] = (
                    0.5 if np.ptp(risk) == 0 else harrell_c(time[held], event[held], risk)
                )
        self.cv_c_ = scores.mean(axis=0)
        nonzero = np.abs(path.coef_).sum(axis=0) > 0
        candidates = np.where(nonzero, self.cv_c_, -np.inf)
        best = int(np.argmax(candidates))
        self.alpha_ = float(self.alphas_[best])
        self.coef_ = path.coef_[:, best].copy()  # the path's (warm-started) solution there
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """(N,) signature ``sum_j beta_j x_j`` of (N, F) features (higher = higher risk)."""
        Z = (np.asarray(X, dtype=np.float64)[:, self.kept_] - self.mean_) / self.scale_
        return Z @ self.coef_


def correlation_filter(X: np.ndarray, max_correlation: float = 0.9) -> np.ndarray:
    """Indices of the columns kept by the greedy Pearson filter (module docstring, step 1)."""
    if not 0.0 < max_correlation <= 1.0:
        raise ValueError(f"max_correlation: must lie in (0, 1], got {max_correlation}")
    varying = np.flatnonzero(np.ptp(X, axis=0) > 0)
    r = np.abs(np.corrcoef(X[:, varying], rowvar=False)).reshape(len(varying), len(varying))
    kept: list[int] = []
    for j in range(len(varying)):
        if all(r[j, k] <= max_correlation for k in kept):
            kept.append(j)
    return varying[kept]
