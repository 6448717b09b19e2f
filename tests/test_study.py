"""The whole study from one config: every stage runs, the report is written, a rerun resumes."""

from __future__ import annotations

import dataclasses
import re
import textwrap
import warnings
from pathlib import Path

import pandas as pd
import pytest

from radiograph.cli import main
from radiograph.study import StudyConfigError, load_study_config, run_study, summarise_warnings

TINY = """
out_dir: out
cohort:
  synthetic: {subjects: 16, seed: 5, slide_size: [1344, 896]}
pathology: {encoder: efficientnet-lite0}
radiology: {features: pyradiomics, units: grid}
graphs: {method: slidegraph}
training: {folds: 2, epochs: 2, batch_size: 4, seed: 0}
aggregators: [mean, sparra]
modality_sets: [[pathology], [radiology, pathology]]
baselines:
  models: [coxph, fsvm]
  inner_folds: 2
  grids: {coxph: {alpha: [1.0, 100.0]}, fsvm: {alpha: [0.25, 4.0]}}
report: {km_model: coxph}
"""


def test_unknown_and_missing_keys_are_named(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("out_dir: x\ncohort: {manifest: m.csv}\ntrainig: {}\n")
    with pytest.raises(
        StudyConfigError, match=r"unknown key 'trainig' \(did you mean 'training'\?\)"
    ):
        load_study_config(path)
    path.write_text("out_dir: x\ncohort: {}\n")
    with pytest.raises(StudyConfigError, match="exactly one of 'synthetic' or 'manifest'"):
        load_study_config(path)


def test_tiny_study_runs_end_to_end_and_resumes(tmp_path, capfd):
    """The first run is the command ``radiograph study``: its log (not a terminal) holds no
    progress bar, one line per per-subject stage, and warnings without source lines;
    ``radiograph report`` redraws the same Table 1 from the saved results and config."""
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(TINY))
    config = load_study_config(path)
    assert config.out_dir == tmp_path / "out"
    capfd.readouterr()
    assert main(["study", str(path)]) == 0
    log = capfd.readouterr()
    assert "\r" not in log.out + log.err and "warnings.warn(" not in log.err
    for stage in ("extract-pathology", "extract-radiology", "graphs pathology", "graphs radiology"):
        assert re.search(rf"^{stage}: \d+ done, 0 skipped", log.out, flags=re.M), stage
    saved = config.out_dir / "study.yaml"
    assert load_study_config(saved) == dataclasses.replace(config, source=saved)
    results = pd.read_csv(config.report_dir / "results.csv", float_precision="round_trip")

    report = config.report_dir
    for name in (
        "results.csv",
        "table1.csv",
        "table1.md",
        "table1.tex",
        "stage_seconds.json",
        "fig2_bars_pathology.png",
        "fig3_bands_radiology_pathology.png",
        "fig4_km_radiology_pathology.png",
    ):
        assert (report / name).stat().st_size > 0, name
    groups = results.groupby(["modality", "aggregator", "model"])["fold"].nunique()
    assert len(groups) == 2 * 2 * 2 and (groups == 2).all()
    assert set(results["metric"]) == {"c_index", "c_ipcw", "c_auc", "ibs"}
    ibs = results[results["metric"] == "ibs"].set_index("model")["value"]
    assert ibs.loc["fsvm"].isna().all() and ibs.loc["coxph"].notna().all()
    assert results[results["metric"] == "c_index"]["value"].between(0, 1).all()
    table = (report / "table1.md").read_text()
    assert "SPARRA" in table.upper() and "C-Index" in table
    (report / "table1.md").unlink()
    assert main(["report", str(config.out_dir)]) == 0
    assert (report / "table1.md").read_text() == table

    # every test subject is tested once per model, and the splits file is shared by all
    fold_dirs = sorted(config.models_dir.glob("*/*/fold_*"))
    assert len(fold_dirs) == 2 * 2 * 2
    assert (config.out_dir / "splits.json").exists()
    assert sorted(p.name for p in (report / "look_inside_sparra_fold0").glob("*.png"))
    # the report is redrawn on every run; everything before it must be left alone
    outputs = sorted(
        p for p in config.out_dir.rglob("*") if p.is_file() and report not in p.parents
    )
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    again = run_study(config, progress=False)
    pd.testing.assert_frame_equal(results, again)
    changed = [
        p
        for p in outputs
        if p.stat().st_mtime_ns != stamps[p]
        and not p.name.endswith(".json")
        and p.name != ".radiograph.lock"
    ]
    assert changed == [], f"rerun redid {changed}"


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=1)


def test_warnings_are_summarised_one_line_per_source():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for count in (3, 5, 7):
            _warn(f"{count} features did not converge")
        warnings.warn("overflow encountered in exp", UserWarning)
        warnings.warn("", FutureWarning)
    summary = summarise_warnings(caught, "baselines").splitlines()
    assert summary[0] == "baselines: 5 warning(s) from 3 source(s), most frequent first:"
    assert summary[1].split() == [
        "3",
        "x",
        f"test_study.py:{_warn.__code__.co_firstlineno + 1}",
        "RuntimeWarning:",
        "3",
        "features",
        "did",
        "not",
        "converge",
    ]
    assert summary[2].split()[:2] == ["1", "x"] and summary[2].endswith(
        "UserWarning: overflow encountered in exp"
    )


@pytest.mark.parametrize("name", ["synthetic.yaml", "synthetic_205.yaml", "tcga_rcc.yaml"])
def test_shipped_study_configs_load(name):
    configs = Path(__file__).resolve().parents[1] / "experiments" / "configs"
    config = load_study_config(configs / name)
    assert config.aggregators == ("mean", "abmil", "sparra")
    assert len(config.modality_sets) == 3
