"""Figures: what is drawn equals the fold statistics / KM curves; PNGs written atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sksurv.util import Surv

from radiograph.io.atomic import partial_files
from radiograph.report.figures import (
    format_p,
    plot_fold_bands,
    plot_metric_bars,
    plot_risk_groups,
)
from radiograph.survival.risk_groups import stratify_risk

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for aggregator in ("Mean", "ABMIL", "SPARRA"):
        for model in ("rsf", "coxph", "coxnet", "fsvm"):
            for fold in range(5):
                for metric in ("c_index", "c_ipcw", "c_auc", "ibs"):
                    value = np.nan if (model, metric) == ("fsvm", "ibs") else rng.random()
                    rows.append({"aggregator": aggregator, "model": model, "fold": fold,
                                 "metric": metric, "value": value})
    return pd.DataFrame(rows)


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert imread(path).shape[0] > 100
    assert partial_files(path.parent) == []


def test_metric_bars_heights_are_fold_means(results, tmp_path):
    path = tmp_path / "fig2.png"
    fig = plot_metric_bars(results, path)
    assert_png(path)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["C-Index", "C-IPCW", "C-AUC", "IBS"]
    heights = [bar.get_height() for bar in axes[0].patches]
    expected = [
        results.query("aggregator == @agg and model == @model and metric == 'c_index'")
        ["value"].mean()
        for agg in ("Mean", "ABMIL", "SPARRA")
        for model in ("rsf", "coxph", "coxnet", "fsvm")
    ]
    np.testing.assert_allclose(heights, expected)
    ibs_heights = np.array([bar.get_height() for bar in axes[3].patches])
    assert np.isnan(ibs_heights).sum() == 3  # FSVM has no IBS, one per aggregator


def test_fold_bands_are_mean_plus_minus_std(results, tmp_path):
    path = tmp_path / "fig3.png"
    fig = plot_fold_bands(results, path)
    assert_png(path)
    assert [ax.get_title() for ax in fig.axes] == ["RSF", "CoxPH", "Coxnet", "FSVM"]
    line = fig.axes[1].get_lines()[2]  # CoxPH, SPARRA
    sparra = results.query("aggregator == 'SPARRA' and model == 'coxph'")
    means = sparra.groupby("metric", sort=False)["value"].mean()
    np.testing.assert_allclose(line.get_ydata(), means.to_numpy())
    band = fig.axes[1].collections[2].get_paths()[0].vertices[:, 1]
    stds = sparra.groupby("metric", sort=False)["value"].std()
    assert band.max() == pytest.approx((means + stds).max())
    assert band.min() == pytest.approx((means - stds).min())


def test_risk_group_panels_show_km_and_logrank_p(tmp_path):
    rng = np.random.default_rng(1)
    panels = {}
    for name, effect in (("Mean + CoxPH", 0.2), ("SPARRA + CoxPH", 1.5)):
        risk = rng.normal(size=80)
        event_time = rng.exponential(np.exp(-effect * risk))
        y = Surv.from_arrays(event_time < 3.0, np.minimum(event_time, 3.0))
        panels[name] = stratify_risk(rng.normal(size=100), risk, y)
    path = tmp_path / "fig4.png"
    fig = plot_risk_groups(panels, path, time_unit="years")
    assert_png(path)
    for ax, (name, groups) in zip(fig.axes, panels.items()):
        assert ax.get_title() == f"{name}, log-rank {format_p(groups.logrank_p)}"
        high = ax.get_lines()[1]
        np.testing.assert_allclose(high.get_ydata()[1:], groups.curves["high"].survival)
        assert ax.get_xlabel() == "time (years)"
    assert format_p(3e-7) == "p < 1e-4" and format_p(0.01234) == "p = 0.0123"
    assert format_p(np.nan) == "p = N/A"
