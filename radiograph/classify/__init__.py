"""Binary classification of subject vectors: classical classifiers tuned by inner CV."""

from radiograph.classify.baselines import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER_GRIDS,
    DEFAULT_CLASSIFIERS,
    make_classifier,
    positive_probability,
)

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_CLASSIFIERS",
    "DEFAULT_CLASSIFIER_GRIDS",
    "make_classifier",
    "positive_probability",
]
