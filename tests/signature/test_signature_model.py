"""Slide features and the LASSO-Cox signature: fitted on training subjects only.

The leakage test perturbs everything outside the training subjects (their patch features and
outcomes) and requires the classifier output on training slides, the chosen penalty, the
coefficients and the cut-off to stay bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from radiograph.signature.model import SignatureModel, correlation_filter
from radiograph.signature.slide_features import (
    FEATURE_NAMES,
    likelihood_counts,
    outcome_labels,
    slide_features,
)
from radiograph.stats import optimal_cutpoint


def _cohort(seed: int, n: int = 160, d: int = 8):
    """Slides of 60-120 patches; a subject's share of 'poor' patches sets its hazard."""
    rng = np.random.default_rng(seed)
    poor_mean = rng.normal(0, 1, d)
    share = rng.uniform(0, 1, n)
    patches = {}
    for i in range(n):
        k = rng.integers(60, 120)
        poor = rng.random(k) < share[i]
        patches[f"s{i}"] = rng.normal(0, 1, (k, d)) + np.outer(poor, poor_mean)
    time = rng.exponential(20 / np.exp(2.5 * (share - 0.5)))
    censor = rng.uniform(10, 80, n)
    return patches, np.minimum(time, censor) + 0.01, (time <= censor).astype(int), share


def test_outcome_labels_follow_the_12_36_month_rule() -> None:
    labels = outcome_labels(np.array([5, 12, 13, 30, 36, 37, 40]), np.array([1, 1, 1, 0, 1, 0, 1]))
    np.testing.assert_array_equal(labels, [1, 1, -1, -1, -1, 0, 0])


def test_likelihood_counts_hand_computed() -> None:
    counts = likelihood_counts(np.array([0.0, 0.004, 0.5, 0.499, 1.0]))
    expected = np.zeros(103)
    expected[[0, 50, 100]] = [2, 2, 1]
    expected[101:] = [3, 2]  # pred = prob >= 0.5: 0.0, 0.004, 0.499 below; 0.5, 1.0 above
    np.testing.assert_array_equal(counts, expected)
    assert len(FEATURE_NAMES) == 206


def test_correlation_filter_drops_later_near_copies() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 100))
    X = np.stack([a, b, a + 0.01 * rng.normal(size=100), np.ones(100), -b], axis=1)
    np.testing.assert_array_equal(correlation_filter(X, 0.9), [0, 1])


def test_signature_recovers_the_planted_share_and_points_to_risk() -> None:
    """Spearman(score, planted share), all 160 subjects, measured over cohort seeds 0-4:
    0.871, 0.882, 0.900, 0.912, 0.930; threshold 0.7."""
    patches, time, event, share = _cohort(0)
    labels = dict(zip(patches, outcome_labels(time, event, poor_before=12, good_after=36)))
    ids = list(patches)
    X, _, _ = slide_features(patches, labels, ids[:110])
    model = SignatureModel(cv_folds=5).fit(X[:110], time[:110], event[:110])
    score = model.score(X)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(rank(score), rank(share))[0, 1] > 0.7


def test_penalty_coefficients_and_cutoff_never_see_held_out_subjects() -> None:
    patches, time, event, _ = _cohort(1)
    ids = list(patches)
    train = ids[:110]

    def fit(patches, time, event):
        labels = dict(zip(patches, outcome_labels(time, event)))
        X, probs, _ = slide_features(patches, labels, train)
        model = SignatureModel(cv_folds=5).fit(X[:110], time[:110], event[:110])
        cut = optimal_cutpoint(time[:110], event[:110], model.score(X[:110])).cutpoint
        return model, cut, X, probs

    model, cut, X, probs = fit(patches, time, event)
    rng = np.random.default_rng(99)
    shaken = {s: (x if s in train else rng.normal(3, 2, x.shape)) for s, x in patches.items()}
    time2, event2 = time.copy(), event.copy()
    time2[110:] = rng.uniform(1, 5, len(ids) - 110)
    event2[110:] = 1 - event2[110:]
    model2, cut2, X2, probs2 = fit(shaken, time2, event2)
    assert model2.alpha_ == model.alpha_ and cut2 == cut
    np.testing.assert_array_equal(model2.coef_, model.coef_)
    np.testing.assert_array_equal(X2[:110], X[:110])
    assert not np.array_equal(X2[110:], X[110:])  # the perturbation did reach held-out slides


def test_bad_labels_are_refused() -> None:
    patches, time, event, _ = _cohort(2, n=20)
    with pytest.raises(ValueError, match="labels: both classes"):
        slide_features(patches, {s: 0 for s in patches}, list(patches))
