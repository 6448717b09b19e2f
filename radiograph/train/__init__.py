"""Training: datasets of multi-modal graphs, patient-level splits, the cross-validated loop.

* :func:`load_config` / :class:`TrainConfig`: the YAML settings of ``radiograph train``.
* :func:`make_splits` / :func:`load_or_create_splits`: outer folds shared by every model.
* :func:`load_graph_cohort`: subjects with their graphs and targets.
* :func:`run_cross_validation`, :func:`train_fold`, :func:`fit`, :func:`predict`,
  :func:`load_fold_model`: training, evaluation and the per-fold outputs.
* :func:`look_inside`: node-importance plots of the top- and bottom-risk test subjects.

The names load on first use (:mod:`radiograph._lazy`): importing the package imports no torch.
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), {
    "config": ("ConfigError", "TrainConfig", "config_from_dict", "load_config"),
    "data": ("GraphCohort", "SubjectRecord", "load_graph_cohort"),
    "look_inside": ("look_inside",),
    "splits": ("SplitsError", "load_or_create_splits", "make_splits"),
    "trainer": ("FoldResult", "fit", "load_fold_model", "predict", "run_cross_validation",
                "train_fold"),
})
