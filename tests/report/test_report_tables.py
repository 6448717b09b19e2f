"""Table 1 from a hand-made long DataFrame: means, stds, averages, renderings, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiograph.io.atomic import partial_files
from radiograph.report.tables import (
    best_cells,
    table1,
    table1_caption,
    to_latex,
    to_markdown,
    write_table,
)

# Fold values by hand: (aggregator, model, metric) -> values over 3 folds.
VALUES = {
    ("Mean", "rsf", "c_index"): [0.60, 0.62, 0.64],
    ("Mean", "coxph", "c_index"): [0.70, 0.70, 0.70],
    ("Mean", "fsvm", "c_index"): [0.50, 0.60, 0.70],
    ("Mean", "rsf", "ibs"): [0.20, 0.22, 0.24],
    ("Mean", "coxph", "ibs"): [0.30, 0.30, 0.30],
    ("Mean", "fsvm", "ibs"): [np.nan, np.nan, np.nan],
    ("SPARRA", "rsf", "c_index"): [0.70, 0.72, 0.74],
    ("SPARRA", "coxph", "c_index"): [0.65, 0.65, 0.68],
    ("SPARRA", "fsvm", "c_index"): [0.80, 0.80, 0.80],
    ("SPARRA", "rsf", "ibs"): [0.25, 0.25, 0.25],
    ("SPARRA", "coxph", "ibs"): [0.10, 0.20, 0.30],
    ("SPARRA", "fsvm", "ibs"): [np.nan, np.nan, np.nan],
}


@pytest.fixture
def results() -> pd.DataFrame:
    rows = [
        {
            "extractor": "ViT+UNI",
            "aggregator": agg,
            "model": model,
            "fold": fold,
            "metric": metric,
            "value": value,
        }
        for (agg, model, metric), values in VALUES.items()
        for fold, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_cells_are_fold_mean_and_sample_std(results):
    table = table1(results)
    assert list(table.index) == [
        ("ViT+UNI", "Mean", "c_index"),
        ("ViT+UNI", "Mean", "ibs"),
        ("ViT+UNI", "SPARRA", "c_index"),
        ("ViT+UNI", "SPARRA", "ibs"),
    ]
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == ["rsf", "coxph", "fsvm", "avg"]
    row = ("ViT+UNI", "Mean", "c_index")
    assert table.loc[row, ("rsf", "mean")] == pytest.approx(0.62)
    assert table.loc[row, ("rsf", "std")] == pytest.approx(0.02)  # sample std of .60 .62 .64
    assert table.loc[row, ("coxph", "std")] == pytest.approx(0.0)
    assert table.loc[row, ("fsvm", "std")] == pytest.approx(0.1)
    # Avg: mean of the model means and mean of the model stds (paper's Table 1).
    assert table.loc[row, ("avg", "mean")] == pytest.approx((0.62 + 0.70 + 0.60) / 3)
    assert table.loc[row, ("avg", "std")] == pytest.approx((0.02 + 0.0 + 0.1) / 3)
    ibs = ("ViT+UNI", "SPARRA", "ibs")
    assert np.isnan(table.loc[ibs, ("fsvm", "mean")])  # N/A
    assert table.loc[ibs, ("avg", "mean")] == pytest.approx((0.25 + 0.20) / 2)
    assert table.loc[ibs, ("avg", "std")] == pytest.approx((0.0 + 0.1) / 2)
    population = table1(results, ddof=0)
    assert population.loc[row, ("rsf", "std")] == pytest.approx(np.std([0.60, 0.62, 0.64]))


def test_orders_and_subsets(results):
    table = table1(results, models=["fsvm", "rsf"], metrics=["ibs", "c_index"])
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == ["fsvm", "rsf", "avg"]
    assert [r[-1] for r in table.index[:2]] == ["ibs", "c_index"]
    row = ("ViT+UNI", "Mean", "c_index")
    assert table.loc[row, ("avg", "mean")] == pytest.approx((0.60 + 0.62) / 2)


def test_best_cells_follow_metric_direction(results):
    best = best_cells(table1(results))
    assert best.loc[("ViT+UNI", "SPARRA", "c_index"), "rsf"]  # 0.72 > 0.62
    assert best.loc[("ViT+UNI", "Mean", "c_index"), "coxph"]  # 0.70 > 0.66
    assert best.loc[("ViT+UNI", "Mean", "ibs"), "rsf"]  # IBS: lower wins, 0.22 < 0.25
    assert not best.loc[("ViT+UNI", "Mean", "ibs"), "fsvm"]  # N/A never wins
    assert not best.loc[("ViT+UNI", "SPARRA", "ibs"), "fsvm"]


def test_renderings(results):
    table = table1(results)
    markdown = to_markdown(table)
    lines = markdown.splitlines()
    assert lines[0] == "| Extractor | Aggr. | Metric | RSF | CoxPH | FSVM | Avg. |"
    assert lines[2].startswith("| ViT+UNI | Mean | C-Index | 0.620 ± 0.020 | **0.700 ± 0.000** |")
    assert "| IBS | **0.220 ± 0.020** |" in lines[3] and "N/A" in lines[3]
    latex = to_latex(table)
    assert r"$0.620_{0.020}$" in latex and r"$\mathbf{0.720}_{0.020}$" in latex
    assert latex.count(r" \\") == 1 + len(table) and "N/A" in latex


def test_write_table_is_complete_and_atomic(results, tmp_path):
    table = table1(results)
    paths = write_table(table, tmp_path / "report" / "table1")
    assert sorted(p.name for p in paths.values()) == ["table1.csv", "table1.md", "table1.tex"]
    back = pd.read_csv(paths["csv"])
    assert list(back.columns[:3]) == ["extractor", "aggregator", "metric"]
    np.testing.assert_allclose(back["rsf_mean"], table[("rsf", "mean")].to_numpy())
    assert paths["md"].read_text(encoding="utf-8") == to_markdown(
        table, caption=table1_caption(table)
    )
    tex = paths["tex"].read_text(encoding="utf-8")
    assert tex.startswith(r"% Needs \usepackage{booktabs}")
    assert "% Caption: " in tex and r"\toprule" in tex
    assert partial_files(tmp_path) == []


def test_captions_say_what_the_cells_the_spread_and_the_bold_mean(results):
    table = table1(results)
    caption = table1_caption(table)
    assert "mean ± SD" in caption and "sample standard deviation" in caption
    assert "over the 3 outer cross-validation folds" in caption  # 3 folds in the fixture
    assert "Bold: the best mean of its column" in caption and "lowest for IBS" in caption
    assert "N/A" in caption  # FSVM's IBS
    assert "SD as subscript" in table1_caption(table, latex=True)
    repeated = pd.concat([results.assign(seed=0), results.assign(seed=1)])
    assert "of each of 2 repeats" in table1_caption(table1(repeated))
    assert "population" in table1_caption(table1(results, ddof=0))
    complete = results[results["metric"] == "c_index"]
    assert "N/A" not in table1_caption(table1(complete))
    markdown = to_markdown(table, caption=caption).splitlines()
    assert markdown[-1] == f"*Table 1.* {caption}" and markdown[0].startswith("| Extractor")


def test_duplicates_and_missing_columns_are_reported(results):
    with pytest.raises(ValueError, match="duplicated"):
        table1(pd.concat([results, results.iloc[:1]]))
    with pytest.raises(ValueError, match="missing column"):
        table1(results.drop(columns="fold"))


def test_results_without_group_columns(results):
    plain = results[results["aggregator"] == "SPARRA"].drop(columns=["extractor", "aggregator"])
    table = table1(plain)
    assert list(table.index) == ["c_index", "ibs"]
    assert table.loc["c_index", ("fsvm", "mean")] == pytest.approx(0.80)
    assert not best_cells(table).to_numpy().any()  # nothing to compare against
    assert to_markdown(table).splitlines()[0] == "| Metric | RSF | CoxPH | FSVM | Avg. |"
