"""The report's figures, each saved as PNG, PDF and SVG (:func:`radiograph.io.figures.save_figure`).

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas directly (no
pyplot, no global backend switch), so they render headless and leave no global state. Legends
sit outside the data; every error bar's meaning is written on the figure; p-values are written
by :func:`radiograph.stats.results.format_p`.

- :func:`plot_metric_bars` (paper Fig. 2): one panel per metric; per downstream model, one bar
  per group (extractor / aggregator) of the fold mean with a +-1 SD error bar; a dashed line
  at the chance level 0.5 of the concordance and AUC metrics.
- :func:`plot_fold_bands` (paper Fig. 3): one panel per downstream model; per metric, one dot
  per group at the fold mean with a +-1 SD error bar (metrics are not joined by lines: they
  are different quantities).
- :func:`plot_risk_groups` (paper Fig. 4): one panel per aggregator; Kaplan-Meier curves of
  the low- and high-risk groups with their confidence bands and censoring ticks, the numbers
  at risk under the time axis, the time axis cut at a quantile of follow-up.
- :func:`plot_hazard_ratios`, :func:`plot_paired_differences`: forest plots of the hazard
  ratios of the risk groups and of the paired differences between aggregators.
- :func:`plot_calibration_curves`, :func:`plot_decision_curves`: classification studies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from radiograph.io.figures import save_figure
from radiograph.report.tables import (
    KM_TIME_QUANTILE,
    METRIC_LABELS,
    MODEL_LABELS,
    display_name,
    fold_statistics,
    group_keys,
)
from radiograph.stats.calibration import CalibrationCurve
from radiograph.stats.results import format_p
from radiograph.stats.utility import DecisionCurve
from radiograph.survival.risk_groups import KaplanMeierCurve, RiskGroups

RISK_COLOURS = {"low": "tab:blue", "high": "tab:red"}
CHANCE_METRICS = ("c_index", "c_ipcw", "c_auc", "auroc")
"""Metrics whose value for a random ranking is 0.5 (drawn as a dashed chance line)."""
CHANCE = 0.5
FOREST_LOG_SPAN = 100.0
"""A hazard-ratio forest plot spans at most this factor either side of HR = 1; hazard ratios
beyond it (a fold whose Cox fit found no finite maximum) are drawn at the edge."""
_REFERENCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 0.9}


def p_text(p: float) -> str:
    """``"p = 0.034"``, ``"p < 0.001"`` or ``"p = NA"``, with the one p-value format of
    :func:`radiograph.stats.results.format_p`."""
    text = format_p(float(p))
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def plot_metric_bars(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    ddof: int = 1,
    title: str | None = None,
) -> Figure:
    """Fig. 2: bars of the fold mean (+-1 SD) per metric, downstream model and group.

    Args:
        results: long fold results (see :mod:`radiograph.report.tables`).
        path: PNG file to write (PDF and SVG beside it).
        metrics, models: subsets and order (default: order of first appearance).
        ddof: delta degrees of freedom of the fold standard deviation.
        title: figure title (default: the modality sets in ``results``).

    Returns:
        The figure (already saved). Bars of a model without values (FSVM's IBS) are absent.
        Legend entries name only the group columns that vary (e.g. the aggregator).
    """
    stats, metrics, models, groups = _prepare(results, metrics, models, ddof)
    labels = _group_labels(stats, groups)
    fig, axes = _panels(len(metrics), width=3.0, height=2.6)
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(models))
    for ax, metric in zip(axes, metrics):
        for g, group in enumerate(groups):
            rows = _select(stats, metric, group).set_index("model").reindex(models)
            ax.bar(
                x + (g - (len(groups) - 1) / 2) * width,
                rows["mean"].to_numpy(),
                width,
                yerr=rows["std"].to_numpy(),
                capsize=2,
                color=f"C{g}",
                error_kw={"elinewidth": 0.8},
                label=labels[g],
            )
        if metric in CHANCE_METRICS:
            ax.axhline(CHANCE, **_REFERENCE_STYLE, label="chance (0.5)")
            ax.set_ylim(0.0, 1.0)
        for m, model in enumerate(models):
            cells = (stats["metric"] == metric) & (stats["model"] == model)
            if stats.loc[cells, "mean"].isna().all():  # e.g. FSVM has no IBS
                ax.text(m, 0.0, "N/A", ha="center", va="bottom", fontsize="small", color="0.4")
        ax.set_xticks(x, [MODEL_LABELS.get(m, m) for m in models])
        ax.set_xlabel("downstream model")
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (mean ± SD)")
        _despine(ax)
    handles = _unique_handles(axes)
    fig.legend(
        *handles, loc="outside lower center", ncol=len(handles[1]), fontsize="small", frameon=False
    )
    fig.suptitle(f"{title or _modality_title(results)}\n{_spread_note(results)}", fontsize="medium")
    save_figure(fig, path)
    return fig


def plot_fold_bands(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    ddof: int = 1,
    title: str | None = None,
) -> Figure:
    """Fig. 3: per downstream model, the fold mean (dot) +-1 SD (error bar) of every group for
    each metric. Metrics are separate quantities, so nothing joins them; a short dashed
    segment marks the chance level 0.5 under the concordance and AUC metrics.

    Arguments and return as in :func:`plot_metric_bars`.
    """
    stats, metrics, models, groups = _prepare(results, metrics, models, ddof)
    labels = _group_labels(stats, groups)
    fig, axes = _panels(len(models), width=3.0, height=2.8, sharey=True)
    x = np.arange(len(metrics))
    step = 0.6 / max(len(groups), 1)
    for ax, model in zip(axes, models):
        for g, group in enumerate(groups):
            rows = _select(stats, None, group)
            rows = rows[rows["model"] == model].set_index("metric").reindex(metrics)
            ax.errorbar(
                x + (g - (len(groups) - 1) / 2) * step,
                rows["mean"].to_numpy(),
                yerr=rows["std"].to_numpy(),
                fmt="o",
                markersize=4,
                capsize=2,
                elinewidth=0.8,
                linestyle="none",
                color=f"C{g}",
                label=labels[g],
            )
        chance = [i for i, m in enumerate(metrics) if m in CHANCE_METRICS]
        if chance:
            ax.hlines(
                np.full(len(chance), CHANCE),
                np.array(chance) - 0.4,
                np.array(chance) + 0.4,
                **_REFERENCE_STYLE,
                label="chance (0.5)",
            )
        ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics], rotation=30)
        ax.set_xlim(-0.6, len(metrics) - 0.4)
        ax.set_title(MODEL_LABELS.get(model, model), fontsize="medium")
        _despine(ax)
    for ax in axes[:: _columns(len(models))]:
        ax.set_ylabel("metric value (mean ± SD)")
    handles = _unique_handles(axes)
    fig.legend(
        *handles, loc="outside lower center", ncol=len(handles[1]), fontsize="small", frameon=False
    )
    fig.suptitle(f"{title or _modality_title(results)}\n{_spread_note(results)}", fontsize="medium")
    save_figure(fig, path)
    return fig


def plot_risk_groups(
    groups: Mapping[str, RiskGroups],
    path: str | os.PathLike,
    *,
    time_unit: str | None = None,
    time_quantile: float = KM_TIME_QUANTILE,
) -> Figure:
    """Fig. 4: Kaplan-Meier curves of the low- and high-risk groups, one panel per entry.

    Each panel: the curves with their pointwise confidence bands (log-log), a tick at every
    censored time, the numbers at risk at the time ticks in a table under the axis, and a
    title with the log-rank p-value and the hazard ratio high vs low (Cox, Wald interval).

    Args:
        groups: panel title (e.g. ``"sparra + coxph"``) -> :class:`RiskGroups`.
        path: PNG file to write (PDF and SVG beside it).
        time_unit: x-axis unit label (e.g. ``"days"``).
        time_quantile: the time axis ends at this quantile of the observed times (events and
            censorings) of the panel's subjects, so that a few long follow-ups do not squeeze
            the curves; 1 shows every time.

    Returns:
        The figure (already saved). Its main axes are ``fig.axes[:len(groups)]``, the
        at-risk tables ``fig.axes[len(groups):]``.

    Raises:
        ValueError: ``groups`` is empty or ``time_quantile`` is not in (0, 1].
    """
    if not groups:
        raise ValueError("groups: nothing to plot")
    if not 0.0 < time_quantile <= 1.0:
        raise ValueError(f"time_quantile: must be in (0, 1], got {time_quantile}")
    fig = _figure(len(groups), width=3.5, height=4.3)
    grid = fig.add_gridspec(2, len(groups), height_ratios=[4.0, 1.0])
    main = [fig.add_subplot(grid[0, i]) for i in range(len(groups))]
    tables = [fig.add_subplot(grid[1, i], sharex=main[i]) for i in range(len(groups))]
    for ax, table, (name, strata) in zip(main, tables, groups.items()):
        end = follow_up_quantile(strata, time_quantile)
        for label, curve in strata.curves.items():
            _km_curve(ax, curve, RISK_COLOURS[label])
        ticks = MaxNLocator(nbins=5).tick_values(0.0, end)
        ticks = ticks[(ticks >= 0) & (ticks <= end)]
        ax.set_xticks(ticks)
        ax.set_xlim(0.0, end)
        ax.set_ylim(0.0, 1.05)
        title = " + ".join(display_name(part) for part in name.split(" + "))
        ax.set_title(
            f"{title}\nlog-rank {p_text(strata.logrank_p)}, "
            f"HR {_interval(strata.hazard_ratio, strata.hr_low, strata.hr_high)}",
            fontsize="medium",
        )
        ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")
        _despine(ax)
        _at_risk_table(table, strata.curves, ticks)
    main[0].set_ylabel("survival probability")
    handles = [Line2D([], [], color=RISK_COLOURS[g], label=f"{g} risk") for g in RISK_COLOURS]
    handles.append(
        Line2D([], [], color="0.2", marker="|", linestyle="none", markersize=7, label="censored")
    )
    level = next(iter(groups.values())).level
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=3,
        fontsize="small",
        frameon=False,
        title=f"bands: pointwise {level:.0%} CI; time axis cut at the "
        f"{time_quantile:.0%} quantile of follow-up",
        title_fontsize="small",
    )
    save_figure(fig, path)
    return fig


def follow_up_quantile(groups: RiskGroups, quantile: float) -> float:
    """The ``quantile`` of the observed times (events and censorings) of every subject of
    ``groups``; the end of the Kaplan-Meier time axis."""
    times = [np.repeat(c.time, c.at_risk - np.r_[c.at_risk[1:], 0]) for c in groups.curves.values()]
    observed = np.concatenate(times) if times else np.zeros(1)
    end = float(np.quantile(observed, quantile, method="higher"))
    return end if end > 0 else 1.0


def plot_hazard_ratios(
    risk_groups: pd.DataFrame, path: str | os.PathLike, *, level: float = 0.95, title: str = ""
) -> Figure:
    """Forest plot of the hazard ratio high vs low risk (``report/risk_groups.csv``).

    One row per (seed, modality, aggregator): the pooled hazard ratio over the folds (square)
    with its interval on a log axis; the per-fold hazard ratios of the same row as small open
    circles. Right of the axis: the pooled estimate, its interval and the log-rank p-value.

    Args:
        risk_groups: rows of :func:`radiograph.report.comparisons.fold_risk_groups` (columns
            ``seed``, ``modality``, ``aggregator``, ``fold`` with ``"pooled"`` rows,
            ``hazard_ratio``, ``hr_low``, ``hr_high``, ``logrank_p``).
        path: PNG file to write (PDF and SVG beside it).
        level: confidence level of the intervals (for the labels).
        title: figure title.

    Raises:
        ValueError: no pooled row.
    """
    fold = risk_groups["fold"].astype(str)
    pooled = risk_groups[fold == "pooled"]
    if pooled.empty:
        raise ValueError("risk_groups: no row with fold == 'pooled'")
    folds = risk_groups[fold != "pooled"]
    several_seeds = pooled["seed"].nunique() > 1
    labels, per_fold = [], []
    for _, row in pooled.iterrows():
        label = f"{row['modality']} · {display_name(row['aggregator'])}"
        labels.append(label + (f" (seed {row['seed']})" if several_seeds else ""))
        same = (
            (folds["seed"] == row["seed"])
            & (folds["modality"] == row["modality"])
            & (folds["aggregator"] == row["aggregator"])
        )
        per_fold.append(folds.loc[same, "hazard_ratio"].to_numpy(float))
    columns = [
        (
            f"HR ({level:.0%} CI)",
            [_interval(r.hazard_ratio, r.hr_low, r.hr_high) for r in pooled.itertuples()],
        ),
        ("log-rank p", [format_p(float(p)) for p in pooled["logrank_p"]]),
    ]
    fig, ax = _forest(
        labels,
        pooled["hazard_ratio"].to_numpy(float),
        pooled["hr_low"].to_numpy(float),
        pooled["hr_high"].to_numpy(float),
        columns,
        reference=1.0,
        log=True,
        extra=per_fold,
    )
    ax.set_xlabel("hazard ratio, high vs low risk (log scale)")
    fig.legend(
        handles=[
            Line2D(
                [], [], color="k", marker="s", linestyle="-", label=f"pooled folds, {level:.0%} CI"
            ),
            Line2D(
                [],
                [],
                color="0.4",
                marker="o",
                markerfacecolor="none",
                linestyle="none",
                label="single folds",
            ),
        ],
        loc="outside lower center",
        ncol=2,
        fontsize="small",
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize="medium")
    save_figure(fig, path)
    return fig


def plot_paired_differences(
    comparisons: pd.DataFrame,
    path: str | os.PathLike,
    *,
    metric_label: str = "C-index",
    level: float = 0.95,
    title: str = "",
) -> Figure:
    """Forest plot of paired differences between aggregators (``comparisons_*.csv``).

    One row per comparison: the difference A - B with its interval, a line at 0 (no
    difference); right of the axis: the difference, its interval and the p-value. Row labels
    name the modality set and the pair, and the downstream model and the method when the
    rows hold several.

    Args:
        comparisons: rows of :func:`radiograph.report.comparisons.aggregator_comparisons` or
            :func:`~radiograph.report.comparisons.cross_validated_comparisons` (columns
            ``modality``, ``model``, ``aggregator_a``, ``aggregator_b``, ``method``,
            ``difference``, ``ci_low``, ``ci_high``, ``p_value``).
        path: PNG file to write (PDF and SVG beside it).
        metric_label: the metric compared, for the axis label.
        level: confidence level of the intervals (for the labels).
        title: figure title.

    Raises:
        ValueError: no rows.
    """
    if comparisons.empty:
        raise ValueError("comparisons: no rows to plot")
    several = {
        k: comparisons[k].nunique() > 1
        for k in ("model", "method", "seed")
        if k in comparisons.columns
    }
    labels = []
    for _, row in comparisons.iterrows():
        parts = [
            str(row["modality"]),
            f"{display_name(row['aggregator_a'])} − {display_name(row['aggregator_b'])}",
        ]
        if several.get("model"):
            parts.append(MODEL_LABELS.get(row["model"], row["model"]))
        if several.get("method"):
            parts.append(str(row["method"]))
        if several.get("seed"):
            parts.append(f"seed {row['seed']}")
        labels.append(" · ".join(parts))
    columns = [
        (
            f"A − B ({level:.0%} CI)",
            [
                f"{r.difference:+.3f} ({r.ci_low:+.3f} to {r.ci_high:+.3f})"
                for r in comparisons.itertuples()
            ],
        ),
        ("p", [format_p(float(p)) for p in comparisons["p_value"]]),
    ]
    fig, ax = _forest(
        labels,
        comparisons["difference"].to_numpy(float),
        comparisons["ci_low"].to_numpy(float),
        comparisons["ci_high"].to_numpy(float),
        columns,
        reference=0.0,
        log=False,
    )
    ax.set_xlabel(f"difference in {metric_label}, A − B (> 0: A better)")
    if title:
        fig.suptitle(title, fontsize="medium")
    save_figure(fig, path)
    return fig


def plot_calibration_curves(
    curves: Mapping[str, CalibrationCurve], path: str | os.PathLike, *, title: str = ""
) -> Figure:
    """Calibration curves: observed event proportion (Wilson interval) against the mean
    predicted probability per quantile bin, one series per entry, with the diagonal of perfect
    calibration.

    Args:
        curves: legend label (e.g. an aggregator) -> :class:`CalibrationCurve`.
        path: PNG file to write (PDF and SVG beside it).
        title: panel title (e.g. the modality and classifier).

    Raises:
        ValueError: ``curves`` is empty.
    """
    if not curves:
        raise ValueError("curves: nothing to plot")
    level = next(iter(curves.values())).level
    fig = _figure(1, width=5.6, height=4.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    for label, curve in curves.items():
        ax.errorbar(
            curve.mean_predicted,
            curve.observed,
            yerr=np.clip(
                [curve.observed - curve.ci_low, curve.ci_high - curve.observed], 0.0, None
            ),
            marker="o",
            markersize=3,
            capsize=2,
            label=display_name(label),
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (per bin)")
    ax.set_ylabel(f"observed proportion ({level:.0%} Wilson CI)")
    ax.set_title(title, fontsize="medium")
    _despine(ax)
    fig.legend(loc="outside right upper", fontsize="small", frameon=False)
    save_figure(fig, path)
    return fig


def plot_decision_curves(
    curves: Mapping[str, DecisionCurve], path: str | os.PathLike, *, title: str = ""
) -> Figure:
    """Decision curves: net benefit against the threshold probability for each entry (with
    its bootstrap band), treat-all and treat-none (Vickers & Elkin 2006).

    Args:
        curves: legend label -> :class:`DecisionCurve` (all on the same thresholds).
        path: PNG file to write (PDF and SVG beside it).
        title: panel title.

    Raises:
        ValueError: ``curves`` is empty.
    """
    if not curves:
        raise ValueError("curves: nothing to plot")
    fig = _figure(1, width=6.2, height=4.0)
    ax = fig.subplots()
    first = next(iter(curves.values()))
    ax.plot(
        first.thresholds,
        first.treat_all,
        color="0.4",
        linewidth=1,
        linestyle="--",
        label="treat all",
    )
    ax.axhline(0.0, color="0.2", linewidth=1, linestyle=":", label="treat none")
    for label, curve in curves.items():
        (line,) = ax.plot(curve.thresholds, curve.net_benefit, label=display_name(label))
        if curve.n_boot:
            ax.fill_between(
                curve.thresholds,
                curve.net_benefit_low,
                curve.net_benefit_high,
                color=line.get_color(),
                alpha=0.15,
            )
    top = max(float(np.nanmax(c.net_benefit)) for c in curves.values())
    ax.set_ylim(-0.05, max(top, first.prevalence) * 1.1 + 0.01)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(title, fontsize="medium")
    _despine(ax)
    band = f"bands: {first.level:.0%} bootstrap CI (B = {first.n_boot})" if first.n_boot else None
    fig.legend(
        loc="outside right upper",
        fontsize="small",
        frameon=False,
        title=band,
        title_fontsize="small",
    )
    save_figure(fig, path)
    return fig


def _km_curve(ax: Axes, curve: KaplanMeierCurve, colour: str) -> None:
    """One Kaplan-Meier step curve from S(0) = 1, its band, and ticks at censored times."""
    time = np.r_[0.0, curve.time]
    ax.step(time, np.r_[1.0, curve.survival], where="post", color=colour, linewidth=1.3)
    ax.fill_between(
        time,
        np.r_[1.0, curve.lower],
        np.r_[1.0, curve.upper],
        step="post",
        color=colour,
        alpha=0.15,
        linewidth=0,
    )
    censored = curve.censored > 0
    ax.plot(
        curve.time[censored],
        curve.survival[censored],
        linestyle="none",
        marker="|",
        markersize=7,
        markeredgewidth=1.0,
        color=colour,
    )


def _at_risk_table(
    ax: Axes, curves: Mapping[str, KaplanMeierCurve], ticks: Sequence[float]
) -> None:
    """Numbers at risk of each group at ``ticks``, one row per group, under the time axis."""
    rows = [g for g in RISK_COLOURS if g in curves]
    for r, group in enumerate(rows):
        curve = curves[group]
        index = np.searchsorted(curve.time, ticks, side="left")
        counts = np.where(
            index < curve.time.size, curve.at_risk[np.minimum(index, curve.time.size - 1)], 0
        )
        for tick, count in zip(ticks, counts):
            ax.text(
                tick,
                r,
                str(int(count)),
                ha="center",
                va="center",
                fontsize="small",
                color=RISK_COLOURS[group],
            )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_yticks(range(len(rows)), rows, fontsize="small")
    for tick, group in zip(ax.get_yticklabels(), rows):
        tick.set_color(RISK_COLOURS[group])
    ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    ax.tick_params(axis="y", length=0, pad=14)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("number at risk", fontsize="small", loc="left")


def _forest(
    labels: Sequence[str],
    estimate: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    columns: Sequence[tuple[str, Sequence[str]]],
    *,
    reference: float,
    log: bool,
    extra: Sequence[np.ndarray] | None = None,
) -> tuple[Figure, Axes]:
    """A forest plot: one row per label from top to bottom, the estimate (square) with its
    interval, a dashed reference line, and text columns ``(header, values)`` right of the axis.

    The axis spans the finite estimates and bounds and the reference, at most
    :data:`FOREST_LOG_SPAN` either side of the reference on a log axis; what lies beyond is
    drawn at the edge as a triangle pointing out. Non-finite values are left out.
    """
    n = len(labels)
    widths = [max(len(h), *(len(v) for v in vals)) + 3 for h, vals in columns]
    # inches: the plot, the text columns (small monospace: ~0.07 in per character), labels
    axis_in, text_in = 4.5, 0.064 * sum(widths) + 0.2
    label_in = 0.08 * max(len(label) for label in labels)
    fig = Figure(figsize=(label_in + axis_in + text_in, 1.3 + 0.32 * n), layout="constrained")
    FigureCanvasAgg(fig)
    ax, text_ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [axis_in, text_in]})
    y = np.arange(n)[::-1].astype(float)
    if log:
        ax.set_xscale("log")
        valid = [v[np.isfinite(v) & (v > 0)] for v in (estimate, low, high)]
    else:
        valid = [v[np.isfinite(v)] for v in (estimate, low, high)]
    values = np.concatenate([*valid, [reference]])
    left, right = float(values.min()), float(values.max())
    if log:
        left = max(left, reference / FOREST_LOG_SPAN) / 1.25
        right = min(right, reference * FOREST_LOG_SPAN) * 1.25
    else:
        margin = 0.05 * (right - left or 1.0)
        left, right = left - margin, right + margin
    ax.set_xlim(left, right)
    for row, est, lo, hi in zip(y, estimate, low, high):
        if np.isfinite(lo) and np.isfinite(hi) and (not log or lo > 0):
            ax.plot(np.clip([lo, hi], left, right), [row, row], color="k", linewidth=1.0)
            for bound, edge, marker in ((lo, left, "<"), (hi, right, ">")):
                if (bound < edge) if marker == "<" else (bound > edge):
                    ax.plot(edge, row, marker, color="k", markersize=5)
        if np.isfinite(est) and (not log or est > 0):
            ax.plot(np.clip(est, left, right), row, "s", color="k", markersize=5)
    for row, points in zip(y, extra or []):
        points = points[np.isfinite(points) & ((points > 0) if log else True)]
        inside = (points >= left) & (points <= right)
        ax.plot(
            points[inside],
            np.full(int(inside.sum()), row),
            "o",
            markerfacecolor="none",
            markeredgecolor="0.4",
            markersize=4,
            linestyle="none",
        )
        for edge, marker, outside in ((left, "<", points < left), (right, ">", points > right)):
            if outside.any():
                ax.plot(
                    edge, row, marker, markerfacecolor="none", markeredgecolor="0.4", markersize=5
                )
    ax.axvline(reference, **_REFERENCE_STYLE)
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.7, n - 0.3)
    _despine(ax)
    text_ax.set_axis_off()
    rows = [[h for h, _ in columns], *zip(*(vals for _, vals in columns))]
    for r, cells in enumerate(rows):
        line = "".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
        text_ax.text(
            0.0,
            n - 0.4 if r == 0 else y[r - 1],
            line,
            fontsize="small",
            family="monospace",
            va="bottom" if r == 0 else "center",
            fontweight="bold" if r == 0 else "normal",
        )
    return fig, ax


def _interval(estimate: float, low: float, high: float) -> str:
    if not np.isfinite(estimate):
        return "not estimable"
    bounds = (
        f"{low:.2f}–{high:.2f}" if np.isfinite(low) and np.isfinite(high) else "CI not estimable"
    )
    return f"{estimate:.2f} ({bounds})"


def _prepare(
    results: pd.DataFrame,
    metrics: Sequence[str] | None,
    models: Sequence[str] | None,
    ddof: int,
) -> tuple[pd.DataFrame, list[str], list[str], list[tuple]]:
    stats = fold_statistics(results, ddof=ddof)
    metrics = list(metrics) if metrics is not None else list(pd.unique(stats["metric"]))
    models = list(models) if models is not None else list(pd.unique(stats["model"]))
    keys = group_keys(stats)
    groups = list(dict.fromkeys(map(tuple, stats[keys].to_numpy()))) if keys else [()]
    return stats, metrics, models, groups


def _select(stats: pd.DataFrame, metric: str | None, group: tuple) -> pd.DataFrame:
    mask = np.ones(len(stats), dtype=bool)
    for key, value in zip(group_keys(stats), group):
        mask &= (stats[key] == value).to_numpy()
    if metric is not None:
        mask &= (stats["metric"] == metric).to_numpy()
    return stats[mask]


def _group_labels(stats: pd.DataFrame, groups: Sequence[tuple]) -> list[str]:
    """Legend labels naming only the group columns whose value differs between groups."""
    if not groups or groups == [()]:
        return ["all"]
    varying = [i for i in range(len(groups[0])) if len({g[i] for g in groups}) > 1]
    shown = varying or [len(groups[0]) - 1]
    return [" + ".join(display_name(group[i]) for i in shown) for group in groups]


def _modality_title(results: pd.DataFrame) -> str:
    if "modality" not in results.columns:
        return "all subjects"
    return "modalities: " + "; ".join(map(str, pd.unique(results["modality"])))


def _spread_note(results: pd.DataFrame) -> str:
    """What the bars and error bars are: mean and SD over how many folds (and seeds)."""
    folds = results["fold"].nunique()
    seeds = results["seed"].nunique() if "seed" in results.columns else 1
    over = f"{folds} folds" + (f" × {seeds} seeds" if seeds > 1 else "")
    return f"mean over {over}; error bars ±1 SD"


def _unique_handles(axes: Sequence[Axes]) -> tuple[list, list[str]]:
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return list(handles.values()), list(handles)


def _despine(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _columns(panels: int) -> int:
    """Panels per row: all of them up to 3, else 2 per row up to 4, else 3."""
    return panels if panels <= 3 else (2 if panels == 4 else 3)


def _panels(
    panels: int, *, width: float, height: float, sharey: bool = False
) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes in rows of :func:`_columns`, each ``width`` x ``height``
    inches, with room for a title and a legend; unused grid cells are removed."""
    columns = _columns(panels)
    rows = -(-panels // columns)
    fig = Figure(
        figsize=(max(width * columns + 0.6, 5.0), height * rows + 1.2), layout="constrained"
    )
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, columns, squeeze=False, sharey=sharey).ravel()
    for ax in grid[panels:]:
        ax.remove()
    return fig, list(grid[:panels])


def _figure(panels: int, *, width: float, height: float) -> Figure:
    fig = Figure(figsize=(width * max(panels, 1) + 1.4, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig
