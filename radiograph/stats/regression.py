r"""Regression tables for clinical covariates: Cox and logistic models, univariable screening
followed by a multivariable model, and the treatment-by-group interaction test.

Fitting is delegated to the libraries the field uses: lifelines' ``CoxPHFitter`` (Efron's
approximation for tied event times, its default; R's ``coxph(ties = "efron")``) and statsmodels'
``Logit`` (maximum likelihood by Newton-Raphson; R's ``glm(family = binomial)``). This module
builds the design (indicator columns of categorical covariates against a named reference
level), checks the input and reports the tables.

For a coefficient :math:`\hat\beta` with standard error :math:`s` (inverse observed
information), :math:`z = \hat\beta / s`, the two-sided Wald p-value is :math:`2\Phi(-|z|)` and the
interval of the ratio (hazard or odds ratio) is :math:`\exp(\hat\beta \pm z_{1-\alpha/2}\, s)`, as
R's ``confint`` for ``coxph`` and ``confint.default`` for ``glm`` (Wald, not profile likelihood).
The likelihood-ratio test against the null model is :math:`2(\ell - \ell_0)` on as many degrees
of freedom as there are terms. For Cox models :math:`\ell_0` is the Efron partial
log-likelihood at :math:`\beta = 0` in closed form, stratified like the model:

.. math::

    \ell_0 = -\sum_{\text{strata}} \sum_k \sum_{l=0}^{d_k - 1} \log(n_k - l)
           = -\sum_{\text{strata}} \sum_k \log \frac{n_k!}{(n_k - d_k)!},

with :math:`n_k` subjects at risk and :math:`d_k` events at the k-th distinct event time
(lifelines' own null model ignores the strata, so it is not used).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.api as sm
from lifelines import CoxPHFitter
from scipy.special import gammaln
from scipy.stats import chi2, norm
from sklearn.metrics import roc_auc_score
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

from radiograph.stats._checks import as_binary_label, as_vector, check_level
from radiograph.stats.results import Estimate

Model = Literal["cox", "logistic"]

INTERCEPT = "(Intercept)"
# lifelines' Newton-Raphson stops when the step norm or the Newton decrement falls below
# ``precision`` (default 1e-7) or the relative log-likelihood change below ``r_precision``
# (default 1e-9). Measured against R's coxph: the defaults leave the stratified model of
# survival::lung 1e-5 (relative) off, and any ``r_precision`` > 0 may stop where the change of
# the log-likelihood is lost to rounding (4e-8 off on survival::colon). With these: <= 1e-10.
_COX_FIT_OPTIONS = {"precision": 1e-15, "r_precision": 0.0, "max_steps": 500}
_LOGIT_TOL = 1e-12
_LOGIT_MAX_ITER = 100


@dataclass(frozen=True)
class RegressionResult:
    """A fitted Cox or logistic model, one row per term.

    Attributes:
        table: DataFrame, one row per term, columns ``term`` (``col`` for a continuous
            covariate, ``col[level]`` for a level of a categorical one, ``(Intercept)`` for the
            logistic intercept), ``covariate`` (the column the term comes from), ``coef``
            (log hazard or log odds ratio per unit of the covariate), ``se``, ``hazard_ratio``
            (Cox) or ``odds_ratio`` (logistic), ``ci_low``, ``ci_high`` (Wald interval on the
            ratio scale), ``z`` and ``p_value`` (two-sided Wald).
        n: subjects in the fit.
        n_events: events (Cox) or positive outcomes (logistic).
        log_likelihood: (partial) log-likelihood of the fit.
        null_log_likelihood: the same at the null model (no covariate; intercept-only for the
            logistic model; same strata for a stratified Cox model).
        lr_statistic, lr_df, lr_p: likelihood-ratio test of the model against the null model.
        method: e.g. ``"cox-efron (lifelines)"``.
        level: confidence level of the intervals.
        concordance: Harrell's C on the fitted data (Cox; within strata when stratified),
            NaN for a logistic model.
        auc: ROC AUC of the fitted probabilities (logistic), NaN for a Cox model.
        n_dropped: rows dropped for missing values (only with ``dropna=True``).
    """

    table: pd.DataFrame
    n: int
    n_events: int
    log_likelihood: float
    null_log_likelihood: float
    lr_statistic: float
    lr_df: int
    lr_p: float
    method: str
    level: float
    concordance: float = math.nan
    auc: float = math.nan
    n_dropped: int = 0

    @property
    def ratio_name(self) -> str:
        """``"hazard_ratio"`` or ``"odds_ratio"``: the ratio column of :attr:`table`."""
        return "hazard_ratio" if "hazard_ratio" in self.table.columns else "odds_ratio"

    def forest_frame(self) -> pd.DataFrame:
        """Rows of a forest plot: ``term``, ``ratio``, ``ci_low``, ``ci_high``, ``p`` (no
        intercept)."""
        rows = self.table[self.table["term"] != INTERCEPT]
        frame = rows[["term", self.ratio_name, "ci_low", "ci_high", "p_value"]]
        return frame.rename(columns={self.ratio_name: "ratio", "p_value": "p"}).reset_index(
            drop=True
        )


@dataclass(frozen=True)
class SelectionResult:
    """Univariable screening followed by a multivariable model.

    Attributes:
        univariable: one row per term, each from the univariable model of its covariate
            (columns of :attr:`RegressionResult.table`, the intercepts left out), plus
            ``lr_p``: the likelihood-ratio p-value of that covariate's model against the null
            model (over all its levels for a categorical covariate).
        kept: covariates whose ``lr_p`` is below ``p_enter``, in the order given.
        multivariable: the model on the kept covariates, or None when none is kept.
        reason: why there is no multivariable model ("" when there is one).
        p_enter: the threshold.
        criterion: the test used for selection (``"likelihood-ratio"``).
    """

    univariable: pd.DataFrame
    kept: tuple[str, ...]
    multivariable: RegressionResult | None
    reason: str
    p_enter: float
    criterion: str = "likelihood-ratio"


@dataclass(frozen=True)
class InteractionResult:
    """Treatment effect by group (Cox) and the treatment x group interaction test.

    Attributes:
        by_group: one row per group level: ``group``, ``n``, ``n_events``, ``n_treated``,
            ``hazard_ratio`` of treatment (1 vs 0) within the group, ``ci_low``, ``ci_high``
            (Wald), ``p_value`` (Wald).
        lr_statistic, lr_df, lr_p: likelihood-ratio test of the model with the interaction
            terms against the model without them (df = number of group levels - 1).
        wald_p: Wald p-value of the interaction coefficient for a two-level group, else NaN.
        ratio_of_hazard_ratios: for a two-level group, the interaction term's exp(coef)
            (treatment HR in the second level over that in the reference level) with its Wald
            interval and p-value; None for more levels.
        with_interaction, without_interaction: the two fitted models.
        level: confidence level.
        n, n_events: subjects and events in the whole table.
        n_dropped: rows dropped for missing values (only with ``dropna=True``).
        method: ``"cox-efron (lifelines)"``.
    """

    by_group: pd.DataFrame
    lr_statistic: float
    lr_df: int
    lr_p: float
    wald_p: float
    ratio_of_hazard_ratios: Estimate | None
    with_interaction: RegressionResult
    without_interaction: RegressionResult
    level: float
    n: int
    n_events: int
    n_dropped: int
    method: str


def cox_regression(
    table: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    *,
    categorical: Mapping[str, Any] | None = None,
    strata: Sequence[str] | None = None,
    level: float = 0.95,
    penalizer: float = 0.0,
    dropna: bool = False,
) -> RegressionResult:
    """Cox proportional-hazards regression (Efron ties) with a hazard-ratio table.

    Args:
        table: one row per subject.
        duration: column of follow-up times (>= 0, any time unit).
        event: column of event indicators (1 = event, 0 = censored).
        covariates: columns entering the model. Numeric columns enter as they are (one term
            per unit); those named in ``categorical`` as indicator columns.
        categorical: column -> reference level. The column is expanded into one indicator
            ``col[level]`` per other level (levels sorted; a pandas categorical keeps its
            order). The reference may be given as the value or its text (``1`` or ``"1"``).
        strata: columns whose combinations are strata with their own baseline hazard
            (R's ``strata()``); they get no coefficient.
        level: confidence level of the intervals.
        penalizer: lifelines' ridge penalty (0 = plain partial likelihood); with a penalty
            the standard errors, intervals and tests are those of the penalised fit.
        dropna: drop rows with a missing value in a used column (the count is kept in
            ``n_dropped``); by default a missing value is an error.

    Returns:
        A :class:`RegressionResult` with ``hazard_ratio`` and ``concordance``.

    Raises:
        ValueError: naming the column for a missing column, missing values, a non-numeric
            covariate not declared categorical, a constant covariate, an unknown reference
            level, an empty level, negative times, an event indicator other than 0/1 or no
            events.
    """
    level = check_level(level)
    if not (math.isfinite(penalizer) and penalizer >= 0.0):
        raise ValueError(f"penalizer: must be finite and >= 0, got {penalizer}")
    strata = list(strata or ())
    frame, n_dropped = _complete_rows(table, [duration, event, *covariates, *strata], dropna)
    return _cox(
        frame, duration, event, covariates, categorical, strata, level, penalizer, n_dropped
    )


def logistic_regression(
    table: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str],
    *,
    categorical: Mapping[str, Any] | None = None,
    level: float = 0.95,
    dropna: bool = False,
) -> RegressionResult:
    """Logistic regression (maximum likelihood, statsmodels ``Logit``) with an odds-ratio table.

    The table includes the intercept (``(Intercept)``, its "odds ratio" being the odds at the
    reference of every covariate). Intervals are Wald intervals, as R's ``confint.default``
    (not the profile-likelihood intervals of ``confint``). The likelihood-ratio test is against
    the intercept-only model.

    Args:
        table: one row per subject.
        outcome: column of 0/1 outcomes (both classes present).
        covariates, categorical, level, dropna: as in :func:`cox_regression`.

    Returns:
        A :class:`RegressionResult` with ``odds_ratio`` and ``auc``; ``n_events`` counts the
        outcomes equal to 1.

    Raises:
        ValueError: as :func:`cox_regression`, for an outcome that is not 0/1 or has a single
            class, and when the covariates separate the outcome perfectly (infinite odds
            ratios).
    """
    level = check_level(level)
    frame, n_dropped = _complete_rows(table, [outcome, *covariates], dropna)
    return _logistic(frame, outcome, covariates, categorical, level, n_dropped)


def univariable_then_multivariable(
    table: pd.DataFrame,
    covariates: Sequence[str],
    *,
    model: Model = "cox",
    duration: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    categorical: Mapping[str, Any] | None = None,
    p_enter: float = 0.05,
    level: float = 0.95,
    dropna: bool = False,
) -> SelectionResult:
    """One model per covariate, then a multivariable model on the covariates that pass.

    Every covariate (categorical or continuous) is kept when the likelihood-ratio p-value of
    its univariable model against the null model is below ``p_enter``: over all its levels
    for a categorical covariate (one test on k - 1 df), on 1 df for a continuous one (the
    term's Wald p-value is reported in the table but not used). All models are fitted on the
    same subjects: the rows complete in every listed covariate.

    Args:
        table: one row per subject.
        covariates: candidate columns.
        model: ``"cox"`` (needs ``duration`` and ``event``) or ``"logistic"`` (needs
            ``outcome``).
        categorical: column -> reference level, as in :func:`cox_regression`.
        p_enter: selection threshold, in (0, 1].
        level, dropna: as in :func:`cox_regression`.

    Returns:
        A :class:`SelectionResult`.
    """
    level = check_level(level)
    if not 0.0 < p_enter <= 1.0:
        raise ValueError(f"p_enter: must lie in (0, 1], got {p_enter}")
    covariates = _check_covariates(covariates)
    _check_categorical(categorical, covariates)
    fit, targets = _model_fitter(model, duration, event, outcome, categorical, level)
    frame, n_dropped = _complete_rows(table, [*targets, *covariates], dropna)
    rows = []
    for covariate in covariates:
        single = fit(frame, [covariate], n_dropped)
        terms = single.table[single.table["term"] != INTERCEPT].assign(lr_p=single.lr_p)
        rows.append(terms)
    univariable = pd.concat(rows, ignore_index=True)
    lr_p = univariable.groupby("covariate", sort=False)["lr_p"].first()
    kept = tuple(c for c in covariates if lr_p[c] < p_enter)
    if not kept:
        reason = (
            f"no covariate has a univariable likelihood-ratio p < {p_enter} "
            f"(smallest {lr_p.min():.3g}, {lr_p.idxmin()})"
        )
        return SelectionResult(univariable, kept, None, reason, p_enter)
    return SelectionResult(univariable, kept, fit(frame, list(kept), n_dropped), "", p_enter)


def interaction_test(
    table: pd.DataFrame,
    duration: str,
    event: str,
    treatment: str,
    group: str,
    *,
    covariates: Sequence[str] = (),
    categorical: Mapping[str, Any] | None = None,
    group_reference: Any = None,
    level: float = 0.95,
    dropna: bool = False,
) -> InteractionResult:
    """Treatment benefit by group: Cox models of treatment within each group, and the
    treatment x group interaction test.

    Within each level of ``group``: a Cox model of ``treatment`` (adjusted for
    ``covariates``) gives the treatment hazard ratio with its Wald interval and p-value. On
    the whole table: the models ``treatment + group + covariates`` (without) and the same plus
    ``treatment x group[level]`` for every non-reference level (with) are compared by the
    likelihood-ratio test, as R's ``anova(fit_without, fit_with)``.

    Args:
        table: one row per subject.
        duration, event: as in :func:`cox_regression`.
        treatment: column coded 0/1 (1 = treated); both arms present in every group.
        group: column whose levels define the groups (any values, at least two levels).
        covariates: adjustment columns, in every model; ``categorical`` as in
            :func:`cox_regression` for them.
        group_reference: reference level of ``group`` (default: the first sorted level).
        level, dropna: as in :func:`cox_regression`.

    Returns:
        An :class:`InteractionResult`.

    Raises:
        ValueError: as :func:`cox_regression`; naming ``treatment`` and its values when it is
            not 0/1 or one arm is absent; naming ``group`` and the level when a group has a
            single level overall, a single arm or no event.
    """
    level = check_level(level)
    covariates = list(covariates)
    _check_categorical(categorical, covariates)
    if treatment in covariates or group in covariates or treatment == group:
        raise ValueError(
            f"covariates: {treatment!r} and {group!r} must be distinct and not "
            "among the adjustment covariates"
        )
    frame, n_dropped = _complete_rows(
        table, [duration, event, treatment, group, *covariates], dropna
    )
    time, status = _times(frame, duration), _events(frame, event)
    _check_treatment(frame, treatment)
    levels = _group_levels(frame[group], group, group_reference)
    labels = frame[group].map(_label)
    by_group = pd.DataFrame(
        [
            _treatment_in_group(
                frame[labels == lev],
                lev,
                duration,
                event,
                treatment,
                group,
                covariates,
                categorical,
                level,
            )
            for lev in levels
        ]
    )

    x, owner = _design(
        frame, [treatment, group, *covariates], {**(categorical or {}), group: levels[0]}
    )
    without = _fit_cox(x, owner, time, status, None, level, 0.0, n_dropped)
    products = {
        f"{treatment}:{term}": x[treatment] * x[term]
        for term, covariate in owner.items()
        if covariate == group
    }
    owner_with = {**owner, **dict.fromkeys(products, f"{treatment}:{group}")}
    with_ = _fit_cox(x.assign(**products), owner_with, time, status, None, level, 0.0, n_dropped)

    lr = 2.0 * (with_.log_likelihood - without.log_likelihood)
    df = len(products)
    ratio = _interaction_estimate(with_, next(iter(products))) if df == 1 else None
    return InteractionResult(
        by_group,
        lr,
        df,
        float(chi2.sf(max(lr, 0.0), df)),
        ratio.p_value if ratio is not None else math.nan,
        ratio,
        with_,
        without,
        level,
        with_.n,
        with_.n_events,
        n_dropped,
        with_.method,
    )


def _group_levels(column: pd.Series, group: str, reference: Any) -> list[str]:
    """Level labels of ``group``, the reference (default: the first sorted level) first."""
    levels = _levels(column, group)
    if len(levels) < 2:
        raise ValueError(f"{group}: a single level ({levels[0]!r}); an interaction needs two")
    reference = levels[0] if reference is None else _label(reference)
    if reference not in levels:
        raise ValueError(
            f"group_reference: level {reference!r} of {group} does not occur (levels: {levels})"
        )
    return [reference, *(lev for lev in levels if lev != reference)]


def _interaction_estimate(fit: RegressionResult, term: str) -> Estimate:
    """exp(coef) of the interaction ``term`` with its Wald interval and p-value."""
    row = fit.table.set_index("term").loc[term]
    return Estimate(
        float(row["hazard_ratio"]),
        float(row["ci_low"]),
        float(row["ci_high"]),
        fit.level,
        "cox-wald interaction",
        se=float(row["se"]),
        p_value=float(row["p_value"]),
        n=fit.n,
    )


# ---- input -----------------------------------------------------------------------------------


def _complete_rows(
    table: pd.DataFrame, columns: Sequence[str], dropna: bool
) -> tuple[pd.DataFrame, int]:
    """The used ``columns`` of ``table``; ValueError naming missing columns, or the columns
    with missing values and their counts unless ``dropna`` (then those rows are dropped)."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table: expected a pandas DataFrame, got {type(table).__name__}")
    columns = list(dict.fromkeys(columns))
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ValueError(
            f"{', '.join(map(str, absent))}: no such column in table "
            f"(columns: {list(table.columns)})"
        )
    frame = table[columns]
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    if missing.empty:
        return frame, 0
    if not dropna:
        counts = ", ".join(
            f"{col} ({count} of {len(frame)} rows)" for col, count in missing.items()
        )
        raise ValueError(f"{counts}: missing values; impute or drop them, or pass dropna=True")
    complete = frame.dropna()
    if complete.empty:
        raise ValueError(f"table: no row is complete in {columns}")
    return complete, len(frame) - len(complete)


def _check_covariates(covariates: Sequence[str]) -> list[str]:
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if not covariates:
        raise ValueError("covariates: at least one covariate is needed")
    repeated = sorted({c for c in covariates if covariates.count(c) > 1})
    if repeated:
        raise ValueError(f"covariates: {repeated} listed more than once")
    return covariates


def _times(frame: pd.DataFrame, duration: str) -> np.ndarray:
    time = as_vector(duration, pd.to_numeric(frame[duration], errors="coerce").to_numpy())
    if (time < 0).any():
        raise ValueError(f"{duration}: {int((time < 0).sum())} negative time(s)")
    return time


def _events(frame: pd.DataFrame, event: str) -> np.ndarray:
    status = as_binary_label(event, frame[event].to_numpy(), both_classes=False)
    if not status.any():
        raise ValueError(f"{event}: no events among {status.size} subjects (all censored)")
    return status


def _check_treatment(frame: pd.DataFrame, treatment: str) -> None:
    values = pd.unique(frame[treatment])
    if not np.isin(values, (0, 1)).all():
        raise ValueError(
            f"{treatment}: treatment must be coded 0/1, got values "
            f"{sorted(map(_label, values))[:10]}"
        )
    if len(values) < 2:
        raise ValueError(f"{treatment}: only arm {_label(values[0])} occurs; both arms are needed")


def _label(value: Any) -> str:
    """Text of a level: integer-valued floats without ``.0`` (``1.0`` -> ``"1"``)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _levels(column: pd.Series, name: str) -> list[str]:
    """Level labels of ``column``: a categorical's categories in order (ValueError for an
    empty one), else the sorted distinct values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        counts = column.value_counts(sort=False)
        empty = [_label(lev) for lev, count in counts.items() if count == 0]
        if empty:
            raise ValueError(f"{name}: level(s) {empty} have no rows; remove unused categories")
        return [_label(lev) for lev in column.cat.categories]
    values = pd.unique(column)
    try:
        values = sorted(values)
    except TypeError:
        values = sorted(values, key=_label)
    labels = [_label(v) for v in values]
    if len(set(labels)) < len(labels):
        raise ValueError(f"{name}: distinct values share a label ({labels})")
    return labels


def _design(
    frame: pd.DataFrame, covariates: Sequence[str], categorical: Mapping[str, Any] | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The numeric design matrix (float64, one column per term) and term -> covariate."""
    categorical = dict(categorical or {})
    _check_categorical(categorical, covariates)
    columns: dict[str, pd.Series] = {}
    owner: dict[str, str] = {}
    for covariate in covariates:
        if covariate in categorical:
            indicators = _indicators(frame[covariate], covariate, categorical[covariate])
        else:
            indicators = {covariate: _continuous(frame[covariate], covariate)}
        columns.update(indicators)
        owner.update(dict.fromkeys(indicators, covariate))
    return pd.DataFrame(columns, index=frame.index), owner


def _continuous(column: pd.Series, name: str) -> pd.Series:
    if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        raise ValueError(
            f"{name}: non-numeric values (dtype {column.dtype}); list it in "
            "categorical with a reference level"
        )
    values = column.astype(np.float64)
    as_vector(name, values.to_numpy())
    if values.nunique() < 2:
        raise ValueError(
            f"{name}: constant ({_label(values.iloc[0])}) over all {len(values)} "
            "rows; it has no estimable effect"
        )
    return values


def _indicators(column: pd.Series, name: str, reference: Any) -> dict[str, pd.Series]:
    levels = _levels(column, name)
    reference = _label(reference)
    if reference not in levels:
        raise ValueError(
            f"categorical: reference level {reference!r} of {name} does not occur "
            f"(levels: {levels})"
        )
    if len(levels) < 2:
        raise ValueError(f"{name}: only the reference level {reference!r} occurs")
    labels = column.map(_label)
    return {
        f"{name}[{lev}]": (labels == lev).astype(np.float64) for lev in levels if lev != reference
    }


# ---- fitting ---------------------------------------------------------------------------------


def _cox(
    frame: pd.DataFrame,
    duration: str,
    event: str,
    covariates: Sequence[str],
    categorical: Mapping[str, Any] | None,
    strata: Sequence[str],
    level: float,
    penalizer: float,
    n_dropped: int,
) -> RegressionResult:
    covariates = _check_covariates(covariates)
    time, status = _times(frame, duration), _events(frame, event)
    x, owner = _design(frame, covariates, categorical)
    strata_frame = frame[list(strata)] if strata else None
    return _fit_cox(x, owner, time, status, strata_frame, level, penalizer, n_dropped)


def _logistic(
    frame: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str],
    categorical: Mapping[str, Any] | None,
    level: float,
    n_dropped: int,
) -> RegressionResult:
    covariates = _check_covariates(covariates)
    y = as_binary_label(outcome, frame[outcome].to_numpy()).astype(np.float64)
    x, owner = _design(frame, covariates, categorical)
    return _fit_logistic(x, owner, y, level, n_dropped)


def _model_fitter(
    model: Model,
    duration: str | None,
    event: str | None,
    outcome: str | None,
    categorical: Mapping[str, Any] | None,
    level: float,
) -> tuple[Callable[..., RegressionResult], list[str]]:
    """``fit(frame, covariates, n_dropped) -> RegressionResult`` for ``model``, and the
    outcome columns it needs."""
    if model == "cox":
        if duration is None or event is None:
            raise ValueError("duration, event: both are needed for model='cox'")

        def fit_cox(frame: pd.DataFrame, covs: list[str], dropped: int) -> RegressionResult:
            return _cox(
                frame, duration, event, covs, _only(categorical, covs), (), level, 0.0, dropped
            )

        return fit_cox, [duration, event]
    if model == "logistic":
        if outcome is None:
            raise ValueError("outcome: needed for model='logistic'")

        def fit_logistic(frame: pd.DataFrame, covs: list[str], dropped: int) -> RegressionResult:
            return _logistic(frame, outcome, covs, _only(categorical, covs), level, dropped)

        return fit_logistic, [outcome]
    raise ValueError(f"model: must be 'cox' or 'logistic', got {model!r}")


def _only(categorical: Mapping[str, Any] | None, covariates: Sequence[str]) -> dict[str, Any]:
    """The entries of ``categorical`` for ``covariates``."""
    return {c: ref for c, ref in (categorical or {}).items() if c in covariates}


def _check_categorical(categorical: Mapping[str, Any] | None, covariates: Sequence[str]) -> None:
    unknown = [c for c in (categorical or {}) if c not in covariates]
    if unknown:
        raise ValueError(f"categorical: {unknown} not among the covariates {list(covariates)}")


def _wald_table(
    terms: Sequence[str],
    owner: Mapping[str, str],
    coef: np.ndarray,
    se: np.ndarray,
    level: float,
    ratio_name: str,
) -> pd.DataFrame:
    z_crit = norm.ppf(0.5 + level / 2.0)
    z = coef / se
    return pd.DataFrame(
        {
            "term": list(terms),
            "covariate": [owner.get(t, t) for t in terms],
            "coef": coef,
            "se": se,
            ratio_name: np.exp(coef),
            "ci_low": np.exp(coef - z_crit * se),
            "ci_high": np.exp(coef + z_crit * se),
            "z": z,
            "p_value": 2.0 * norm.sf(np.abs(z)),
        }
    )


def _fit_cox(
    x: pd.DataFrame,
    owner: Mapping[str, str],
    time: np.ndarray,
    status: np.ndarray,
    strata: pd.DataFrame | None,
    level: float,
    penalizer: float,
    n_dropped: int,
) -> RegressionResult:
    """Fit lifelines' ``CoxPHFitter`` on the design ``x`` (n, p) and report the table."""
    data = pd.DataFrame(x.to_numpy(), columns=[f"x{j}" for j in range(x.shape[1])])
    data["__time__"], data["__event__"] = time, status.astype(np.float64)
    strata_names = None
    if strata is not None:
        strata_names = [f"__stratum{j}__" for j in range(strata.shape[1])]
        for name, column in zip(strata_names, strata.columns):
            data[name] = strata[column].to_numpy()
    fitter = CoxPHFitter(alpha=1.0 - level, penalizer=penalizer)
    fitter.fit(data, "__time__", "__event__", strata=strata_names, fit_options=_COX_FIT_OPTIONS)
    coef = fitter.params_.to_numpy()
    se = fitter.standard_errors_.to_numpy()
    codes = _stratum_codes(strata, len(time))
    null = _null_partial_log_likelihood(time, status, codes)
    loglik = float(fitter.log_likelihood_)
    lr = 2.0 * (loglik - null)
    df = x.shape[1]
    return RegressionResult(
        table=_wald_table(list(x.columns), owner, coef, se, level, "hazard_ratio"),
        n=len(time),
        n_events=int(status.sum()),
        log_likelihood=loglik,
        null_log_likelihood=null,
        lr_statistic=lr,
        lr_df=df,
        lr_p=float(chi2.sf(max(lr, 0.0), df)),
        method="cox-efron (lifelines)",
        level=level,
        concordance=float(fitter.concordance_index_),
        n_dropped=n_dropped,
    )


def _fit_logistic(
    x: pd.DataFrame, owner: Mapping[str, str], y: np.ndarray, level: float, n_dropped: int
) -> RegressionResult:
    """Fit statsmodels' ``Logit`` of ``y`` on an intercept and the design ``x``."""
    exog = np.column_stack([np.ones(len(y)), x.to_numpy()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            fit = sm.Logit(y, exog).fit(
                method="newton", tol=_LOGIT_TOL, maxiter=_LOGIT_MAX_ITER, disp=0
            )
        except PerfectSeparationWarning as err:
            raise ValueError(
                f"covariates: {list(x.columns)} separate the outcome perfectly; "
                "the odds ratios are infinite"
            ) from err
    terms = [INTERCEPT, *x.columns]
    loglik = float(fit.llf)
    # Closed form of the intercept-only model (statsmodels' ``llnull`` refits it at its default
    # tolerance: 1e-8 off on pROC::aSAH).
    p_bar = y.mean()
    null = float(np.sum(y * np.log(p_bar) + (1.0 - y) * np.log1p(-p_bar)))
    lr = 2.0 * (loglik - null)
    df = x.shape[1]
    return RegressionResult(
        table=_wald_table(
            terms, owner, np.asarray(fit.params), np.asarray(fit.bse), level, "odds_ratio"
        ),
        n=len(y),
        n_events=int(y.sum()),
        log_likelihood=loglik,
        null_log_likelihood=null,
        lr_statistic=lr,
        lr_df=df,
        lr_p=float(chi2.sf(max(lr, 0.0), df)),
        method="logistic-ml (statsmodels)",
        level=level,
        auc=float(roc_auc_score(y, fit.predict())),
        n_dropped=n_dropped,
    )


def _stratum_codes(strata: pd.DataFrame | None, n: int) -> np.ndarray:
    if strata is None:
        return np.zeros(n, dtype=np.int64)
    return strata.groupby(list(strata.columns), sort=True).ngroup().to_numpy()


def _null_partial_log_likelihood(time: np.ndarray, status: np.ndarray, strata: np.ndarray) -> float:
    """Efron partial log-likelihood at beta = 0 (formula in the module docstring).

    Args:
        time: (n,) times; status: (n,) bool events; strata: (n,) int stratum codes.
    """
    total = 0.0
    for code in np.unique(strata):
        t, e = time[strata == code], status[strata == code]
        event_times, d = np.unique(t[e], return_counts=True)
        at_risk = t.size - np.searchsorted(np.sort(t), event_times, side="left")
        total -= float(np.sum(gammaln(at_risk + 1.0) - gammaln(at_risk - d + 1.0)))
    return total


def _treatment_in_group(
    frame: pd.DataFrame,
    label: str,
    duration: str,
    event: str,
    treatment: str,
    group: str,
    covariates: Sequence[str],
    categorical: Mapping[str, Any] | None,
    level: float,
) -> dict[str, Any]:
    """The treatment row of the Cox model within one group, with its counts."""
    arms = frame[treatment].nunique()
    status = frame[event].to_numpy(dtype=np.float64)
    if arms < 2:
        raise ValueError(
            f"{group}: group {label!r} has a single {treatment} arm; the treatment "
            "effect within it is not estimable"
        )
    if status.sum() == 0:
        raise ValueError(f"{group}: group {label!r} has no events ({len(frame)} subjects)")
    covs = [treatment, *covariates]
    fit = _cox(frame, duration, event, covs, _only(categorical, covs), (), level, 0.0, 0)
    row = fit.table.set_index("term").loc[treatment]
    return {
        "group": label,
        "n": fit.n,
        "n_events": fit.n_events,
        "n_treated": int(frame[treatment].sum()),
        "hazard_ratio": float(row["hazard_ratio"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "p_value": float(row["p_value"]),
    }
