"""The habitat-fusion study end to end on the synthetic cohort: every availability pattern
predicted, the intersection count reported, bad input named before
any fitting, the config checked key by key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from radiograph.fusion import report as fusion_report
from radiograph.fusion import study
from radiograph.fusion.config import load_fusion_config
from radiograph.runner import ProcessPoolBackend
from radiograph.stats import auc_ci, delong_test
from radiograph.study_config import ConfigError

from .conftest import small_config


@pytest.fixture(scope="module")
def finished(fusion_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("fusion_study")
    config = small_config(fusion_cohort, out)
    results = study.run_fusion_study(config)
    return config, results, study.read_cohort(config, load=False).table


def test_every_availability_pattern_gets_an_mha_prediction(finished):
    """Clinical-only, C+H, C+P and C+H+P subjects all occur and all get an MHA_CHP
    probability; ensembles predict only where their modalities are present."""
    _, results, table = finished
    predictions = results[study.MAIN_DESIGN].predictions
    mha = predictions[predictions["model"] == study.MHA_MODEL]
    pattern = table[["has_habitat", "has_pathology"]].apply(tuple, axis=1)
    assert set(pattern) == {(False, False), (True, False), (False, True), (True, True)}
    split = pd.read_csv(Path(finished[0].out_dir) / "designs" / "split" / "split.csv")
    assert set(mha["subject_id"]) == set(split["subject_id"])
    assert np.isfinite(mha["prob"]).all()
    chp = predictions[predictions["model"] == "Ensemble_CHP"]["subject_id"]
    assert table.loc[chp, ["has_habitat", "has_pathology"]].all(axis=None)


def test_intersection_excludes_and_counts_subjects_missing_a_modality(finished):
    config, _, table = finished
    inter = pd.read_csv(config.out_dir / "intersection.csv")
    split = pd.read_csv(config.out_dir / "designs" / "split" / "split.csv")
    external = split[split["cohort"] == "external"]["subject_id"]
    complete = table.loc[external, ["has_habitat", "has_pathology"]].all(axis=1)
    row = inter[inter["cohort"] == "external"].iloc[0]
    assert row["n"] == complete.sum() and row["excluded"] == (~complete).sum() > 0
    report = (config.out_dir / "report.md").read_text()
    assert f"external: n = {complete.sum()}, {(~complete).sum()} subjects excluded" in report
    for name in (
        "roc",
        "delong_external",
        "idi_external",
        "calibration_external",
        "decision_external",
    ):
        for suffix in (".png", ".pdf", ".svg"):
            assert (config.out_dir / f"{name}{suffix}").is_file()


def test_fusion_at_least_as_good_as_the_best_unimodal_model_on_external(finished):
    """Seeds/000's claim, judged with DeLong on the external centres' modality intersection
    (every model scored on the same subjects): neither fusion (MHA_CHP, Ensemble_CHP) is
    significantly worse than the best unimodal model (paired DeLong, two-sided 5%).

    Measured: this config (300 patients, external intersection n = 50): MHA_CHP 0.708 and
    Ensemble_CHP 0.623 against the best unimodal (Pathology) 0.651, DeLong p 0.48 and 0.85;
    cohort seed 1 (n = 53): MHA_CHP 0.537 and Ensemble_CHP 0.445 against Habitat 0.640, p 0.12
    and 0.07 (held, narrowly for the ensemble). The shipped 400-patient
    study (``experiments/configs/habitat_fusion.yaml``, n = 74): MHA_CHP 0.627 and Ensemble_CHP
    0.666 against Clinic 0.619. At these sizes the test has little power to show fusion
    *better* (the paper's claim on 998 patients), and is not asserted."""
    config, results, table = finished
    wide, y, _ = fusion_report.wide_scores(results["split"].predictions, table, "external")
    best = max(("Clinic", "Habitat", "Pathology"), key=lambda m: auc_ci(y, wide[m]).estimate)
    for fusion in ("MHA_CHP", "Ensemble_CHP"):
        test = delong_test(y, wide[fusion], wide[best])
        assert test.difference >= 0 or test.p_value >= 0.05, (fusion, best, test)
    assert len(y) == 50 and y.nunique() == 2


def test_resume_reuses_a_finished_design(finished, monkeypatch):
    config, results, _ = finished

    def refuse(*args, **kwargs):
        raise AssertionError("a finished design was recomputed")

    monkeypatch.setattr(study, "run_design", refuse)
    again = study.run_fusion_study(config)
    pd.testing.assert_frame_equal(
        again["split"].thresholds.reset_index(drop=True),
        pd.read_csv(
            config.out_dir / "designs" / "split" / "thresholds.csv",
            keep_default_na=False,
            na_values=[""],
        ),
    )


def test_designs_in_worker_processes_equal_the_in_process_run(finished, tmp_path, capsys):
    """Designs fitted by two spawned worker processes (``radiograph study --workers 2``): all
    five finish, each stage printed one line, and the main design's predictions and selected
    features equal the in-process run's (same seeds: nothing depends on where it ran)."""
    config, results, _ = finished
    parallel = dataclasses.replace(config, out_dir=tmp_path / "out", leave_one_centre_out=True)
    options = SimpleNamespace(backend=ProcessPoolBackend(2), progress=False)
    again = study.run_fusion_study(parallel, options)
    assert set(again) == {"split", "loco_A", "loco_B", "loco_C", "loco_D"}
    for table in ("predictions", "selected", "thresholds"):
        pd.testing.assert_frame_equal(
            getattr(again["split"], table), getattr(results["split"], table)
        )
    assert "5 design(s) to fit" in capsys.readouterr().out
    for name in again:
        assert (tmp_path / "out" / "designs" / name / "done.json").is_file()


def _broken(fusion_cohort: Path, tmp_path: Path, edit) -> Path:
    """A copy of the cohort table (files shared) with ``edit`` applied."""
    table = pd.read_csv(fusion_cohort, dtype=str, keep_default_na=False)
    edit(table)
    root = tmp_path / "cohort"
    root.mkdir()
    for sub in ("mri", "patches"):
        (root / sub).symlink_to(fusion_cohort.parent / sub)
    table.to_csv(root / "cohort.csv", index=False)
    return root / "cohort.csv"


def _fails_before_work(config, monkeypatch) -> str:
    def refuse(*args, **kwargs):
        raise AssertionError("fitting started before the input was checked")

    monkeypatch.setattr(study, "run_design", refuse)
    monkeypatch.setattr(study.HabitatModel, "fit", refuse)
    with pytest.raises(ValueError) as err:
        study.run_fusion_study(config)
    return str(err.value)


def test_unlisted_clinical_category_named(fusion_cohort, tmp_path, monkeypatch):
    def edit(t):
        t.loc[3, "parpi"] = "maybe"

    path = _broken(fusion_cohort, tmp_path, edit)
    message = _fails_before_work(small_config(path, tmp_path / "out"), monkeypatch)
    assert str(path) in message and "subject P0003" in message and "'parpi'" in message


def test_every_kind_of_problem_named_together(fusion_cohort, tmp_path, monkeypatch):
    """A bad label, an unlisted category, a missing sequence and a missing patch file: one
    error lists all four (a user fixes them in one pass), before any fitting."""
    table = pd.read_csv(fusion_cohort, dtype=str, keep_default_na=False)
    mri = table.loc[table["ADC"] != "", "subject_id"].iloc[1]
    slide = table.loc[table["patches"] != "", "subject_id"].iloc[2]

    def edit(t):
        t.loc[3, "parpi"] = "maybe"
        t.loc[4, "label"] = "2"
        t.loc[t["subject_id"] == mri, "ADC"] = ""
        t.loc[t["subject_id"] == slide, "patches"] = "patches/none.npy"

    path = _broken(fusion_cohort, tmp_path, edit)
    message = _fails_before_work(small_config(path, tmp_path / "out"), monkeypatch)
    for text in (
        "'parpi'",
        "column 'label': value '2'",
        f"subject {mri}: sequence 'ADC' is missing",
        f"subject {slide}, column 'patches'",
    ):
        assert text in message, (text, message)


def test_missing_sequence_named(fusion_cohort, tmp_path, monkeypatch):
    table = pd.read_csv(fusion_cohort, dtype=str, keep_default_na=False)
    sid = table.loc[table["ADC"] != "", "subject_id"].iloc[0]

    def edit(t):
        t.loc[t["subject_id"] == sid, "ADC"] = ""

    path = _broken(fusion_cohort, tmp_path, edit)
    message = _fails_before_work(small_config(path, tmp_path / "out"), monkeypatch)
    assert str(path) in message and f"subject {sid}: sequence 'ADC' is missing" in message


def test_design_centre_absent_named(fusion_cohort, tmp_path, monkeypatch):
    from radiograph.fusion.designs import CentreDesign

    config = small_config(
        fusion_cohort, tmp_path / "out", design=CentreDesign(("A",), 0.3, ("B", "E"))
    )
    message = _fails_before_work(config, monkeypatch)
    assert "['E']" in message and str(fusion_cohort) in message


def test_config_problems_name_their_keys(tmp_path):
    source = Path(__file__).parents[2] / "experiments" / "configs" / "habitat_fusion.yaml"
    text = (
        source.read_text()
        .replace("outer_folds: 5", "outer_fold: 5")
        .replace("n_init: 4", "n_init: four")
    )
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_fusion_config(path)
    message = str(err.value)
    assert "key 'outer_fold': unknown key (did you mean 'outer_folds'?)" in message
    assert "key 'habitat.n_init': must be an integer" in message
    config = load_fusion_config(source)
    assert config.cohort == (source.parent / "../../runs/habitat_fusion_synth/cohort.csv").resolve()
    assert config.classifier_params["rf"] == {"n_estimators": 100}
    for params, expected in (
        ("  rf: {n_trees: 100}", "classifier_params.rf: Invalid parameter 'n_trees'"),
        ("  svn: {C: 1}", "classifier_params: 'svn' is not among classifiers"),
    ):
        path.write_text(source.read_text().replace("  rf: {n_estimators: 100}", params))
        with pytest.raises(ConfigError, match=expected):
            load_fusion_config(path)
