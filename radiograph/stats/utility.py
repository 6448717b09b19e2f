"""Clinical utility and added value of a risk model: decision curves (net benefit), the
integrated discrimination improvement (IDI) and the net reclassification improvement (NRI).

References:
    Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction
        models. Med Decis Making 2006;26:565-574.
    Vickers AJ, van Calster B, Steyerberg EW. A simple, step-by-step guide to interpreting
        decision curve analysis. Diagn Progn Res 2019;3:18 (net interventions avoided).
    Pencina MJ, D'Agostino RB Sr, D'Agostino RB Jr, Vasan RS. Evaluating the added predictive
        ability of a new marker: from area under the ROC curve to reclassification and beyond.
        Stat Med 2008;27:157-172.
    Pencina MJ, D'Agostino RB Sr, Steyerberg EW. Extensions of net reclassification
        improvement calculations to measure usefulness of new biomarkers. Stat Med
        2011;30:11-21.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from radiograph.stats._checks import as_binary_label, as_vector, check_level
from radiograph.stats.calibration import as_probability
from radiograph.stats.resampling import bootstrap_indices, patient_groups
from radiograph.stats.results import Estimate

# ---- decision curve ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DecisionCurve:
    """Net benefit of a model against treat-all and treat-none over threshold probabilities.

    Arrays have shape (T,), one entry per threshold in the order given. The ``*_low`` /
    ``*_high`` bands are patient-level percentile bootstrap bands (NaN when ``n_boot`` = 0).

    Attributes:
        thresholds: threshold probabilities pt (treat when the predicted risk is >= pt).
        net_benefit: TP/n - FP/n * pt / (1 - pt) of the model.
        treat_all: prevalence - (1 - prevalence) * pt / (1 - pt).
        treat_none: 0.
        interventions_avoided: net interventions avoided per ``per`` patients,
            (net_benefit - treat_all) / (pt / (1 - pt)) * per.
        net_benefit_low, net_benefit_high, interventions_avoided_low,
        interventions_avoided_high: bootstrap bands.
        prevalence: event proportion; n: rows; per: patients the avoided interventions
            refer to; level: level of the bands; n_boot: bootstrap resamples.
    """

    thresholds: np.ndarray
    net_benefit: np.ndarray
    treat_all: np.ndarray
    treat_none: np.ndarray
    interventions_avoided: np.ndarray
    net_benefit_low: np.ndarray
    net_benefit_high: np.ndarray
    interventions_avoided_low: np.ndarray
    interventions_avoided_high: np.ndarray
    prevalence: float
    n: int
    per: float
    level: float
    n_boot: int

    def to_frame(self) -> pd.DataFrame:
        """One row per threshold."""
        columns = (
            "thresholds",
            "net_benefit",
            "net_benefit_low",
            "net_benefit_high",
            "treat_all",
            "treat_none",
            "interventions_avoided",
            "interventions_avoided_low",
            "interventions_avoided_high",
        )
        frame = pd.DataFrame({c: getattr(self, c) for c in columns})
        return frame.rename(columns={"thresholds": "threshold"})


def _as_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    pt = as_vector("thresholds", np.atleast_1d(np.asarray(thresholds, dtype=np.float64)))
    bad = (pt <= 0.0) | (pt >= 1.0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"thresholds: must lie strictly between 0 and 1 (pt / (1 - pt) is "
            f"the exchange rate), got {pt[first]!r} at index {first}"
        )
    return pt


def _flat_resamples(indices: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of all resamples concatenated, and the resample each belongs to."""
    if isinstance(indices, np.ndarray):
        rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
        return indices.ravel(), rows
    lengths = np.array([r.shape[0] for r in indices])
    return np.concatenate(indices), np.repeat(np.arange(len(indices)), lengths)


def _net_benefit(
    y: np.ndarray,
    treated_up_to: np.ndarray,
    pt: np.ndarray,
    flat: np.ndarray,
    rows: np.ndarray,
    n_resamples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) net benefit of the model and of treat-all over B resamples at the sorted
    thresholds ``pt``.

    Subject i is treated at thresholds pt_j with j < ``treated_up_to[i]`` (the number of
    thresholds <= p_i), so the true positives at pt_j are the events with
    treated_up_to > j: a per-resample histogram of ``treated_up_to`` over events, summed from
    the top. One ``np.bincount`` covers all resamples.
    """
    n_t = pt.shape[0]
    key = rows * (n_t + 1) + treated_up_to[flat]
    size = n_resamples * (n_t + 1)
    events = np.bincount(key, weights=y[flat], minlength=size).reshape(n_resamples, n_t + 1)
    subjects = np.bincount(key, minlength=size).reshape(n_resamples, n_t + 1)
    above = np.cumsum(events[:, ::-1], axis=1)[:, ::-1][:, 1:]
    treated = np.cumsum(subjects[:, ::-1], axis=1)[:, ::-1][:, 1:]
    n = subjects.sum(axis=1, keepdims=True).astype(np.float64)
    prevalence = events.sum(axis=1, keepdims=True) / n
    odds = pt / (1.0 - pt)
    true_positive = above / n
    # written like treat-all so that treating everyone gives treat-all's value to the bit
    model = true_positive - (treated / n - true_positive) * odds
    return model, prevalence - (1.0 - prevalence) * odds


def decision_curve(
    label: Sequence,
    prob: Sequence,
    thresholds: Sequence[float],
    *,
    n_boot: int = 0,
    seed: int = 0,
    level: float = 0.95,
    patient_ids: Sequence | None = None,
    per: float = 100,
) -> DecisionCurve:
    """Decision curve: net benefit of treating patients with predicted risk >= pt.

    Net benefit (Vickers & Elkin 2006) weighs false positives by the odds of the threshold,
    NB(pt) = TP/n - FP/n * pt / (1 - pt); treat-all has NB = prevalence - (1 - prevalence)
    pt / (1 - pt), treat-none 0. Net interventions avoided per ``per`` patients (Vickers et al.
    2019) = (NB_model - NB_all) / (pt / (1 - pt)) * per. With ``n_boot`` > 0 the percentile
    bands come from patient-level bootstrap resamples (each resample's own prevalence enters
    its treat-all), all resamples and thresholds evaluated in one vectorised pass.

    Args:
        label: (n,) 0/1 outcome.
        prob: (n,) predicted risks in [0, 1].
        thresholds: (T,) threshold probabilities strictly between 0 and 1, any order.
        n_boot: bootstrap resamples for the bands (0: none); seed: seed of the generator.
        level: level of the bands.
        patient_ids: (n,) patient of each row for the bootstrap, or None (one row per patient).
        per: patients the avoided interventions refer to (100: per 100 patients).
    """
    y = as_binary_label("label", label, both_classes=False)
    p = as_probability("prob", prob, y.shape[0])
    pt = _as_thresholds(thresholds)
    level = check_level(level)
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot: must be a non-negative integer, got {n_boot}")
    if not np.isfinite(per) or per <= 0:
        raise ValueError(f"per: must be a positive number of patients, got {per}")
    order = np.argsort(pt, kind="stable")
    sorted_pt, unsort = pt[order], np.argsort(order)
    treated_up_to = np.searchsorted(sorted_pt, p, side="right")
    outcome = y.astype(np.float64)
    n = y.shape[0]
    model, _ = _net_benefit(outcome, treated_up_to, sorted_pt, np.arange(n), np.zeros(n, int), 1)
    prevalence = float(np.mean(outcome))
    odds = pt / (1.0 - pt)
    net_benefit = model[0, unsort]
    treat_all = prevalence - (1.0 - prevalence) * odds
    avoided = (net_benefit - treat_all) / odds * per
    bands = [np.full(pt.shape[0], np.nan) for _ in range(4)]
    if n_boot > 0:
        if patient_ids is not None:
            patient_groups(patient_ids, n)  # ValueError on a length mismatch
        flat, rows = _flat_resamples(bootstrap_indices(patient_ids, int(n_boot), seed, n))
        boot_model, boot_all = _net_benefit(
            outcome, treated_up_to, sorted_pt, flat, rows, int(n_boot)
        )
        boot_model, boot_all = boot_model[:, unsort], boot_all[:, unsort]
        boot_avoided = (boot_model - boot_all) / odds * per
        tail = 100.0 * (1.0 - level) / 2.0
        bands = [
            *np.percentile(boot_model, [tail, 100.0 - tail], axis=0),
            *np.percentile(boot_avoided, [tail, 100.0 - tail], axis=0),
        ]
    arrays = (pt.copy(), net_benefit, treat_all, np.zeros_like(pt), avoided, *bands)
    for array in arrays:
        array.setflags(write=False)
    return DecisionCurve(
        *arrays, prevalence=prevalence, n=int(n), per=float(per), level=level, n_boot=int(n_boot)
    )


# ---- IDI and NRI -------------------------------------------------------------------------------


def _paired_probabilities(
    label: Sequence, p_old: Sequence, p_new: Sequence
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = as_binary_label("label", label)
    old = as_probability("p_old", p_old, y.shape[0])
    new = as_probability("p_new", p_new, y.shape[0])
    return y, old, new


def _z_test(estimate: float, se: float, level: float, method: str, n: int, extra: dict) -> Estimate:
    """Wald interval and two-sided z-test of 0; an estimate of 0 with SE 0 (nothing moved)
    has p = 1, a non-zero one with SE 0 p = 0."""
    z_crit = norm.ppf(0.5 + level / 2.0)
    if se > 0.0:
        p_value = float(2.0 * norm.sf(abs(estimate) / se))
    else:
        p_value = 1.0 if estimate == 0.0 else 0.0
    return Estimate(
        float(estimate),
        float(estimate - z_crit * se),
        float(estimate + z_crit * se),
        level,
        method,
        se=float(se),
        p_value=p_value,
        n=n,
        extra=extra,
    )


def idi(label: Sequence, p_old: Sequence, p_new: Sequence, *, level: float = 0.95) -> Estimate:
    """Integrated discrimination improvement of ``p_new`` over ``p_old`` (Pencina et al.
    2008, section 3).

    With d = p_new - p_old, IDI = mean(d | event) - mean(d | non-event), the change in the
    discrimination slope mean(p | event) - mean(p | non-event). SE = sqrt(v_e / n_e +
    v_ne / n_ne) with v the sample variances (ddof = 1) of d in each class (Pencina et al.
    2008, eq. 8); z = IDI / SE, two-sided normal p-value, Wald interval. Matches
    ``Hmisc::improveProb``.

    Args:
        label: (n,) 0/1 outcome, >= 2 subjects in each class.
        p_old, p_new: (n,) predicted probabilities in [0, 1] of the old and new model.
        level: confidence level.

    Returns:
        Estimate with ``extra``: ``idi_events`` = mean(d | event) (gain in events),
        ``idi_nonevents`` = -mean(d | non-event) (drop in non-events), the two discrimination
        slopes and ``relative_idi`` = slope_new / slope_old - 1 (NaN when slope_old = 0).
    """
    y, old, new = _paired_probabilities(label, p_old, p_new)
    n_events, n_nonevents = int(y.sum()), int((~y).sum())
    if min(n_events, n_nonevents) < 2:
        raise ValueError(
            f"label: {n_events} event(s) and {n_nonevents} non-event(s); the IDI's "
            "variance needs at least 2 of each"
        )
    diff = new - old
    gain_events, gain_nonevents = diff[y].mean(), -diff[~y].mean()
    se = np.sqrt(diff[y].var(ddof=1) / n_events + diff[~y].var(ddof=1) / n_nonevents)
    slope_old = old[y].mean() - old[~y].mean()
    slope_new = new[y].mean() - new[~y].mean()
    extra = {
        "idi_events": float(gain_events),
        "idi_nonevents": float(gain_nonevents),
        "discrimination_slope_old": float(slope_old),
        "discrimination_slope_new": float(slope_new),
        "relative_idi": float(slope_new / slope_old - 1.0) if slope_old != 0 else np.nan,
        "n_events": n_events,
        "n_nonevents": n_nonevents,
    }
    return _z_test(
        gain_events + gain_nonevents,
        float(se),
        check_level(level),
        "pencina-2008",
        int(y.shape[0]),
        extra,
    )


def _risk_categories(prob: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Category index of each risk: k for cutoffs[k-1] <= p < cutoffs[k]."""
    return np.searchsorted(cutoffs, prob, side="right")


def _as_cutoffs(cutoffs: Sequence[float]) -> np.ndarray:
    cuts = as_vector("cutoffs", np.atleast_1d(np.asarray(cutoffs, dtype=np.float64)))
    if ((cuts <= 0.0) | (cuts >= 1.0)).any():
        raise ValueError(f"cutoffs: must lie strictly between 0 and 1, got {cuts.tolist()}")
    if np.any(np.diff(cuts) <= 0.0):
        raise ValueError(f"cutoffs: must be strictly increasing, got {cuts.tolist()}")
    return cuts


def nri(
    label: Sequence,
    p_old: Sequence,
    p_new: Sequence,
    *,
    cutoffs: Sequence[float] | None = None,
    level: float = 0.95,
) -> Estimate:
    """Net reclassification improvement of ``p_new`` over ``p_old``.

    NRI = [P(up | event) - P(down | event)] + [P(down | non-event) - P(up | non-event)]
    (Pencina et al. 2008, section 2). With ``cutoffs`` (e.g. [0.1, 0.2]) a move is a change of
    risk category, categories [0, c1), [c1, c2), ..., [c_k, 1] (a risk equal to a cutoff
    belongs to the higher category); with ``cutoffs=None`` any increase or decrease of the
    predicted risk is a move (category-free NRI, Pencina et al. 2011); ties are no move.

    SE as in Pencina et al. 2008, eq. (2) (McNemar-like, the variance under no net
    reclassification): sqrt((p_up,e + p_down,e) / n_e + (p_up,ne + p_down,ne) / n_ne);
    z = NRI / SE, two-sided normal p-value, Wald interval. (``Hmisc::improveProb`` uses the
    unrestricted multinomial variance instead, which subtracts (p_up - p_down)^2 / n per
    class: same point estimate, a smaller SE when NRI != 0.)

    Args:
        label: (n,) 0/1 outcome, both classes present.
        p_old, p_new: (n,) predicted probabilities in [0, 1].
        cutoffs: strictly increasing risk cutoffs in (0, 1), or None for the category-free NRI.
        level: confidence level.

    Returns:
        Estimate with ``extra``: ``nri_events``, ``nri_nonevents`` (their sum is the NRI),
        the four move proportions ``up_events``, ``down_events``, ``up_nonevents``,
        ``down_nonevents``, ``n_events``, ``n_nonevents`` and ``cutoffs`` (None when
        category-free).
    """
    y, old, new = _paired_probabilities(label, p_old, p_new)
    level = check_level(level)
    if cutoffs is None:
        before, after, method, cut_list = old, new, "pencina-2011-category-free", None
    else:
        cuts = _as_cutoffs(cutoffs)
        before, after = _risk_categories(old, cuts), _risk_categories(new, cuts)
        method, cut_list = "pencina-2008-categorical", cuts.tolist()
    up, down = after > before, after < before
    n_events, n_nonevents = int(y.sum()), int((~y).sum())
    up_e, down_e = up[y].mean(), down[y].mean()
    up_ne, down_ne = up[~y].mean(), down[~y].mean()
    se = np.sqrt((up_e + down_e) / n_events + (up_ne + down_ne) / n_nonevents)
    extra = {
        "nri_events": float(up_e - down_e),
        "nri_nonevents": float(down_ne - up_ne),
        "up_events": float(up_e),
        "down_events": float(down_e),
        "up_nonevents": float(up_ne),
        "down_nonevents": float(down_ne),
        "n_events": n_events,
        "n_nonevents": n_nonevents,
        "cutoffs": cut_list,
    }
    estimate = (up_e - down_e) + (down_ne - up_ne)
    return _z_test(float(estimate), float(se), level, method, int(y.shape[0]), extra)
