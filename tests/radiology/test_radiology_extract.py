"""`radiograph extract-radiology`: h5 layout, coordinates in mm, resume, failure report."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest
from radiology_synth import ball, planted_habitats, write_image, write_manifest

from radiograph.io.features import read_features
from radiograph.radiology import commands
from radiograph.radiology.habitats import HabitatModel

pytestmark = pytest.mark.filterwarnings("ignore::radiograph.encoders.base.RandomWeightsWarning")

GEOMETRY = dict(spacing=(1.0, 1.0, 1.0), origin=(-50.0, 20.0, 300.0))


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["extract-radiology", *argv])
    return args.func(args)


def write_cohort(folder, modality: str):
    """Four subjects (S3's volume has a NaN voxel, S4's tumour is tiny) and a pathology-only
    row. CT: one channel in HU; MR: two channels (e.g. T2 and ADC)."""
    data = folder / "data"
    data.mkdir()
    channels = 1 if modality == "CT" else 2
    rows = []
    for i, sid in enumerate(["S1", "S2", "S3", "S4"]):
        image, mask, _ = planted_habitats((28, 30, 32), k=3, channels=channels, seed=i)
        if sid == "S4":
            mask = ball((28, 30, 32), (14, 15, 16), 1.5)
        paths = []
        for c in range(channels):
            values = (image[c] * 60 + 20).astype(np.float32)
            if sid == "S3":
                values[3, 3, 3] = np.nan
            ext = ".nrrd" if sid == "S3" else ".nii.gz"  # SimpleITK reads NIfTI NaN as 0
            paths.append(f"data/{sid}_ch{c}{ext}")
            write_image(folder / paths[-1], values, **GEOMETRY)
        write_image(data / f"{sid}_mask.nii.gz", mask.astype(np.uint8), **GEOMETRY)
        rows.append(
            {
                "subject_id": sid,
                "volume_paths": ";".join(paths),
                "mask_path": f"data/{sid}_mask.nii.gz",
                "radiology_modality": modality,
            }
        )
    rows.append({"subject_id": "P1", "volume_paths": "", "mask_path": ""})  # pathology only
    return write_manifest(folder, rows)


@pytest.fixture
def cohort(tmp_path):
    return write_cohort(tmp_path, "CT")


@pytest.fixture
def mr_cohort(tmp_path):
    return write_cohort(tmp_path, "MR")


def test_grid_pyradiomics_run_with_failures_and_resume(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    code = run(
        "--manifest",
        str(cohort),
        "--out",
        str(out),
        "--features",
        "pyradiomics",
        "--units",
        "grid",
        "--workers",
        "1",
    )
    assert code == 1
    record = json.loads((out / "runs" / "extract-radiology.json").read_text())
    status = {r["key"]: r for r in record["results"]}
    assert {k: r["status"] for k, r in status.items()} == {
        "S1": "done",
        "S2": "done",
        "S3": "failed",
        "S4": "failed",
    }
    assert "S3" in status["S3"]["error"] and "S3_ch0.nrrd" in status["S3"]["error"]
    assert "NaN" in status["S3"]["error"]
    assert "S4" in status["S4"]["error"] and "S4_ch0.nii.gz" in status["S4"]["error"]
    assert "too small" in status["S4"]["error"]
    assert "FAILED S3" in capsys.readouterr().err

    fs = read_features(out / "features" / "radiology" / "S1.h5")
    assert fs.attrs["subject_id"] == "S1" and fs.attrs["modality"] == "radiology"
    assert fs.attrs["units"] == "grid" and fs.attrs["encoder"] == "pyradiomics"
    assert len(fs.attrs["feature_names"]) == fs.dim
    assert fs.attrs["random_weights"] is False or fs.attrs["random_weights"] == 0
    np.testing.assert_allclose(fs.attrs["spacing"], [1.0, 1.0, 1.0])
    with h5py.File(out / "features" / "radiology" / "S1.h5") as h5:
        voxels = h5["unit_voxels"][()]
    assert len(voxels) == fs.num_patches and np.all(voxels >= 256)  # >= half an 8^3 cube
    # coordinates are physical (mm): within the tumour's physical bounding box
    mask_idx = np.argwhere(planted_habitats((28, 30, 32), k=3, channels=1, seed=0)[1])
    lo = np.array(GEOMETRY["origin"]) + mask_idx.min(axis=0)[::-1]
    hi = np.array(GEOMETRY["origin"]) + mask_idx.max(axis=0)[::-1]
    assert np.all(fs.coords >= lo) and np.all(fs.coords <= hi)

    # rerun: S1 and S2 are skipped, S3 and S4 fail again
    code = run("--manifest", str(cohort), "--out", str(out), "--workers", "1")
    record = json.loads((out / "runs" / "extract-radiology.json").read_text())
    assert code == 1
    assert {r["key"]: r["status"] for r in record["results"]} == {
        "S1": "skipped",
        "S2": "skipped",
        "S3": "failed",
        "S4": "failed",
    }


def test_habitat_units_fit_once_and_reuse(mr_cohort, tmp_path, capsys):
    """Two-channel MR as in the habitat study; K = 3 planted sub-regions."""
    out = tmp_path / "run"
    code = run(
        "--manifest",
        str(mr_cohort),
        "--out",
        str(out),
        "--units",
        "habitat",
        "--habitat-fit-subjects",
        "S1,S2",
        "--workers",
        "1",
    )
    assert code == 1  # S3 (NaN) and S4 (too small) fail
    model_path = out / "features" / "radiology" / "habitat_model.json"
    model = HabitatModel.load(model_path)
    assert model.subjects == ("S1", "S2") and model.k == 3
    fs = read_features(out / "features" / "radiology" / "S2.h5")
    assert fs.attrs["units"] == "habitat" and fs.attrs["n_habitats"] == 3
    with h5py.File(out / "features" / "radiology" / "S2.h5") as h5:
        habitat = h5["habitat"][()]
        proportion = h5["habitat_proportion"][()]
        volume = h5["habitat_volume_mm3"][()]
        mean = h5["habitat_mean_intensity"][()]
    assert len(habitat) == fs.num_patches and set(habitat.tolist()) <= {1, 2, 3}
    assert proportion.sum() == pytest.approx(1.0)
    assert mean.shape == (3, 2) and np.all(np.diff(mean[:, 0]) > 0)
    _, mask, _ = planted_habitats((28, 30, 32), k=3, channels=2, seed=1)
    assert volume.sum() == pytest.approx(mask.sum())  # 1 mm^3 voxels
    capsys.readouterr()

    (out / "features" / "radiology" / "S2.h5").unlink()
    run("--manifest", str(mr_cohort), "--out", str(out), "--units", "habitat", "--workers", "1")
    assert "reused (K = 3" in capsys.readouterr().out
    assert HabitatModel.load(model_path).subjects == ("S1", "S2")


def test_vit3d_tiny_on_grid_units(cohort, tmp_path):
    out = tmp_path / "run"
    code = run(
        "--manifest",
        str(cohort),
        "--out",
        str(out),
        "--features",
        "vit3d-tiny",
        "--random-weights",
        "--workers",
        "1",
        "--device",
        "cpu",
    )
    assert code == 1
    fs = read_features(out / "features" / "radiology" / "S1.h5")
    assert fs.dim == 192 and fs.attrs["encoder"] == "vit3d-tiny"
    assert bool(fs.attrs["random_weights"]) and fs.attrs["weights_sha256"] == ""
    np.testing.assert_array_equal(fs.attrs["encoder_patch_size"], [8, 8, 8])
    assert np.isfinite(fs.features).all()


def test_2d_encoder_slice_by_slice_fallback(cohort, tmp_path):
    out = tmp_path / "run"
    code = run(
        "--manifest",
        str(cohort),
        "--out",
        str(out),
        "--features",
        "timm:test_resnet",
        "--random-weights",
        "--slice-tile",
        "32",
        "--workers",
        "1",
        "--device",
        "cpu",
    )
    assert code == 1
    fs = read_features(out / "features" / "radiology" / "S2.h5")
    assert fs.attrs["encoder"] == "timm:test_resnet" and bool(fs.attrs["random_weights"])
    np.testing.assert_array_equal(fs.attrs["encoder_patch_size"], [1, 32, 32])
    assert np.isfinite(fs.features).all() and fs.features.std(axis=0).max() > 0


def test_encoder_without_weights_is_a_clear_error(cohort, tmp_path, capsys):
    code = run(
        "--manifest",
        str(cohort),
        "--out",
        str(tmp_path / "run"),
        "--features",
        "segvol-vit",
        "--workers",
        "1",
    )
    assert code == 1
    assert "needs weights" in capsys.readouterr().err


def test_unknown_feature_name_is_a_clear_error(cohort, tmp_path, capsys):
    code = run("--manifest", str(cohort), "--out", str(tmp_path / "run"), "--features", "nope")
    assert code == 1
    assert "unknown features 'nope'" in capsys.readouterr().err
