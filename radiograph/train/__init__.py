"""Training: datasets of multi-modal graphs, patient-level splits, the cross-validated loop.

* :func:`load_config` / :class:`TrainConfig`: the YAML settings of ``radiograph train``.
* :func:`make_splits` / :func:`load_or_create_splits`: outer folds shared by every model.
* :func:`load_graph_cohort`: subjects with their graphs and targets.
* :func:`run_cross_validation`, :func:`train_fold`, :func:`fit`, :func:`predict`,
  :func:`load_fold_model`: training, evaluation and the per-fold outputs.
* :func:`look_inside`: node-importance plots of the top- and bottom-risk test subjects.
"""

from radiograph.train.config import ConfigError, TrainConfig, config_from_dict, load_config
from radiograph.train.data import GraphCohort, SubjectRecord, load_graph_cohort
from radiograph.train.look_inside import look_inside
from radiograph.train.splits import SplitsError, load_or_create_splits, make_splits
from radiograph.train.trainer import (
    FoldResult,
    fit,
    load_fold_model,
    predict,
    run_cross_validation,
    train_fold,
)

__all__ = [
    "ConfigError",
    "FoldResult",
    "GraphCohort",
    "SplitsError",
    "SubjectRecord",
    "TrainConfig",
    "config_from_dict",
    "fit",
    "load_config",
    "load_fold_model",
    "load_graph_cohort",
    "load_or_create_splits",
    "look_inside",
    "make_splits",
    "predict",
    "run_cross_validation",
    "train_fold",
]
