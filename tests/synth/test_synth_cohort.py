"""The synthetic cohort: a valid manifest, a hazard that really drives the times, ground truth
that matches the written images, missing modalities, repeated patients, reproducibility."""

from __future__ import annotations

import argparse
import math

import numpy as np
import openslide
import pandas as pd
import pytest
import SimpleITK as sitk
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from PIL import Image
from scipy.stats import spearmanr

from radiograph.io.atomic import partial_files, read_json
from radiograph.manifest import load_manifest
from radiograph.synth import SynthParams, commands, make_cohort, plan_cohort, true_log_hazard
from radiograph.synth.cohort import oracle_c_index


def test_manifest_is_valid_and_complete(small_cohort):
    manifest = load_manifest(small_cohort / "manifest.csv")
    assert manifest.time_unit == "days" and len(manifest) == 6
    truth = pd.read_csv(small_cohort / "ground_truth.csv").set_index("subject_id")
    for subject in manifest.subjects:
        gt = truth.loc[subject.subject_id]
        assert subject.has_pathology == bool(gt["has_slide"])
        assert subject.has_radiology == bool(gt["has_ct"])
        assert subject.has_pathology or subject.has_radiology
        assert (subject.mask_path is not None) == subject.has_radiology
        assert all(p.is_file() for p in subject.slide_paths + subject.volume_paths)
        assert subject.centre in {"A", "B", "C"} and subject.label in {"0", "1"}
        assert set(subject.covariates) == {"age", "stage"}
    # 10% of 6 subjects: one lacks a slide, another one lacks a CT
    assert sum(not s.has_pathology for s in manifest.subjects) == 1
    assert sum(not s.has_radiology for s in manifest.subjects) == 1
    assert partial_files(small_cohort) == []


def test_repeated_patients_share_outcome_and_label():
    table = plan_cohort(60, 3)
    assert table["patient_id"].nunique() == 55  # 5 patients contribute two subjects
    for _, rows in table.groupby("patient_id"):
        for column in ("time", "event", "label", "centre", "true_log_hazard", "age", "stage"):
            assert rows[column].nunique() == 1
    per_patient = table.drop_duplicates("patient_id")
    median = np.median(per_patient["true_log_hazard"])
    np.testing.assert_array_equal(table["label"], (table["true_log_hazard"] > median).astype(int))
    assert not (~table["has_slide"] & ~table["has_ct"]).any()
    assert (~table["has_slide"]).sum() == 6 and (~table["has_ct"]).sum() == 6


def test_true_log_hazard_formula_by_hand():
    params = SynthParams()
    p, r = np.array([0.0, 0.02, 0.04]), np.array([0.15, 0.075, 0.0])
    sd_p, sd_r = 0.04 / math.sqrt(12), 0.15 / math.sqrt(12)
    expected = [1.2 * (pi - 0.02) / sd_p + 1.2 * (ri - 0.075) / sd_r for pi, ri in zip(p, r)]
    np.testing.assert_allclose(true_log_hazard(p, r, params), expected, rtol=1e-12)
    assert expected[1] == pytest.approx(0.0)


def test_times_follow_the_known_hazard():
    """A Cox model (lifelines) fitted to a large planned cohort recovers the planted log hazard
    ratios per standard deviation (1.2 each) and zero effect of the nuisance covariates and
    nuisance regions; the censored fraction is the requested 35%."""
    params = SynthParams()
    table = plan_cohort(4000, 11, params).drop_duplicates("patient_id")
    data = pd.DataFrame(
        {
            "z_path": (table["path_fraction"] - 0.02) / (0.04 / math.sqrt(12)),
            "z_rad": (table["rad_fraction"] - 0.075) / (0.15 / math.sqrt(12)),
            "age": (table["age"] - 62) / 11,
            "stage": table["stage"],
            "time": table["time"],
            "event": table["event"],
        }
    )
    fit = CoxPHFitter().fit(data, "time", "event")
    coef, se = fit.params_, fit.standard_errors_
    for name in ("z_path", "z_rad"):
        assert abs(coef[name] - 1.2) < 4 * se[name]
    for name in ("age", "stage"):
        assert abs(coef[name]) < 4 * se[name]
    assert abs(1 - table["event"].mean() - params.censored_fraction) < 0.03
    subjects = plan_cohort(4000, 11, params)
    assert abs(spearmanr(subjects["true_log_hazard"], subjects["path_nuisance"])[0]) < 0.05
    assert abs(spearmanr(subjects["true_log_hazard"], subjects["rad_nuisance"])[0]) < 0.05
    assert spearmanr(subjects["true_log_hazard"], subjects["path_fraction"])[0] > 0.6
    assert spearmanr(subjects["true_log_hazard"], subjects["rad_fraction"])[0] > 0.6


def test_oracle_c_index_of_the_default_cohort():
    """Harrell's C of the true risk on the default 60-subject cohort (seed 0) is >= 0.75, and
    our value agrees with lifelines' independent implementation."""
    table = plan_cohort(60, 0)
    ours = oracle_c_index(table)
    reference = concordance_index(table["time"], -table["true_log_hazard"], table["event"])
    assert ours == pytest.approx(reference, abs=1e-9)
    assert ours >= 0.75


def test_risk_recomputed_from_the_written_files(small_cohort):
    """Planted fractions measured on the written ground-truth maps reproduce each subject's
    true log hazard (the images carry the signal that sets the risk)."""
    truth = pd.read_csv(small_cohort / "ground_truth.csv", keep_default_na=False)
    summary = read_json(small_cohort / "ground_truth.json")
    assert summary["cohort"]["oracle_c_index"] == pytest.approx(oracle_c_index(plan_cohort(6, 0)))
    checked = 0
    for _, gt in truth.iterrows():
        if not (gt["has_slide"] and gt["has_ct"]):
            continue
        planted = np.asarray(Image.open(small_cohort / gt["slide_planted_path"])) == 255
        tissue = np.asarray(Image.open(small_cohort / gt["slide_tissue_path"])) == 255
        p = planted.sum() / tissue.sum()
        ct_planted = _voxels(small_cohort / gt["ct_planted_path"])
        mask = _voxels(small_cohort / "ct" / f"{gt['subject_id']}_mask.nii.gz")
        r = ct_planted.sum() / mask.sum()
        risk = true_log_hazard(p, r, SynthParams())
        assert risk == pytest.approx(gt["true_log_hazard"], abs=0.02)
        checked += 1
    assert checked >= 3


def test_same_seed_same_files_other_seed_other_files(tmp_path, small_settings):
    a = make_cohort(tmp_path / "a", 3, 7, **small_settings).parent
    b = make_cohort(tmp_path / "b", 3, 7, **small_settings).parent
    c = make_cohort(tmp_path / "c", 3, 8, **small_settings).parent
    for name in ("manifest.csv", "ground_truth.csv"):
        assert (a / name).read_text() == (b / name).read_text()
        assert (a / name).read_text() != (c / name).read_text()
    assert read_json(a / "ground_truth.json") == read_json(b / "ground_truth.json")
    manifest = pd.read_csv(a / "manifest.csv", keep_default_na=False)
    slide = next(p for p in manifest["slide_paths"] if p)
    volume = next(p for p in manifest["volume_paths"] if p)
    pixels = {k: _slide_pixels(d / slide) for k, d in (("a", a), ("b", b), ("c", c))}
    np.testing.assert_array_equal(pixels["a"], pixels["b"])
    assert not np.array_equal(pixels["a"], pixels["c"])
    voxels = {k: _voxels(d / volume) for k, d in (("a", a), ("b", b), ("c", c))}
    np.testing.assert_array_equal(voxels["a"], voxels["b"])
    assert not np.array_equal(voxels["a"], voxels["c"])


def test_rerun_resumes_and_other_settings_are_refused(tmp_path, small_settings):
    out = tmp_path / "cohort"
    make_cohort(out, 2, 5, **small_settings)
    slide = next((out / "slides").glob("*.tiff"))
    before = slide.stat().st_mtime_ns
    make_cohort(out, 2, 5, **small_settings)
    assert slide.stat().st_mtime_ns == before
    assert {r["status"] for r in read_json(out / "synth_record.json")["results"]} == {"skipped"}
    with pytest.raises(FileExistsError, match="other settings"):
        make_cohort(out, 2, 6, **small_settings)
    make_cohort(out, 2, 6, **small_settings, overwrite=True)
    assert read_json(out / "ground_truth.json")["settings"]["seed"] == 6


def test_synth_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "synth",
            str(tmp_path / "out"),
            "--subjects",
            "2",
            "--seed",
            "1",
            "--slide-mpp",
            "0.25",
            "--slide-size",
            "1024",
            "768",
            "--workers",
            "1",
        ]
    )
    assert args.func(args) == 0
    assert "oracle C-index" in capsys.readouterr().out
    manifest = load_manifest(tmp_path / "out" / "manifest.csv")
    path = next(p for s in manifest.subjects for p in s.slide_paths)
    with openslide.OpenSlide(str(path)) as osr:
        assert osr.properties["openslide.objective-power"] == "40"
        assert osr.dimensions == (1024, 768)
    args = parser.parse_args(["synth", str(tmp_path / "out"), "--subjects", "3", "--workers", "1"])
    assert args.func(args) == 1  # other settings in the same folder


def _slide_pixels(path) -> np.ndarray:
    with openslide.OpenSlide(str(path)) as osr:
        return np.asarray(osr.read_region((0, 0), 0, osr.dimensions))


def _voxels(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_bad_sizes_are_refused_before_any_file_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"slide size \(100, 2000\) px"):
        make_cohort(tmp_path / "a", 4, 0, slide_size=(100, 2000), workers=1)
    with pytest.raises(ValueError, match="CT field of view"):
        make_cohort(tmp_path / "b", 4, 0, ct_size=(32, 32, 8), workers=1)
    with pytest.raises(ValueError, match="n_subjects"):
        make_cohort(tmp_path / "c", 1, 0, workers=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
