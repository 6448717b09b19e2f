"""Survival evaluation of subject vectors: univariate Cox screening, the paper's four
classical baselines tuned by inner CV, their per-fold fitting (:func:`fit_fold_baselines`, the
one path of studies and :func:`run_baselines`), per-fold metrics and risk groups."""

from radiograph.survival.baselines import (
    BASELINES,
    DEFAULT_GRIDS,
    TunedSurvivalModel,
    inner_splits,
    make_baseline,
    run_baselines,
)
from radiograph.survival.folds import FoldBaselines, fit_fold_baselines
from radiograph.survival.metrics import (
    LOWER_IS_BETTER,
    SURVIVAL_METRICS,
    default_tau,
    evaluate_survival,
    evaluation_times,
    risk_score,
    survival_metrics,
    truncate_follow_up,
)
from radiograph.survival.risk_groups import (
    KaplanMeierCurve,
    RiskGroups,
    risk_threshold,
    stratify_risk,
)
from radiograph.survival.screening import UnivariateCoxSelector, screen, univariate_cox

__all__ = [
    "BASELINES",
    "DEFAULT_GRIDS",
    "FoldBaselines",
    "LOWER_IS_BETTER",
    "SURVIVAL_METRICS",
    "KaplanMeierCurve",
    "RiskGroups",
    "TunedSurvivalModel",
    "UnivariateCoxSelector",
    "default_tau",
    "evaluate_survival",
    "evaluation_times",
    "fit_fold_baselines",
    "inner_splits",
    "make_baseline",
    "risk_score",
    "risk_threshold",
    "run_baselines",
    "screen",
    "stratify_risk",
    "survival_metrics",
    "truncate_follow_up",
    "univariate_cox",
]
