"""Patch classifier on frozen patch features and its per-slide likelihood features.

Following Chen et al. (Adv. Sci. 2025, seed 003, section 5.4): every patch inherits its
subject's outcome class (1 = poor, 0 = good, unlabelled subjects are scored but not trained
on), a patch classifier gives each patch ``Patch_prob`` (P(poor), rounded to 2 decimals, 101
values) and ``Patch_pred`` (``prob >= 0.5``), and each slide becomes

- ``histo_prob`` (101) and ``histo_pred`` (2): bin counts, min-max normalised per bin over
  the *training* slides, and
- ``bow_prob`` (101) and ``bow_pred`` (2): the same counts as a bag of words, TF-IDF weighted
  with the inverse document frequencies of the training slides (scikit-learn
  ``TfidfTransformer``: ``idf = ln((1 + n) / (1 + df)) + 1``, rows L2-normalised),

concatenated: 206 features. Everything fitted (classifier, min-max ranges, IDF) sees the
training slides only; :meth:`SlideFeaturizer.transform` applies them unchanged to any slide.
The module knows nothing about survival: labels in, per-slide features out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

PROB_BINS = 101  # Patch_prob rounded to 2 decimals: 0.00, 0.01, ..., 1.00
PRED_BINS = 2
FEATURE_NAMES = tuple(
    [f"histo_prob_{i:03d}" for i in range(PROB_BINS)]
    + ["histo_pred_0", "histo_pred_1"]
    + [f"bow_prob_{i:03d}" for i in range(PROB_BINS)]
    + ["bow_pred_0", "bow_pred_1"]
)


def outcome_labels(
    time: np.ndarray, event: np.ndarray, *, poor_before: float = 12.0, good_after: float = 36.0
) -> np.ndarray:
    """Outcome class per subject: 1 = event by ``poor_before``, 0 = event-free beyond
    ``good_after`` (same time unit), -1 = neither (scored, not trained on).

    Args:
        time: (N,) follow-up times (e.g. RFS in months).
        event: (N,) 1 = event (recurrence), 0 = censored.
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=np.int64)
    if time.shape != event.shape:
        raise ValueError(f"event: shape {event.shape} differs from time {time.shape}")
    if not poor_before < good_after:
        raise ValueError(f"poor_before: must be < good_after, got {poor_before}, {good_after}")
    labels = np.full(time.shape, -1, dtype=np.int64)
    labels[(event == 1) & (time <= poor_before)] = 1
    labels[time > good_after] = 0
    return labels


@dataclass
class PatchClassifier:
    """Logistic regression on standardised frozen patch features (``C`` the inverse L2
    penalty); patches of a slide carry the slide's label.

    Attributes:
        max_patches_per_slide: training patches drawn per slide (None: all), so large slides
            do not dominate.
        C: inverse regularisation strength.
        seed: seed of the patch subsample and the solver.
    """

    max_patches_per_slide: int | None = 256
    C: float = 0.1
    seed: int = 0

    def fit(self, features: Sequence[np.ndarray], labels: Sequence[int]) -> PatchClassifier:
        """Fit on slides ``features[i]`` (N_i, D) with labels 0/1; slides labelled -1 are
        skipped.

        Raises:
            ValueError: lengths differ, a label outside {-1, 0, 1}, or one class missing.
        """
        if len(features) != len(labels):
            raise ValueError(f"labels: {len(labels)} for {len(features)} slides")
        labels = np.asarray(labels)
        if not np.isin(labels, (-1, 0, 1)).all():
            raise ValueError(f"labels: must be -1, 0 or 1, got {sorted(set(labels.tolist()))}")
        if not {0, 1} <= set(labels.tolist()):
            raise ValueError("labels: both classes 0 and 1 are needed among the training slides")
        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for x, y in zip(features, labels):
            if y < 0:
                continue
            if self.max_patches_per_slide is not None and len(x) > self.max_patches_per_slide:
                x = x[rng.choice(len(x), self.max_patches_per_slide, replace=False)]
            xs.append(x)
            ys.append(np.full(len(x), y))
        self.model_: Pipeline = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)
        )
        self.model_.fit(np.concatenate(xs), np.concatenate(ys))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N,) P(poor outcome) of each patch of (N, D) ``features``."""
        return self.model_.predict_proba(np.asarray(features))[:, 1]


def likelihood_counts(prob: np.ndarray) -> np.ndarray:
    """(103,) counts of a slide's patch probabilities: 101 bins of ``round(prob, 2)``, then
    the 2 bins of ``prob >= 0.5``."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 1 or not ((prob >= 0) & (prob <= 1)).all():
        raise ValueError("prob: must be a 1-D array of probabilities in [0, 1]")
    bins = np.rint(prob * 100).astype(np.int64)
    pred = (prob >= 0.5).astype(np.int64)
    return np.concatenate(
        [np.bincount(bins, minlength=PROB_BINS), np.bincount(pred, minlength=PRED_BINS)]
    ).astype(np.float64)


@dataclass
class SlideFeaturizer:
    """Min-max normalised histograms and TF-IDF bags of words (module docstring), fitted on
    the training slides' counts."""

    def fit(self, counts: np.ndarray) -> SlideFeaturizer:
        """``counts``: (S_train, 103) from :func:`likelihood_counts`."""
        counts = _counts(counts)
        self.low_ = counts.min(axis=0)
        self.range_ = counts.max(axis=0) - self.low_
        self.tfidf_prob_ = TfidfTransformer().fit(counts[:, :PROB_BINS])
        self.tfidf_pred_ = TfidfTransformer().fit(counts[:, PROB_BINS:])
        return self

    def transform(self, counts: np.ndarray) -> np.ndarray:
        """(S, 206) features of (S, 103) counts, in the order of :data:`FEATURE_NAMES`."""
        counts = _counts(counts)
        histo = (counts - self.low_) / np.where(self.range_ > 0, self.range_, 1.0)
        bow_prob = self.tfidf_prob_.transform(counts[:, :PROB_BINS]).toarray()
        bow_pred = self.tfidf_pred_.transform(counts[:, PROB_BINS:]).toarray()
        return np.concatenate([histo, bow_prob, bow_pred], axis=1)


def slide_features(
    patch_features: Mapping[str, np.ndarray],
    labels: Mapping[str, int],
    train: Sequence[str],
    *,
    classifier: PatchClassifier | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], PatchClassifier]:
    """Labels in, per-slide features out: fit the patch classifier and the featurizer on the
    ``train`` slides, then describe every slide.

    Args:
        patch_features: slide id -> (N_i, D) frozen patch features.
        labels: slide id -> 1 (poor), 0 (good), -1 (unlabelled); only ``train`` ids are read.
        train: ids of the training slides.
        classifier: an unfitted classifier (default :class:`PatchClassifier`).

    Returns:
        ``(X, probs, classifier)``: X (S, 206) in the order of ``patch_features``, each
        slide's (N_i,) patch probabilities, the fitted classifier.
    """
    missing = [s for s in train if s not in patch_features]
    if missing:
        raise ValueError(f"train: {len(missing)} id(s) without patch features, e.g. {missing[0]}")
    classifier = classifier or PatchClassifier()
    classifier.fit([patch_features[s] for s in train], [labels[s] for s in train])
    probs = {s: classifier.predict_proba(x) for s, x in patch_features.items()}
    counts = {s: likelihood_counts(p) for s, p in probs.items()}
    featurizer = SlideFeaturizer().fit(np.stack([counts[s] for s in train]))
    return featurizer.transform(np.stack(list(counts.values()))), probs, classifier


def _counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != PROB_BINS + PRED_BINS:
        raise ValueError(f"counts: expected (S, {PROB_BINS + PRED_BINS}), got {counts.shape}")
    return counts
