"""Change one input, rerun the study: exactly the changed subject's outputs and what depends
on them are redone, and once the input is back the tables equal the clean run's.

One tiny study (16 subjects, models on radiology and on pathology separately) is run once;
each test works on a copy of it (``copytree`` keeps mtimes, so fingerprints stay valid).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk

from radiograph.cli import main as cli_main
from radiograph.provenance import read_provenance
from radiograph.study import load_study_config, run_study

pytestmark = pytest.mark.slow

STUDY = """
out_dir: out
cohort:
  synthetic: {subjects: 16, seed: 5, slide_size: [1344, 896]}
pathology: {encoder: efficientnet-lite0}
radiology: {features: pyradiomics, units: grid}
graphs: {method: slidegraph}
training: {folds: 2, epochs: 2, batch_size: 4, seed: 0}
aggregators: [mean, abmil]
modality_sets: [[radiology], [pathology]]
baselines:
  models: [coxph]
  inner_folds: 2
  grids: {coxph: {alpha: [1.0, 100.0]}}
report: {km_model: coxph}
workers: 1
"""
MODELS = [
    f"{a}/{m}/fold_{k}"
    for a in ("mean", "abmil")
    for m in ("radiology", "pathology")
    for k in (0, 1)
]
#: Outputs whose rewriting the tests follow (run records and the report are rewritten by
#: every run; the report is always rebuilt).
TRACKED = (
    "features/**/*.h5",
    "thumbnails/**/*.png",
    "graphs/*/*.pt",
    "models/**/summary.json",
    "models/**/baselines.csv",
)


def _stamps(out: Path) -> dict[str, int]:
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for pattern in TRACKED
        for p in out.glob(pattern)
    }


def _rewritten(out: Path, before: dict[str, int]) -> set[str]:
    after = _stamps(out)
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def _run(root: Path, capsys) -> tuple[pd.DataFrame, str]:
    capsys.readouterr()
    results = run_study(load_study_config(root / "study.yaml"), progress=False)
    return results, capsys.readouterr().out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("base")
    (root / "study.yaml").write_text(textwrap.dedent(STUDY))
    results = run_study(load_study_config(root / "study.yaml"), progress=False)
    c_index = results[results["metric"] == "c_index"]["value"]
    assert c_index.notna().all(), "the tables must have values for a change to show in them"
    return root, results


@pytest.fixture
def study(base, tmp_path) -> Path:
    root = tmp_path / "study"
    shutil.copytree(base[0], root)
    return root


def _subjects(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "out" / "cohort" / "manifest.csv", dtype=str, keep_default_na=False)


def _with_both(root: Path) -> list[str]:
    table = _subjects(root)
    return list(table[(table.slide_paths != "") & (table.volume_paths != "")].subject_id)


def _expected(subject: str | None, modality: str, *, features: bool = True) -> set[str]:
    """What a change of ``subject``'s ``modality`` input must redo (None: every subject)."""
    paths = {
        f"models/{m}/{name}"
        for m in MODELS
        if f"/{modality}/" in m
        for name in ("summary.json", "baselines.csv")
    }
    if subject is not None:
        paths.add(f"graphs/{modality}/{subject}.pt")
        if features and modality == "pathology":
            paths |= {
                f"features/pathology/{subject}/{subject}.h5",
                f"thumbnails/{subject}/{subject}.png",
            }
        elif features:
            paths.add(f"features/radiology/{subject}.h5")
    return paths


def test_no_change_rerun_redoes_nothing_but_the_report(study, base, capsys):
    out = study / "out"
    before = _stamps(out)
    report = (out / "report" / "results.csv").stat().st_mtime_ns
    results, printed = _run(study, capsys)
    assert _rewritten(out, before) == set()
    assert "changed since the last run" not in printed
    assert (out / "report" / "results.csv").stat().st_mtime_ns != report
    pd.testing.assert_frame_equal(results, base[1])
    for name in before:
        if not name.endswith("summary.json"):
            assert read_provenance(out / name) is not None, name


def test_replaced_slide_redoes_its_subject_and_the_pathology_models(study, base, capsys):
    out = study / "out"
    x, w = _with_both(study)[:2]
    slide = out / "cohort" / "slides" / f"{x}.tiff"
    original = slide.read_bytes()
    shutil.copyfile(out / "cohort" / "slides" / f"{w}.tiff", slide)  # x gets w's tissue
    before = _stamps(out)
    changed, printed = _run(study, capsys)
    assert _rewritten(out, before) == _expected(x, "pathology")
    assert "extract-pathology: 1 of " in printed and "graphs pathology: 1 of " in printed
    assert "mean on pathology: 2 of 2 folds changed" in printed
    assert "baselines: 4 of 8 folds changed" in printed
    pathology = changed["modality"] == "pathology"
    assert not changed[pathology]["value"].equals(base[1][pathology]["value"])
    pd.testing.assert_frame_equal(changed[~pathology], base[1][~pathology])

    slide.write_bytes(original)  # back to the clean run's input (a new mtime)
    before = _stamps(out)
    fixed, _ = _run(study, capsys)
    assert _rewritten(out, before) == _expected(x, "pathology")
    pd.testing.assert_frame_equal(fixed, base[1])


def test_changed_ct_redoes_its_subject_and_the_radiology_models(study, base, capsys):
    out = study / "out"
    y = _with_both(study)[0]
    ct = out / "cohort" / "ct" / f"{y}_ct.nii.gz"
    original = ct.read_bytes()
    image = sitk.ReadImage(str(ct))
    sitk.WriteImage(image + 40, str(ct))
    before = _stamps(out)
    changed, printed = _run(study, capsys)
    assert _rewritten(out, before) == _expected(y, "radiology")
    assert "extract-radiology: 1 of " in printed
    radiology = changed["modality"] == "radiology"
    assert not changed[radiology]["value"].equals(base[1][radiology]["value"])

    ct.write_bytes(original)
    before = _stamps(out)
    fixed, _ = _run(study, capsys)
    assert _rewritten(out, before) == _expected(y, "radiology")
    pd.testing.assert_frame_equal(fixed, base[1])


def _edit(root: Path, old: str, new: str) -> None:
    path = root / "study.yaml"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))


def test_graph_parameters_rebuild_every_graph_of_their_modality(study, base, capsys):
    out = study / "out"
    graphs = {f"graphs/radiology/{p.name}" for p in (out / "graphs" / "radiology").glob("*.pt")}
    before = _stamps(out)
    _edit(
        study,
        "graphs: {method: slidegraph}",
        "graphs: {method: slidegraph, radiology: {lambda_f: 0.3}}",
    )
    _, printed = _run(study, capsys)
    assert _rewritten(out, before) == _expected(None, "radiology") | graphs
    assert f"graphs radiology: {len(graphs)} of {len(graphs)} subjects changed" in printed
    assert "settings changed (params_in_steps.lambda_f: 0.1 -> 0.3)" in printed

    _edit(
        study,
        "graphs: {method: slidegraph, radiology: {lambda_f: 0.3}}",
        "graphs: {method: slidegraph}",
    )
    fixed, _ = _run(study, capsys)
    pd.testing.assert_frame_equal(fixed, base[1])


def test_changed_target_retrains_every_fold_and_extracts_nothing(study, base, capsys):
    out = study / "out"
    manifest = out / "cohort" / "manifest.csv"
    original = manifest.read_bytes()
    table = _subjects(study)
    z = table.subject_id[0]
    table.loc[0, "time"] = str(float(table.loc[0, "time"]) + 100.0)
    table.to_csv(manifest, index=False)
    before = _stamps(out)
    _, printed = _run(study, capsys)
    assert _rewritten(out, before) == _expected(None, "radiology") | _expected(None, "pathology")
    assert f"targets of {z} changed" in printed

    manifest.write_bytes(original)
    fixed, _ = _run(study, capsys)
    pd.testing.assert_frame_equal(fixed, base[1])


def test_baseline_settings_refit_only_the_baselines(study, base, capsys):
    out = study / "out"
    before = _stamps(out)
    _edit(study, "alpha: [1.0, 100.0]", "alpha: [10.0, 100.0]")
    _, printed = _run(study, capsys)
    assert _rewritten(out, before) == {f"models/{m}/baselines.csv" for m in MODELS}
    assert "baselines: 8 of 8 folds changed" in printed

    _edit(study, "alpha: [10.0, 100.0]", "alpha: [1.0, 100.0]")
    fixed, _ = _run(study, capsys)
    pd.testing.assert_frame_equal(fixed, base[1])


def test_target_mpp_redoes_every_slide_and_unused_options_redo_none(study, capsys):
    out = study / "out"
    manifest = out / "cohort" / "manifest.csv"
    slides = {
        f"features/pathology/{s}/{s}.h5"
        for s in _subjects(study).subject_id
        if (out / "features" / "pathology" / s).is_dir()
    }
    command = [
        "extract-pathology",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--device",
        "cpu",
    ]  # speed options shape nothing
    before = _stamps(out)
    capsys.readouterr()
    assert cli_main(command) == 0
    assert _rewritten(out, before) == set()
    assert cli_main([*command, "--target-mpp", "1.0"]) == 0
    printed = capsys.readouterr().out
    assert f"extract-pathology: {len(slides)} of {len(slides)} slides changed" in printed
    assert "target_mpp: 0.5 -> 1" in printed
    rewritten = _rewritten(out, before)
    assert {p for p in rewritten if p.endswith(".h5")} == slides
    for name in slides:
        assert read_provenance(out / name)["settings_summary"]["target_mpp"] == 1


def test_fixed_failed_slide_is_trained_on_after_the_rerun(study, base, capsys):
    out = study / "out"
    x = _with_both(study)[1]
    slide = out / "cohort" / "slides" / f"{x}.tiff"
    original = slide.read_bytes()
    slide.write_bytes(original[: len(original) // 3])  # truncated copy
    _edit(study, "workers: 1", "workers: 1\nallow_failures: 1")
    broken, printed = _run(study, capsys)
    assert not (out / "features" / "pathology" / x / f"{x}.h5").exists()
    assert not (out / "graphs" / "pathology" / f"{x}.pt").exists()  # no graph of old features
    assert "removed 1 graph(s) whose subject has no feature file any more" in printed
    predictions = pd.read_csv(
        out / "models" / "mean" / "pathology" / "fold_0" / "predictions.csv",
        dtype={"subject_id": str},
    )
    assert x not in set(predictions.subject_id)

    slide.write_bytes(original)  # the slide is fixed
    before = _stamps(out)
    fixed, printed = _run(study, capsys)
    assert _rewritten(out, before) == _expected(x, "pathology")
    assert "mean on pathology: 2 of 2 folds changed" in printed
    pd.testing.assert_frame_equal(fixed, base[1])


#: Report outputs made by the cached statistics and figures (:mod:`radiograph.report.cache`).
REPORT_CACHED = (
    "concordance_pooled.csv",
    "comparisons_pooled.csv",
    "comparisons_cv.csv",
    "risk_groups.csv",
    "fig2_bars_radiology.png",
    "fig3_bands_pathology.pdf",
    "forest_differences_cv.svg",
    "forest_hazard_ratios.png",
)


def test_report_statistics_kept_without_change_and_redone_when_one_fold_predicts_otherwise(
    study, capsys
):
    """The no-change rerun keeps the statistics and figures; negating the test risks of one
    fold's CoxPH (mean, radiology) redoes them (not the forest plot of the per-fold results,
    which did not change), and the pooled C-index of that model equals scikit-survival's
    Harrell C of the changed pooled test risks."""
    from sksurv.metrics import concordance_index_censored

    from radiograph.manifest import load_manifest
    from radiograph.study import long_risks, write_report

    report = study / "out" / "report"
    stamps = {name: (report / name).stat().st_mtime_ns for name in REPORT_CACHED}
    results, printed = _run(study, capsys)
    assert {name: (report / name).stat().st_mtime_ns for name in REPORT_CACHED} == stamps
    assert "statistics and figures kept" in printed
    old = pd.read_csv(report / "concordance_pooled.csv")

    path = study / "out" / "models" / "mean" / "radiology" / "fold_0" / "baseline_risks.csv"
    risks = pd.read_csv(path, dtype={"subject_id": str})
    chosen = (risks["model"] == "coxph") & (risks["split"] == "test")
    risks.loc[chosen, "risk"] = -risks.loc[chosen, "risk"]
    risks.to_csv(path, index=False)
    config = load_study_config(study / "study.yaml")
    manifest = load_manifest(config.manifest_path)
    write_report(config, manifest, results)
    assert "statistics and figures redone (changed: risks)" in capsys.readouterr().out
    kept = {name for name in REPORT_CACHED if (report / name).stat().st_mtime_ns == stamps[name]}
    assert kept == {"forest_differences_cv.svg"}, (
        "every output made from the risks is redone; the CV forest plot shows fold results only"
    )

    pooled = long_risks(config, manifest)
    test = pooled[
        (pooled["split"] == "test")
        & (pooled["model"] == "coxph")
        & (pooled["aggregator"] == "mean")
        & (pooled["modality"] == "radiology")
    ]
    expected = concordance_index_censored(
        test["event"].to_numpy(bool), test["time"].to_numpy(float), test["risk"].to_numpy(float)
    )[0]
    new = pd.read_csv(report / "concordance_pooled.csv")
    row = (
        (new["model"] == "coxph") & (new["aggregator"] == "mean") & (new["modality"] == "radiology")
    )
    assert new.loc[row, "c_index"].item() == pytest.approx(expected, abs=1e-12)
    assert new.loc[row, "c_index"].item() != pytest.approx(old.loc[row, "c_index"].item())
