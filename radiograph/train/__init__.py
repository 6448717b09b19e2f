"""Training: datasets of multi-modal graphs, patient-level splits, the cross-validated loop.

* :func:`load_config` / :class:`TrainConfig`: the YAML settings of ``radiograph train``.
* :func:`make_splits` / :func:`load_or_create_splits`: outer folds shared by every model.
* :func:`load_graph_cohort`: subjects with their graphs and targets;
  :func:`load_training_data`: those with the manifest and graph fingerprints, to share.
* :func:`run_cross_validation`, :func:`train_fold` (:func:`current_fold`, :func:`fit_fold`,
  :func:`write_fold`), :func:`fit`, :func:`predict`, :func:`load_fold_model`: training,
  evaluation and the per-fold outputs.
* :mod:`radiograph.train.look_inside`: node-importance plots of the top- and bottom-risk test
  subjects (import the function from that module: the package attribute ``look_inside`` is
  the module).

The names load on first use (:mod:`radiograph._lazy`): importing the package imports no torch.
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "config": ("ConfigError", "TrainConfig", "config_from_dict", "load_config"),
        "data": ("GraphCohort", "SubjectRecord", "load_graph_cohort"),
        "splits": ("SplitsError", "load_or_create_splits", "make_splits"),
        "trainer": (
            "FoldFit",
            "FoldResult",
            "TrainingData",
            "current_fold",
            "fit",
            "fit_fold",
            "load_fold_model",
            "load_training_data",
            "predict",
            "run_cross_validation",
            "train_fold",
            "write_fold",
        ),
    },
)
