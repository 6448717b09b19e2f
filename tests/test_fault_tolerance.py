"""Fault tolerance across the pipeline (issue 8).

* A bad-input corpus: each case breaks one subject in one way at one stage. The stage must
  report a clear message naming the subject and the file or field, finish every other subject,
  exit non-zero, and leave no partial file in its output folder. Training cases (an unreadable
  graph, a graph of another feature size, a missing label, a fold without events, an
  all-censored cohort) warn or fail naming the file, subject, fold or column.
* A cohort extraction killed with SIGKILL midway and rerun finishes without redoing finished
  subjects, and its outputs equal those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radiograph.cli import main
from radiograph.io.atomic import finished_files, partial_files
from radiograph.io.features import FeatureSet, read_features, write_features
from radiograph.manifest import load_manifest
from radiograph.synth import make_cohort

HEADER = [
    "subject_id",
    "patient_id",
    "centre",
    "time",
    "time_unit",
    "event",
    "label",
    "slide_paths",
    "volume_paths",
    "mask_path",
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small synthetic cohort; the cases below use its three subjects with both modalities."""
    root = tmp_path_factory.mktemp("cohort")
    manifest = load_manifest(
        make_cohort(root, 6, seed=3, slide_size=(1344, 896), workers=1, progress=False)
    )
    both = [s for s in manifest.subjects if s.has_pathology and s.has_radiology][:3]
    assert len(both) == 3
    return both


def write_manifest(folder: Path, subjects, **replace) -> Path:
    """A manifest of ``subjects`` with absolute paths; ``replace={sid: {column: value}}``."""
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for s in subjects:
            row = {
                "subject_id": s.subject_id,
                "patient_id": s.patient_id,
                "centre": s.centre,
                "time": s.time,
                "time_unit": "days",
                "event": s.event,
                "label": s.label or "",
                "slide_paths": ";".join(map(str, s.slide_paths)),
                "volume_paths": ";".join(map(str, s.volume_paths)),
                "mask_path": str(s.mask_path),
            }
            row.update(replace.get(s.subject_id, {}))
            writer.writerow([row[c] for c in HEADER])
    return path


def run_record(out: Path, stage: str) -> dict:
    return json.loads((out / "runs" / f"{stage}.json").read_text())


def assert_no_partial_files(folder: Path) -> None:
    assert partial_files(folder) == [], f"partial files left: {partial_files(folder)}"


# ----------------------------------------------------------------------------- manifest
MANIFEST_CASES = {
    "duplicate subject id": ({"subject_id": "{first}"}, ["subject_id", "duplicate"]),
    "negative time": ({"time": "-5"}, ["[time]", "> 0"]),
    "event not 0/1": ({"event": "2"}, ["[event]", "0 or 1"]),
    "slide file missing": (
        {"slide_paths": "/nonexistent/slide.svs"},
        ["[slide_paths]", "/nonexistent/slide.svs"],
    ),
    "patient labels disagree": (
        {"patient_id": "{first_patient}", "label": "other"},
        ["[label]", "different labels"],
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_problem_names_line_subject_and_column(cohort, tmp_path, capsys, case):
    change, words = MANIFEST_CASES[case]
    first, broken = cohort[0], cohort[1]
    change = {
        k: v.format(first=first.subject_id, first_patient=first.patient_id)
        for k, v in change.items()
    }
    path = write_manifest(tmp_path, cohort, **{broken.subject_id: change})
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    problem = [line for line in out.splitlines() if all(w in line for w in words)]
    assert len(problem) == 1, out
    name = first.subject_id if case == "duplicate subject id" else broken.subject_id
    assert "line 3" in problem[0] and name in problem[0], problem[0]


# ----------------------------------------------------------------------------- slides
def corrupt_copy(src: Path, dest: Path) -> Path:
    dest.write_bytes(b"II*\x00" + os.urandom(4096))
    return dest


def truncated_copy(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 3])
    return dest


def no_resolution_copy(src: Path, dest: Path) -> Path:
    import tifffile

    with tifffile.TiffFile(src) as tif:
        image = tif.pages[0].asarray()
    tifffile.imwrite(dest, image, tile=(256, 256), photometric="rgb")
    return dest


def blank_copy(src: Path, dest: Path) -> Path:
    from radiograph.pathology.slide import write_pyramidal_tiff

    write_pyramidal_tiff(dest, np.full((896, 1344, 3), 245, np.uint8), mpp=0.5, downsamples=(1, 4))
    return dest


SLIDE_CASES = {
    "corrupt slide": (corrupt_copy, ["bad.tiff"]),
    "truncated slide": (truncated_copy, ["bad.tiff"]),
    "no resolution metadata": (no_resolution_copy, ["bad.tiff", "--mpp"]),
    "no tissue": (blank_copy, ["bad.tiff", "tissue"]),
}


@pytest.mark.parametrize("case", sorted(SLIDE_CASES))
def test_bad_slide_fails_alone(cohort, tmp_path, capsys, case):
    make, words = SLIDE_CASES[case]
    broken = cohort[1]
    bad = make(broken.slide_paths[0], tmp_path / "bad.tiff")
    manifest = write_manifest(tmp_path, cohort, **{broken.subject_id: {"slide_paths": str(bad)}})
    out = tmp_path / "run"
    status = main(
        [
            "extract-pathology",
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--num-workers",
            "0",
            "--batch-size",
            "16",
        ]
    )
    assert status == 1
    record = run_record(out, "extract-pathology")
    failed = {r["key"]: r["error"] for r in record["results"] if r["status"] == "failed"}
    assert list(failed) == [f"{broken.subject_id}/bad"]
    message = failed[f"{broken.subject_id}/bad"]
    assert all(w.lower() in message.lower() for w in words), message
    assert "\n" not in message
    assert f"FAILED {broken.subject_id}/bad" in capsys.readouterr().err
    for s in (cohort[0], cohort[2]):
        assert (
            read_features(
                out / "features" / "pathology" / s.subject_id / f"{s.slide_paths[0].stem}.h5"
            ).num_patches
            > 0
        )
    assert_no_partial_files(out)


# ----------------------------------------------------------------------------- volumes
def write_image(array: np.ndarray, like: sitk.Image, path: Path, spacing=None) -> Path:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    if spacing is not None:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def mask_other_spacing(subject, folder: Path) -> dict:
    mask = sitk.ReadImage(str(subject.mask_path))
    spacing = tuple(s * 1.5 for s in mask.GetSpacing())
    path = write_image(sitk.GetArrayFromImage(mask), mask, folder / "mask.nii.gz", spacing)
    return {"mask_path": str(path)}


def mask_empty(subject, folder: Path) -> dict:
    mask = sitk.ReadImage(str(subject.mask_path))
    array = np.zeros_like(sitk.GetArrayFromImage(mask))
    return {"mask_path": str(write_image(array, mask, folder / "mask.nii.gz"))}


def mask_multilabel(subject, folder: Path) -> dict:
    mask = sitk.ReadImage(str(subject.mask_path))
    array = sitk.GetArrayFromImage(mask).astype(np.uint8)
    array[: array.shape[0] // 2] *= 2
    return {"mask_path": str(write_image(array, mask, folder / "mask.nii.gz"))}


def volume_with_nan(subject, folder: Path) -> dict:
    image = sitk.ReadImage(str(subject.volume_paths[0]))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[array.shape[0] // 2, 10, 10] = np.nan
    return {"volume_paths": str(write_image(array, image, folder / "ct.nrrd"))}


VOLUME_CASES = {
    "mask geometry mismatch": (mask_other_spacing, ["mask.nii.gz", "spacing"]),
    "empty mask": (mask_empty, ["mask.nii.gz", "empty"]),
    "mask labels other than 0/1": (mask_multilabel, ["mask.nii.gz", "--mask-label"]),
    "NaN voxels": (volume_with_nan, ["ct.nrrd", "nan"]),
}


@pytest.mark.parametrize("case", sorted(VOLUME_CASES))
def test_bad_volume_fails_alone(cohort, tmp_path, capsys, case):
    make, words = VOLUME_CASES[case]
    broken = cohort[1]
    manifest = write_manifest(tmp_path, cohort, **{broken.subject_id: make(broken, tmp_path)})
    out = tmp_path / "run"
    status = main(
        [
            "extract-radiology",
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--features",
            "vit3d-tiny",
            "--random-weights",
        ]
    )
    assert status == 1
    record = run_record(out, "extract-radiology")
    failed = {r["key"]: r["error"] for r in record["results"] if r["status"] == "failed"}
    assert list(failed) == [broken.subject_id]
    message = failed[broken.subject_id]
    assert broken.subject_id in message and all(w.lower() in message.lower() for w in words), (
        message
    )
    for s in (cohort[0], cohort[2]):
        assert read_features(out / "features" / "radiology" / f"{s.subject_id}.h5").num_patches > 0
    assert_no_partial_files(out)


# ----------------------------------------------------------------------------- features
def test_nan_features_fail_one_graph_and_others_are_built(tmp_path, capsys):
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2) * 224.0
    for sid in ("A", "B", "C"):
        feats = rng.normal(size=(len(grid), 8)).astype(np.float32)
        if sid == "B":
            feats[[3, 7], 2] = np.nan
        write_features(
            tmp_path / "features" / "pathology" / sid / "slide.h5",
            FeatureSet(feats, grid, {"subject_id": sid, "patch_size": 224}),
        )
    out = tmp_path / "graphs"
    status = main(
        [
            "build-graphs",
            "--features",
            str(tmp_path / "features"),
            "--out",
            str(out),
            "--modality",
            "pathology",
            "--workers",
            "1",
        ]
    )
    assert status == 1
    record = json.loads((out / "build-graphs.json").read_text())
    failed = {r["key"]: r["error"] for r in record["results"] if r["status"] == "failed"}
    assert list(failed) == ["pathology/B"]
    assert "B" in failed["pathology/B"] and "2" in failed["pathology/B"]
    assert sorted(p.stem for p in (out / "pathology").glob("*.pt")) == ["A", "C"]
    assert_no_partial_files(out)


# ----------------------------------------------------------------------------- kill / resume
def test_sigkill_midway_then_rerun_equals_uninterrupted_run(cohort, tmp_path):
    manifest = write_manifest(tmp_path, cohort)
    command = [
        sys.executable,
        "-m",
        "radiograph.cli",
        "extract-radiology",
        "--manifest",
        str(manifest),
        "--features",
        "vit3d-tiny",
        "--random-weights",
    ]
    reference = tmp_path / "reference"
    subprocess.run([*command, "--out", str(reference)], check=True, capture_output=True)

    out = tmp_path / "killed"
    folder = out / "features" / "radiology"
    # a job killed by its scheduler: SIGKILL to the whole process group, pool workers included
    proc = subprocess.Popen(
        [*command, "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while len(finished_files(folder, "*.h5")) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    finished = finished_files(folder, "*.h5")
    assert 1 <= len(finished) < 3, "the kill must land midway"
    for path in finished:  # whatever exists at the destination is complete
        read_features(path)
    before = {p.name: p.stat().st_mtime_ns for p in finished}

    rerun = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    record = run_record(out, "extract-radiology")
    skipped = sorted(r["key"] for r in record["results"] if r["status"] == "skipped")
    assert skipped == sorted(p.stem for p in finished)
    for name, mtime in before.items():
        assert (folder / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    for s in cohort:
        got = read_features(folder / f"{s.subject_id}.h5")
        want = read_features(reference / "features" / "radiology" / f"{s.subject_id}.h5")
        np.testing.assert_array_equal(got.features, want.features)
        np.testing.assert_array_equal(got.coords, want.coords)
    assert_no_partial_files(out)


# ------------------------------------------------------------------------ graphs, labels, folds
@pytest.fixture()
def planted(tmp_path):
    """20 subjects with pathology graphs on disk, and a training config factory."""
    from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort
    from radiograph.train.config import TrainConfig

    cohort = make_planted_cohort(PlantedParams(n_subjects=20, n_nodes=12, knn=4), seed=5)
    graphs_dir, manifest = cohort.write(tmp_path / "cohort")

    def config(**overrides):
        settings = dict(
            graphs_dir=graphs_dir,
            manifest=manifest,
            out_dir=tmp_path / "train",
            modalities=("pathology",),
            aggregator="mean",
            epochs=1,
            batch_size=8,
            folds=4,
            seed=0,
        )
        settings.update(overrides)
        return TrainConfig(**settings)

    return graphs_dir, manifest, config


def _edit_manifest(manifest: Path, edit) -> None:
    import pandas as pd

    table = pd.read_csv(manifest, dtype=str)
    edit(table)
    table.to_csv(manifest, index=False)


def test_unreadable_graph_file_drops_its_subject_and_the_rest_trains(planted):
    from radiograph.train.trainer import run_cross_validation

    graphs_dir, _, config = planted
    bad = sorted((graphs_dir / "pathology").glob("*.pt"))[3]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.warns(UserWarning) as caught:
        results = run_cross_validation(config(), progress=False)
    messages = " | ".join(str(w.message) for w in caught)
    assert f"{bad}: not a readable graph file" in messages
    assert f"subjects dropped (no graph for pathology): {bad.stem}" in messages
    assert len(results) == 4 and sum(r.n_test for r in results) == 19
    assert_no_partial_files(config().out_dir)


def test_graph_of_another_feature_size_is_named(planted):
    import torch

    from radiograph.io.graphs import load_graph, save_graph
    from radiograph.train.trainer import run_cross_validation

    graphs_dir, _, config = planted
    bad = sorted((graphs_dir / "pathology").glob("*.pt"))[5]
    graph = load_graph(bad)
    graph.x = torch.cat([graph.x, graph.x], dim=1)
    save_graph(bad, graph)
    with pytest.raises(ValueError, match=rf"{bad.name}: field 'x' has \d+ features but .* has"):
        run_cross_validation(config(), progress=False)


def test_subject_without_label_is_dropped_from_classification(planted):
    from radiograph.train.trainer import run_cross_validation

    _, manifest, config = planted

    def labels(table):
        table["label"] = np.where(np.arange(len(table)) % 2 == 0, "low", "high")
        table.loc[4, "label"] = ""

    _edit_manifest(manifest, labels)
    unlabelled = load_manifest(manifest, check_files=False).subjects[4].subject_id
    with pytest.warns(UserWarning, match=rf"1 of 20 subjects dropped .*no label\): {unlabelled}"):
        results = run_cross_validation(config(task="classification"), progress=False)
    assert sum(r.n_test for r in results) == 19
    assert all(0.0 <= r.metrics["accuracy_test"] <= 1.0 for r in results)


def test_fold_without_events_is_named_and_gives_nan(planted):
    from radiograph.train.trainer import run_cross_validation

    _, manifest, config = planted

    def two_events(table):
        table["event"] = "0"
        table.loc[[0, 1], "event"] = "1"

    _edit_manifest(manifest, two_events)
    with pytest.warns(UserWarning, match=r"fold \d: no event among its \d+ test subjects"):
        results = run_cross_validation(config(), progress=False)
    events = {s.subject_id: s.event for s in load_manifest(manifest, check_files=False).subjects}
    folds = json.loads(config().splits_path.read_text())["folds"]
    without = [k for k, fold in enumerate(folds) if not any(events[s] for s in fold["test"])]
    assert len(without) == 2 and len(results) == 4
    for k in without:
        assert np.isnan(results[k].metrics["c_index_test"])
    assert any(np.isfinite(r.metrics["c_index_test"]) for r in results)


def test_all_censored_cohort_is_refused_naming_the_column(planted):
    from radiograph.train.trainer import run_cross_validation

    _, manifest, config = planted
    _edit_manifest(manifest, lambda table: table.__setitem__("event", "0"))
    with pytest.raises(ValueError, match=r"manifest.csv: column 'event' is 0 for all 20 subjects"):
        run_cross_validation(config(), progress=False)
    assert not (config().out_dir / "mean").exists()
