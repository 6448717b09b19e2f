r"""Tables in the layout of the paper's Table 1, from long-format fold results.

Input: a long DataFrame with one row per (group, model, fold, metric): columns ``model``,
``fold``, ``metric``, ``value`` (and ``seed`` for repeated cross-validation: a row per seed
and fold, the statistics are then over all of them) and any of the group columns
:data:`GROUP_KEYS`
(``extractor``, ``modality``, ``aggregator``), e.g. the output of
:func:`radiograph.survival.baselines.run_baselines` with the group columns added.

Table 1: rows = group x metric, columns = models then ``avg``; each cell holds the mean and
the standard deviation over folds. As in the paper, the ``avg`` cell is the mean of the
model means and the mean of the model standard deviations, over the models where the metric
exists (IBS has no FSVM value: N/A, and its average is over the three other models).

Every rendering carries a caption (:func:`table1_caption`, :func:`comparisons_caption`) that
says what the cells, the +- (or the LaTeX subscript) and the bold mean. The LaTeX is a
``tabular`` for ``\input`` inside your own ``table`` environment; it needs
``\usepackage{booktabs}``, which its header comment states together with the caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radiograph.io.atomic import atomic_open
from radiograph.nn.registry import LABELS as AGGREGATOR_LABELS
from radiograph.survival.metrics import LOWER_IS_BETTER

GROUP_KEYS = ("extractor", "modality", "aggregator")
REQUIRED = ("model", "fold", "metric", "value")
AVG = "avg"
MODEL_LABELS = {"rsf": "RSF", "coxph": "CoxPH", "coxnet": "Coxnet", "fsvm": "FSVM", AVG: "Avg."}
METRIC_LABELS = {
    "c_index": "C-Index",
    "c_ipcw": "C-IPCW",
    "c_auc": "C-AUC",
    "ibs": "IBS",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "accuracy": "Accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
}
GROUP_LABELS = {"extractor": "Extractor", "modality": "Modality", "aggregator": "Aggr."}
METHOD_LABELS = {
    "kang-2015": "Kang et al. (2015) one-shot test",
    "paired-bootstrap": "paired patient-level bootstrap",
    "nadeau-bengio": "corrected resampled t-test (Nadeau & Bengio 2003)",
    "delong-paired": "DeLong paired test",
}
KM_TIME_QUANTILE = 0.95
"""Default cut of the Kaplan-Meier time axis: this quantile of the observed times (here, not in
:mod:`radiograph.report.figures`, so that captions need no matplotlib)."""


def display_name(value: object) -> str:
    """How a model, aggregator or metric is named in tables and figures (``"sparra"`` ->
    ``"SPARRA"``, ``"coxph"`` -> ``"CoxPH"``); other values unchanged."""
    text = str(value)
    for labels in (AGGREGATOR_LABELS, MODEL_LABELS, METRIC_LABELS):
        if text in labels:
            return labels[text]
    return text


def fold_statistics(results: pd.DataFrame, *, ddof: int = 1) -> pd.DataFrame:
    """Mean, standard deviation and number of finite values over folds.

    Args:
        results: long results (see the module docstring).
        ddof: delta degrees of freedom of the standard deviation (1 = sample std).

    Returns:
        DataFrame with the group columns present, ``model``, ``metric``, ``mean``, ``std``,
        ``n``; groups, models and metrics in order of first appearance. NaN values (e.g. the
        IBS of FSVM) are ignored; a cell without finite values has mean and std NaN.
    """
    frame = _check_results(results)
    keys = [*group_keys(frame), "model", "metric"]
    grouped = frame.groupby(keys, sort=False, dropna=False)["value"]
    stats = grouped.agg(mean="mean", std=lambda v: v.std(ddof=ddof), n="count")
    return stats.reset_index()


def table1(
    results: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    ddof: int = 1,
) -> pd.DataFrame:
    """The paper's Table 1 from long fold results.

    Args:
        results: long results (see the module docstring).
        models: column order (default: order of first appearance).
        metrics: row order within a group (default: order of first appearance).
        ddof: delta degrees of freedom of the fold standard deviation.

    Returns:
        DataFrame indexed by (group columns present..., ``metric``) with MultiIndex columns
        (model, ``"mean"`` | ``"std"``) for every model and for ``"avg"``.
    """
    stats = fold_statistics(results, ddof=ddof)
    keys = [*group_keys(stats), "metric"]
    models = list(models) if models is not None else list(pd.unique(stats["model"]))
    wide = stats.set_index([*keys, "model"])[["mean", "std"]].unstack("model")
    wide = wide.swaplevel(0, 1, axis=1).reindex(
        columns=pd.MultiIndex.from_product([models, ["mean", "std"]])
    )
    means = wide.xs("mean", axis=1, level=1)
    stds = wide.xs("std", axis=1, level=1)
    wide[(AVG, "mean")] = means.mean(axis=1, skipna=True)
    wide[(AVG, "std")] = stds.mean(axis=1, skipna=True)
    order = _row_order(stats, keys, metrics)
    table = wide.reindex(order)
    table.attrs.update(_spread(results, ddof))
    return table


def best_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Which means are the best of their comparison (bold in the paper).

    Rows that share every group column except the last one (the aggregator, in the paper)
    and the metric are compared column by column: the highest mean wins, the lowest for
    :data:`~radiograph.survival.metrics.LOWER_IS_BETTER` metrics (IBS). A comparison of a
    single row has no winner.

    Returns:
        Bool DataFrame indexed like ``table`` with one column per model (and ``avg``).
    """
    means = table.xs("mean", axis=1, level=1)
    names = list(table.index.names)
    if len(names) < 2:
        return pd.DataFrame(False, index=means.index, columns=means.columns)
    compare_on = [*names[:-2], "metric"]
    winners: set[tuple[Any, str]] = set()
    for _, block in means.groupby(level=compare_on, sort=False):
        if len(block) < 2:
            continue
        lower = block.index.get_level_values("metric")[0] in LOWER_IS_BETTER
        for column in block.columns:
            values = block[column].dropna()
            if not values.empty:
                winners.add((values.idxmin() if lower else values.idxmax(), column))
    return pd.DataFrame(
        [[(row, column) in winners for column in means.columns] for row in means.index],
        index=means.index,
        columns=means.columns,
    )


def table1_caption(table: pd.DataFrame, *, latex: bool = False) -> str:
    """What :func:`table1`'s cells mean, in words: the spread (fold count and ``ddof`` from
    ``table.attrs``, set by :func:`table1`), the ``avg`` column, the bold cells and N/A.

    Args:
        table: a :func:`table1` table.
        latex: describe the LaTeX cells (``mean`` with the SD as subscript) rather than
            ``mean ± SD``.
    """
    folds, repeats = table.attrs.get("n_folds"), table.attrs.get("n_repeats", 1)
    over = f"the {folds} outer cross-validation folds" if folds else "the outer folds"
    if repeats and repeats > 1:
        over += f" of each of {repeats} repeats (seeds)"
    kind = "sample" if table.attrs.get("ddof", 1) == 1 else "population"
    cell = "the mean with the SD as subscript" if latex else "mean ± SD"
    names = list(table.index.names)
    caption = (
        f"Each cell: {cell}, the {kind} standard deviation (SD) over {over}, of the "
        "metric on the test fold of each downstream model (columns). Avg.: the mean of "
        "the model means and the mean of the model SDs, as in the paper's Table 1."
    )
    if len(names) >= 2:
        fixed = [GROUP_LABELS.get(n, str(n)).rstrip(".").lower() for n in names[:-2]]
        scope = "the same " + ", ".join(fixed) + (" and metric" if fixed else "metric")
        varies = GROUP_LABELS.get(names[-2], str(names[-2]))
        varies = "aggregator" if varies == "Aggr." else varies.lower()
        lower = sorted(set(table.index.get_level_values("metric")) & LOWER_IS_BETTER)
        rule = (
            "highest; lowest for " + ", ".join(METRIC_LABELS.get(m, m) for m in lower)
            if lower
            else "highest"
        )
        caption += (
            f" Bold: the best mean of its column among the rows of {scope} that differ "
            f"in the {varies} ({rule})."
        )
    if table.xs("mean", axis=1, level=1).isna().to_numpy().any():
        caption += (
            " N/A: the metric does not exist for the model (FSVM gives no survival "
            "function, hence no IBS)."
        )
    return caption + (
        " The SD is the spread over folds, not a confidence interval; the "
        "report's pooled estimates carry the intervals."
    )


def to_markdown(table: pd.DataFrame, *, digits: int = 3, caption: str | None = None) -> str:
    """Markdown rendering of :func:`table1`: cells ``mean ± std``, best in bold, N/A for NaN;
    ``caption`` (e.g. :func:`table1_caption`) as a paragraph under the table."""
    best = best_cells(table)
    header = [*_index_labels(table), *(_model_label(m) for m in _models(table))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.index:
        cells = []
        for model in _models(table):
            text = _cell(table.loc[row, (model, "mean")], table.loc[row, (model, "std")], digits)
            cells.append(f"**{text}**" if best.loc[row, model] else text)
        lines.append("| " + " | ".join([*_row_labels(row), *cells]) + " |")
    if caption:
        lines += ["", f"*Table 1.* {caption}"]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, *, digits: int = 3, caption: str | None = None) -> str:
    r"""LaTeX rendering of :func:`table1`: a booktabs ``tabular`` with cells ``$mean_{std}$``
    as in the paper, best mean in ``\mathbf``, N/A for NaN. A header comment says that it
    needs ``\usepackage{booktabs}`` and carries ``caption`` (e.g.
    ``table1_caption(table, latex=True)``) for your ``\caption{}``."""
    best = best_cells(table)
    n_index = len(table.index.names)
    models = _models(table)
    header = [*_index_labels(table), *(_model_label(m) for m in models)]
    lines = [
        r"% Needs \usepackage{booktabs} (\toprule, \midrule, \bottomrule).",
        *(["% Caption: " + _latex_escape(caption)] if caption else []),
        r"\begin{tabular}{" + "l" * n_index + "c" * len(models) + "}",
        r"\toprule",
        " & ".join(_latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for row in table.index:
        cells = []
        for model in models:
            mean, std = table.loc[row, (model, "mean")], table.loc[row, (model, "std")]
            if not np.isfinite(mean):
                cells.append("N/A")
                continue
            value = f"{mean:.{digits}f}"
            value = rf"\mathbf{{{value}}}" if best.loc[row, model] else value
            spread = f"{std:.{digits}f}" if np.isfinite(std) else "-"
            cells.append(f"${value}_{{{spread}}}$")
        lines.append(" & ".join([*map(_latex_escape, _row_labels(row)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`table1` flattened for CSV: index columns then ``<model>_mean``, ``<model>_std``."""
    flat = table.copy()
    flat.columns = [f"{model}_{stat}" for model, stat in flat.columns]
    return flat.reset_index()


def write_table(table: pd.DataFrame, path: str | Path, *, digits: int = 3) -> dict[str, Path]:
    """Write :func:`table1` as CSV, Markdown and LaTeX beside ``path`` (suffix replaced); the
    Markdown and LaTeX carry :func:`table1_caption`.

    Every file is written atomically. Returns ``{"csv": ..., "md": ..., "tex": ...}``.
    """
    base = Path(path)
    out = {}
    renderings = {
        "csv": lambda: to_csv_frame(table).to_csv(index=False),
        "md": lambda: to_markdown(table, digits=digits, caption=table1_caption(table)),
        "tex": lambda: to_latex(table, digits=digits, caption=table1_caption(table, latex=True)),
    }
    for suffix, render in renderings.items():
        target = base.with_suffix(f".{suffix}")
        with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
            fh.write(render())
        out[suffix] = target
    return out


def group_keys(frame: pd.DataFrame) -> list[str]:
    """The group columns of :data:`GROUP_KEYS` present in ``frame``, in that order."""
    return [key for key in GROUP_KEYS if key in frame.columns]


def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"results: missing column(s) {missing}; have {list(results.columns)}")
    repeat = ["seed"] if "seed" in results.columns else []
    keys = [*group_keys(results), "model", "metric", *repeat, "fold"]
    duplicated = results.duplicated(keys, keep=False)
    if duplicated.any():
        first = results.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(f"results: {int(duplicated.sum())} duplicated rows, e.g. {first}")
    frame = results.copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="raise").astype(float)
    return frame


def _spread(results: pd.DataFrame, ddof: int) -> dict[str, int]:
    """How many folds and repeats the fold statistics run over (for the caption)."""
    repeats = int(results["seed"].nunique()) if "seed" in results.columns else 1
    return {"n_folds": int(results["fold"].nunique()), "n_repeats": repeats, "ddof": ddof}


def _row_order(stats: pd.DataFrame, keys: list[str], metrics: Sequence[str] | None) -> list:
    groups = list(dict.fromkeys(map(tuple, stats[keys[:-1]].to_numpy()))) if keys[:-1] else [()]
    present = list(pd.unique(stats["metric"]))
    metric_order = [m for m in metrics if m in present] if metrics is not None else present
    rows = [(*group, metric) for group in groups for metric in metric_order]
    return rows if len(keys) > 1 else [metric for (metric,) in rows]


def _models(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table.columns.get_level_values(0)))


def _index_labels(table: pd.DataFrame) -> list[str]:
    names = table.index.names
    return [GROUP_LABELS.get(name, "Metric" if name == "metric" else str(name)) for name in names]


def _row_labels(row: object) -> list[str]:
    values = row if isinstance(row, tuple) else (row,)
    return [*map(display_name, values[:-1]), METRIC_LABELS.get(values[-1], str(values[-1]))]


def _model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _cell(mean: float, std: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "N/A"
    spread = f"{std:.{digits}f}" if np.isfinite(std) else "-"
    return f"{mean:.{digits}f} ± {spread}"


def _latex_escape(text: str) -> str:
    for char in ("&", "%", "$", "#", "_", "{", "}"):
        text = text.replace(char, "\\" + char)
    return text.replace("±", r"$\pm$")


def comparisons_caption(frame: pd.DataFrame, *, level: float = 0.95) -> str:
    """What the columns of :func:`comparisons_to_markdown` mean, naming the methods present."""
    methods = [METHOD_LABELS.get(m, m) for m in pd.unique(frame.get("method", pd.Series()))]
    text = (
        f"A, B: the two aggregators' estimates on the same subjects (or folds); A - B: "
        f"their difference with its {level:.0%} confidence interval (> 0: A better); p: "
        "two-sided p-value of no difference, not corrected for multiple comparisons."
    )
    if "model" in frame.columns and (frame["model"] == AVG).any():
        text += " Model Avg.: the mean over the downstream models."
    if methods:
        text += " Methods: " + "; ".join(methods) + "."
    return text


def comparisons_to_markdown(frame: pd.DataFrame, *, digits: int = 3, caption: bool = True) -> str:
    """Markdown table of paired comparisons (rows of
    :func:`radiograph.report.comparisons.aggregator_comparisons` or
    :func:`~radiograph.report.comparisons.cross_validated_comparisons`): one line per
    comparison, ``A vs B``, both estimates, the difference A - B with its interval, the
    p-value (:func:`radiograph.stats.results.format_p`) and the method; with ``caption``,
    :func:`comparisons_caption` under the table."""
    from radiograph.stats.results import format_p

    if frame.empty:
        return "(no comparisons)\n"
    keys = [k for k in ("seed", "modality", "model") if k in frame.columns]
    header = [*(k.capitalize() for k in keys), "A vs B", "A", "B", "A - B (95% CI)", "p", "method"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        model = MODEL_LABELS.get(row.get("model"), row.get("model"))
        labels = [str(model if k == "model" else row[k]) for k in keys]
        difference = (
            f"{row['difference']:+.{digits}f} ({row['ci_low']:+.{digits}f} to "
            f"{row['ci_high']:+.{digits}f})"
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    *labels,
                    f"{display_name(row['aggregator_a'])} vs {display_name(row['aggregator_b'])}",
                    f"{row['c_a']:.{digits}f}",
                    f"{row['c_b']:.{digits}f}",
                    difference,
                    format_p(float(row["p_value"])),
                    str(row["method"]),
                ]
            )
            + " |"
        )
    if caption:
        lines += ["", comparisons_caption(frame)]
    return "\n".join(lines) + "\n"
