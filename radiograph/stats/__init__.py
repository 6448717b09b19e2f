"""Statistics a reviewer asks for, as pure functions on numpy arrays.

Every function checks its input (a ``ValueError`` names the argument and says why) and returns
a small frozen dataclass with the estimate, its interval, the p-value where there is one, and
the method (:class:`~radiograph.stats.results.Estimate`,
:class:`~radiograph.stats.results.Comparison`, or a module's own result type). Each module's
numbers are tested against R (pROC, survival, Hmisc, rms, metafor, maxstat; the scripts and
their committed outputs are in ``tests/stats/reference/``) or float64 hand computations.

=====================  ==================================================================
module                 what it holds
=====================  ==================================================================
``discrimination``     AUROC with DeLong or bootstrap intervals, DeLong tests (paired,
                       unpaired, matrix), binary metrics with Wilson intervals, thresholds
                       chosen on training data (Youden, target sensitivity/specificity)
``concordance``        Harrell's and Uno's C with Noether or bootstrap intervals (vectorised
                       patient bootstrap), time-dependent AUC at named horizons
``comparison``         two C-indices on the same patients (Kang et al. 2015, paired
                       bootstrap); cross-validated comparison (Nadeau & Bengio 2003)
``calibration``        calibration curve, intercept and slope, Hosmer-Lemeshow, Brier
``utility``            decision curves (net benefit, interventions avoided), IDI, NRI
``regression``         Cox and logistic tables (HR/OR with intervals, LR tests),
                       univariable-then-multivariable selection, treatment x group interaction
``pooling``            fixed- and random-effects meta-analysis (DerSimonian-Laird, REML)
``cutpoints``          maximally selected log-rank cut-point with corrected p-values
``resampling``         patient-level bootstrap and jackknife, percentile and BCa intervals
``results``            the shared result types and the one p-value format
=====================  ==================================================================

Names are importable from ``radiograph.stats`` directly; a submodule (and its dependencies,
e.g. lifelines for ``regression``) is imported on first use.
"""

from __future__ import annotations

from radiograph._lazy import lazy_exports

EXPORTS = {
    "discrimination": (
        "auc_ci",
        "delong_test",
        "delong_test_unpaired",
        "delong_matrix",
        "binary_metrics",
        "BinaryMetrics",
        "wilson_interval",
        "choose_threshold",
        "youden_threshold",
        "evaluate_classification",
        "CLASSIFICATION_METRICS",
    ),
    "concordance": (
        "harrell_c",
        "uno_c",
        "concordance_ci",
        "noether_se",
        "concordance_covariance",
        "weighted_concordance",
        "bootstrap_weights",
        "time_dependent_auc",
    ),
    "comparison": (
        "compare_concordance",
        "paired_bootstrap_difference",
        "paired_fold_differences",
        "corrected_resampled_ttest",
        "compare_cv",
    ),
    "calibration": (
        "calibration_curve",
        "CalibrationCurve",
        "calibration_intercept_slope",
        "CalibrationFit",
        "hosmer_lemeshow",
        "HosmerLemeshow",
        "brier_score",
        "scaled_brier",
        "brier_ci",
    ),
    "utility": ("decision_curve", "DecisionCurve", "idi", "nri"),
    "regression": (
        "cox_regression",
        "logistic_regression",
        "univariable_then_multivariable",
        "interaction_test",
        "RegressionResult",
        "SelectionResult",
        "InteractionResult",
    ),
    "pooling": ("meta_analysis", "MetaAnalysis"),
    "cutpoints": ("optimal_cutpoint", "apply_cutpoint", "Cutpoint"),
    "resampling": ("bootstrap_indices", "percentile_interval", "bca_interval"),
    "results": ("Estimate", "Comparison", "format_p"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), EXPORTS)
