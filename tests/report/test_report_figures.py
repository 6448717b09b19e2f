"""Figures: what is drawn equals an independent computation on the input (fold means and
SDs by pandas, numbers at risk and censored times counted by hand, pooled hazard ratios and
paired differences from the table); every figure is written as PNG, PDF and SVG; legends
sit outside the data; p-values use the one format of ``radiograph.stats``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.image import imread
from sksurv.util import Surv

from radiograph.io.atomic import partial_files
from radiograph.io.figures import save_figure
from radiograph.report.figures import (
    FOREST_LOG_SPAN,
    p_text,
    plot_fold_bands,
    plot_hazard_ratios,
    plot_metric_bars,
    plot_paired_differences,
    plot_risk_groups,
)
from radiograph.stats.results import format_p
from radiograph.survival.risk_groups import stratify_risk

AGGREGATORS = ("Mean", "ABMIL", "SPARRA")
MODELS = ("rsf", "coxph", "coxnet", "fsvm")
METRICS = ("c_index", "c_ipcw", "c_auc", "ibs")


@pytest.fixture
def results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for aggregator in AGGREGATORS:
        for model in MODELS:
            for fold in range(5):
                for metric in METRICS:
                    value = np.nan if (model, metric) == ("fsvm", "ibs") else rng.random()
                    rows.append(
                        {
                            "modality": "pathology",
                            "aggregator": aggregator,
                            "model": model,
                            "fold": fold,
                            "metric": metric,
                            "value": value,
                        }
                    )
    return pd.DataFrame(rows)


def assert_written(path) -> None:
    """PNG, PDF and SVG side by side, complete, nothing half-written left behind."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[0] > 100
    assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in path.with_suffix(".svg").read_bytes()[:2000]
    assert partial_files(path.parent) == []


def assert_legend_outside_data(fig: Figure) -> None:
    fig.canvas.draw()
    assert fig.legends, "the figure legend is missing"
    legend = fig.legends[0].get_window_extent()
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_window_extent()), ax.get_title()


def stats_of(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = results[results["metric"] == metric]
    return rows.groupby(["aggregator", "model"])["value"].agg(["mean", "std"])


def test_metric_bars_are_fold_means_with_sd_error_bars(results, tmp_path):
    path = tmp_path / "fig2.png"
    fig = plot_metric_bars(results, path)
    assert_written(path)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == [
        "C-Index (mean ± SD)",
        "C-IPCW (mean ± SD)",
        "C-AUC (mean ± SD)",
        "IBS (mean ± SD)",
    ]
    assert all(ax.get_xlabel() == "downstream model" for ax in axes)
    expected = stats_of(results, "c_index")
    containers = [c for c in axes[0].containers if isinstance(c, BarContainer)]
    for bars, aggregator in zip(containers, AGGREGATORS, strict=True):
        want = expected.loc[aggregator].reindex(list(MODELS))
        np.testing.assert_allclose([b.get_height() for b in bars], want["mean"])
        segments = bars.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * want["std"])
    ibs_heights = np.array([bar.get_height() for bar in axes[3].patches])
    assert np.isnan(ibs_heights).sum() == 3  # FSVM has no IBS, one per aggregator
    assert "N/A" in [t.get_text() for t in axes[3].texts]
    # a chance line at 0.5 on the concordance panels only
    for ax, metric in zip(axes, METRICS):
        chance = [line for line in ax.get_lines() if line.get_label() == "chance (0.5)"]
        assert (len(chance) == 1) == (metric != "ibs")
        if chance:
            np.testing.assert_allclose(chance[0].get_ydata(), 0.5)
    assert "error bars ±1 SD" in fig.get_suptitle() and "5 folds" in fig.get_suptitle()
    assert "pathology" in fig.get_suptitle()
    assert_legend_outside_data(fig)
    # only the varying group column names a legend entry
    labels = fig.legends[0].get_texts()
    assert [t.get_text() for t in labels] == ["chance (0.5)", "Mean", "ABMIL", "SPARRA"]


def test_fold_bands_are_dots_with_sd_bars_and_no_joining_lines(results, tmp_path):
    path = tmp_path / "fig3.png"
    fig = plot_fold_bands(results, path)
    assert_written(path)
    assert [ax.get_title() for ax in fig.axes] == ["RSF", "CoxPH", "Coxnet", "FSVM"]
    ax = fig.axes[1]  # CoxPH
    for line in ax.get_lines():  # markers only: nothing joins different metrics
        assert line.get_linestyle() in ("None", "none", "")
    sparra = results.query("aggregator == 'SPARRA' and model == 'coxph'")
    means = sparra.groupby("metric", sort=False)["value"].mean()
    stds = sparra.groupby("metric", sort=False)["value"].std()
    container = ax.containers[2]  # SPARRA
    np.testing.assert_allclose(container.lines[0].get_ydata(), means.to_numpy())
    segments = container.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segments], 2 * stds.to_numpy())
    chance = [
        c
        for c in ax.collections
        if isinstance(c, LineCollection) and c.get_label() == "chance (0.5)"
    ]
    assert len(chance) == 1 and len(chance[0].get_segments()) == 3  # not under IBS
    assert_legend_outside_data(fig)


@pytest.fixture(scope="module")
def strata():
    rng = np.random.default_rng(1)
    panels, data = {}, {}
    for name, effect in (("mean + coxph", 0.2), ("sparra + coxph", 1.5)):
        risk = rng.normal(size=80)
        event_time = rng.exponential(np.exp(-effect * risk))
        censor = rng.uniform(0.2, 6.0, size=80)
        time = np.round(np.minimum(event_time, censor), 2) + 0.01
        event = event_time <= censor
        panels[name] = stratify_risk(rng.normal(size=100), risk, Surv.from_arrays(event, time))
        data[name] = (time, event, panels[name].high)
    return panels, data


def test_risk_groups_show_km_censoring_numbers_at_risk_and_capped_time(strata, tmp_path):
    panels, data = strata
    path = tmp_path / "fig4.png"
    fig = plot_risk_groups(panels, path, time_unit="years", time_quantile=0.9)
    assert_written(path)
    main, tables = fig.axes[:2], fig.axes[2:]
    for ax, table, (name, groups) in zip(main, tables, panels.items()):
        time, event, high = data[name]
        assert ax.get_title().splitlines() == [
            name.replace("mean", "Mean").replace("sparra", "SPARRA").replace("coxph", "CoxPH"),
            f"log-rank {p_text(groups.logrank_p)}, HR {groups.hazard_ratio:.2f} "
            f"({groups.hr_low:.2f}–{groups.hr_high:.2f})",
        ]
        assert ax.get_xlabel() == "time (years)"
        # the axis ends at the 90% quantile of every observed time of the panel
        assert ax.get_xlim()[1] == pytest.approx(np.quantile(time, 0.9, method="higher"))
        high_curve, high_censored = ax.get_lines()[2], ax.get_lines()[3]
        np.testing.assert_allclose(high_curve.get_ydata()[1:], groups.curves["high"].survival)
        np.testing.assert_allclose(
            np.sort(high_censored.get_xdata()), np.unique(time[high & ~event])
        )
        assert high_censored.get_marker() == "|"
        # numbers at risk: subjects of each group still followed at each time tick
        ticks = ax.get_xticks()
        shown = {
            (round(t.get_position()[0], 9), t.get_position()[1]): int(t.get_text())
            for t in table.texts
        }
        for row, members in enumerate((~high, high)):
            for tick in ticks:
                assert shown[(round(tick, 9), row)] == int(np.sum(time[members] >= tick))
    assert "95% CI" in fig.legends[0].get_title().get_text()
    assert "90% quantile of follow-up" in fig.legends[0].get_title().get_text()
    assert_legend_outside_data(fig)


def test_risk_group_arguments_are_checked(strata, tmp_path):
    panels, _ = strata
    with pytest.raises(ValueError, match="time_quantile"):
        plot_risk_groups(panels, tmp_path / "x.png", time_quantile=0.0)
    with pytest.raises(ValueError, match="groups"):
        plot_risk_groups({}, tmp_path / "x.png")


def test_p_values_have_one_format():
    assert p_text(0.0004) == f"p {format_p(0.0004)}" == "p < 0.001"
    assert p_text(0.0341) == f"p = {format_p(0.0341)}" == "p = 0.034"
    assert p_text(np.nan) == "p = NA"
    import radiograph.report.figures as figures

    assert not hasattr(figures, "format_p") or figures.format_p is format_p


def test_hazard_ratio_forest_plots_pooled_rows_and_clips_runaway_folds(tmp_path):
    frame = pd.DataFrame(
        [
            {
                "seed": 0,
                "modality": "pathology",
                "aggregator": "mean",
                "fold": 0,
                "hazard_ratio": 1.5,
                "hr_low": 0.8,
                "hr_high": 2.6,
                "logrank_p": 0.2,
            },
            {
                "seed": 0,
                "modality": "pathology",
                "aggregator": "mean",
                "fold": 1,
                "hazard_ratio": 3e16,
                "hr_low": 0.0,
                "hr_high": np.inf,
                "logrank_p": 0.01,
            },
            {
                "seed": 0,
                "modality": "pathology",
                "aggregator": "mean",
                "fold": "pooled",
                "hazard_ratio": 2.0,
                "hr_low": 1.2,
                "hr_high": 3.4,
                "logrank_p": 0.004,
            },
            {
                "seed": 0,
                "modality": "pathology",
                "aggregator": "sparra",
                "fold": "pooled",
                "hazard_ratio": 0.7,
                "hr_low": 0.4,
                "hr_high": 1.3,
                "logrank_p": 0.25,
            },
        ]
    )
    path = tmp_path / "hr.png"
    fig = plot_hazard_ratios(frame, path)
    assert_written(path)
    ax, text_ax = fig.axes[:2]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "pathology · Mean",
        "pathology · SPARRA",
    ]
    squares = [line for line in ax.get_lines() if line.get_marker() == "s"]
    np.testing.assert_allclose(sorted(float(s.get_xdata()[0]) for s in squares), [0.7, 2.0])
    left, right = ax.get_xlim()
    assert right <= FOREST_LOG_SPAN * 1.25 and left >= 1 / (FOREST_LOG_SPAN * 1.25)
    runaway = [line for line in ax.get_lines() if line.get_marker() == ">"]
    assert runaway and float(runaway[0].get_xdata()[0]) == pytest.approx(right)
    text = " ".join(t.get_text() for t in text_ax.texts)
    assert "2.00 (1.20–3.40)" in text and format_p(0.004) in text
    with pytest.raises(ValueError, match="pooled"):
        plot_hazard_ratios(frame[frame["fold"] != "pooled"], tmp_path / "none.png")


def test_paired_difference_forest_draws_each_interval(tmp_path):
    frame = pd.DataFrame(
        {
            "modality": ["pathology", "pathology"],
            "model": ["avg", "avg"],
            "aggregator_a": ["sparra", "sparra"],
            "aggregator_b": ["mean", "abmil"],
            "method": ["nadeau-bengio"] * 2,
            "difference": [0.05, -0.02],
            "ci_low": [0.01, -0.08],
            "ci_high": [0.09, 0.04],
            "p_value": [0.02, 0.5],
        }
    )
    path = tmp_path / "diff.png"
    fig = plot_paired_differences(frame, path, metric_label="C-index")
    assert_written(path)
    ax = fig.axes[0]
    intervals = [
        line
        for line in ax.get_lines()
        if line.get_marker() in ("None", "") and line.get_linestyle() == "-"
    ]
    reference = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(reference) == 1 and tuple(reference[0].get_xdata()) == (0, 0)
    np.testing.assert_allclose(
        sorted(tuple(line.get_xdata()) for line in intervals), [(-0.08, 0.04), (0.01, 0.09)]
    )
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "pathology · SPARRA − Mean",
        "pathology · SPARRA − ABMIL",
    ]
    assert "A − B" in ax.get_xlabel() and "C-index" in ax.get_xlabel()
    with pytest.raises(ValueError, match="no rows"):
        plot_paired_differences(frame.iloc[:0], tmp_path / "empty.png")


def test_save_figure_writes_three_formats_reproducibly(tmp_path):
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    paths = save_figure(fig, tmp_path / "a.svg")
    assert sorted(p.name for p in paths.values()) == ["a.pdf", "a.png", "a.svg"]
    first = {k: p.read_bytes() for k, p in paths.items() if k != "png"}
    save_figure(fig, tmp_path / "a.png")
    assert {k: paths[k].read_bytes() for k in first} == first  # no creation date inside
    with pytest.raises(ValueError, match="path"):
        save_figure(fig, tmp_path / "a.jpg")
