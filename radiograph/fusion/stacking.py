"""Stacking ensembles (seeds/000, "Ensemble_CH/CP/HP/CHP", Fig. 2c; Naimi & Balzer 2018).

First layer: each unimodal model's *out-of-fold* probability on the training rows (from the
study's inner cross-validation, so no training row is scored by a model that saw it), plus
the selected clinical predictors. Second layer: an L2-penalised logistic regression on
``[logit(p_1), ..., logit(p_M), clinical]`` (z-scored on the training rows), fitted ONCE on
the training rows and applied unchanged to the internal-validation and external cohorts, where
the first-layer inputs are the unimodal models' predictions (models fitted on all training
rows).

The authors' released notebook (github.com/fapingqaz/hcp) refits the meta-model separately
on each cohort, drops test patients to raise the AUC, and tunes on the test set. This module
does none of that: one fit, on training data, every test patient of the comparison kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def _design(probs: np.ndarray, clinical: np.ndarray | None) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs: expected (n, M), got {probs.shape}")
    if not np.isfinite(probs).all() or ((probs < 0) | (probs > 1)).any():
        raise ValueError(
            "probs: every subject needs a probability in [0, 1] from every "
            "first-layer model (stack on the modality intersection)"
        )
    x = _logit(probs)
    if clinical is not None:
        clinical = np.asarray(clinical, dtype=np.float64)
        if clinical.shape[0] != x.shape[0]:
            raise ValueError(f"clinical: {clinical.shape[0]} rows for {x.shape[0]}")
        x = np.column_stack([x, clinical])
    return x


@dataclass
class StackingEnsemble:
    """The L2 logistic meta-model (module docstring).

    Attributes:
        C: inverse L2 penalty of the meta-model.
    """

    C: float = 1.0

    def fit(
        self, oof_probs: np.ndarray, y: np.ndarray, clinical: np.ndarray | None = None
    ) -> StackingEnsemble:
        """``oof_probs``: (n_train, M) out-of-fold unimodal probabilities; ``clinical``:
        (n_train, q) selected clinical predictors or None; ``y``: (n_train,) 0/1."""
        x = _design(oof_probs, clinical)
        self.model_: Pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=5000)
        )
        self.model_.fit(x, np.asarray(y))
        return self

    def predict_proba(self, probs: np.ndarray, clinical: np.ndarray | None = None) -> np.ndarray:
        """(n,) P(y = 1) from (n, M) first-layer probabilities (same column order)."""
        return self.model_.predict_proba(_design(probs, clinical))[:, 1]
