"""Figures in the style of the paper's Fig. 2, 3 and 4, saved as PNG atomically.

Figures are built with :class:`matplotlib.figure.Figure` on the Agg canvas directly (no
pyplot, no global backend switch), so they render headless and leave no global state.

- :func:`plot_metric_bars` (Fig. 2): one panel per metric; per model, one bar per group
  (extractor / aggregator combination) of the fold mean with a +- std error bar.
- :func:`plot_fold_bands` (Fig. 3): one panel per model; per group, the fold mean across
  metrics with a +- std band.
- :func:`plot_risk_groups` (Fig. 4): one panel per aggregator; Kaplan-Meier curves of the
  low- and high-risk groups with their confidence bands, log-rank p in the title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from radiograph.io.atomic import atomic_path
from radiograph.report.tables import (
    METRIC_LABELS,
    MODEL_LABELS,
    fold_statistics,
    group_keys,
)
from radiograph.survival.risk_groups import RiskGroups

RISK_COLOURS = {"low": "tab:blue", "high": "tab:red"}


def plot_metric_bars(
    results: pd.DataFrame,
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    ddof: int = 1,
) -> Figure:
    """Fig. 2: bars of the fold mean (+- std) per metric, model and group.

    Args:
        results: long fold results (see :mod:`radiograph.report.tables`).
        path: PNG file to write.
        metrics, models: subsets and order (default: order of first appearance).
        ddof: delta degrees of freedom of the fold standard deviation.

    Returns:
        The figure (already saved). Bars of a model without values (FSVM's IBS) are absent.
    """
    stats, metrics, models, groups = _prepare(results, metrics, models, ddof)
    fig = _figure(len(metrics), width=4.0, height=3.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    width = 0.8 / max(len(groups), 1)
    for ax, metric in zip(axes, metrics):
        for g, group in enumerate(groups):
            rows = _select(stats, metric, group).set_index("model").reindex(models)
            ax.bar(
                np.arange(len(models)) + (g - (len(groups) - 1) / 2) * width,
                rows["mean"].to_numpy(),
                width,
                yerr=rows["std"].to_numpy(),
                capsize=2,
                label=_group_label(group),
            )
        ax.set_xticks(np.arange(len(models)), [MODEL_LABELS.get(m, m) for m in models])
        ax.set_title(METRIC_LABELS.get(metric, metric))
    axes[0].legend(fontsize="small")
    _save(fig, path)
    return fig


def plot_fold_bands(
    results: pd.DataFrame,
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    ddof: int = 1,
) -> Figure:
    """Fig. 3: per model, the fold mean of every group across metrics with a +- std band.

    Arguments and return as in :func:`plot_metric_bars`.
    """
    stats, metrics, models, groups = _prepare(results, metrics, models, ddof)
    fig = _figure(len(models), width=3.6, height=3.2)
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    x = np.arange(len(metrics))
    for ax, model in zip(axes, models):
        for group in groups:
            rows = _select(stats, None, group)
            rows = rows[rows["model"] == model].set_index("metric").reindex(metrics)
            mean, std = rows["mean"].to_numpy(), rows["std"].to_numpy()
            (line,) = ax.plot(x, mean, marker="o", label=_group_label(group))
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xticks(x, [METRIC_LABELS.get(m, m) for m in metrics], rotation=30)
        ax.set_title(MODEL_LABELS.get(model, model))
    axes[0].legend(fontsize="small")
    _save(fig, path)
    return fig


def plot_risk_groups(
    groups: Mapping[str, RiskGroups],
    path: str | Path,
    *,
    time_unit: str | None = None,
) -> Figure:
    """Fig. 4: Kaplan-Meier curves of the low- and high-risk groups, one panel per entry.

    Args:
        groups: panel title (e.g. ``"SPARRA + CoxPH"``) -> :class:`RiskGroups`.
        path: PNG file to write.
        time_unit: x-axis unit label (e.g. ``"months"``).

    Returns:
        The figure (already saved). Panel titles read ``"<name>, log-rank p = <p>"``
        (see :func:`format_p`).
    """
    fig = _figure(len(groups), width=4.0, height=3.4)
    axes = fig.subplots(1, len(groups), squeeze=False, sharey=True)[0]
    for ax, (name, strata) in zip(axes, groups.items()):
        for label, curve in strata.curves.items():
            colour = RISK_COLOURS[label]
            time = np.r_[0.0, curve.time]
            ax.step(time, np.r_[1.0, curve.survival], where="post", color=colour,
                    label=f"{label} risk (n={curve.n})")
            ax.fill_between(time, np.r_[1.0, curve.lower], np.r_[1.0, curve.upper],
                            step="post", color=colour, alpha=0.2)
        ax.set_title(f"{name}, log-rank {format_p(strata.logrank_p)}")
        ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")
        ax.set_ylim(0.0, 1.05)
        ax.legend(fontsize="small", loc="lower left")
    axes[0].set_ylabel("survival probability")
    _save(fig, path)
    return fig


def format_p(p: float) -> str:
    """A p-value for a title: ``"p = 0.0123"`` (3 significant digits), ``"p < 1e-4"``, or
    ``"p = N/A"`` when NaN."""
    if not np.isfinite(p):
        return "p = N/A"
    return "p < 1e-4" if p < 1e-4 else f"p = {p:.3g}"


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


def _group_label(group: tuple) -> str:
    return " + ".join(map(str, group)) if group else "all"


def _figure(panels: int, *, width: float, height: float) -> Figure:
    fig = Figure(figsize=(width * max(panels, 1), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
