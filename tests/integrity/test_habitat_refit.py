"""The study's habitat model is keyed by what it was fitted on: a changed training mask refits
it (and redoes every subject's features, which depend on it); an unchanged rerun reuses it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radiograph.manifest import load_manifest
from radiograph.provenance import read_provenance
from radiograph.radiology.extract import RadiologyConfig, fit_habitat_model, radiology_jobs
from radiograph.radiology.habitats import HabitatModel
from radiograph.runner import default_backend
from radiograph.study import extract_radiology, habitat_provenance, load_study_config

SHAPE = (24, 26, 28)
SUBJECTS = ("S1", "S2", "S3")
STUDY = """
out_dir: out
cohort: {manifest: manifest.csv}
radiology: {features: pyradiomics, units: habitat, seed: 3}
graphs: {method: slidegraph}
training: {folds: 2, epochs: 1}
aggregators: [mean]
modality_sets: [[radiology]]
workers: 1
"""


def _ball(radius: float) -> np.ndarray:
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = np.array(SHAPE, dtype=np.float64)[:, None, None, None] / 2.0
    return ((grid - centre) ** 2).sum(axis=0) <= radius**2


def _write(path: Path, array: np.ndarray) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


@pytest.fixture
def root(tmp_path) -> Path:
    """Three CT subjects: a ball tumour with two intensity halves plus noise (seeded)."""
    rng = np.random.default_rng(0)
    rows = []
    for i, sid in enumerate(SUBJECTS):
        ct = (
            rng.normal(0.0, 10.0, SHAPE)
            + np.where(np.indices(SHAPE)[2] < SHAPE[2] // 2, 40.0, 120.0)
            + 5.0 * i
        )
        _write(tmp_path / f"{sid}_ct.nii.gz", ct.astype(np.float32))
        _write(tmp_path / f"{sid}_mask.nii.gz", _ball(9.0).astype(np.uint8))
        rows.append(
            {
                "subject_id": sid,
                "patient_id": sid,
                "centre": "A",
                "time": 10.0 + i,
                "time_unit": "months",
                "event": i % 2,
                "volume_paths": f"{sid}_ct.nii.gz",
                "mask_path": f"{sid}_mask.nii.gz",
                "radiology_modality": "CT",
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "study.yaml").write_text(textwrap.dedent(STUDY))
    return tmp_path


def _extract(root: Path) -> dict[str, int]:
    """Run the study's radiology stage; returns the mtime of the model and of each h5."""
    config = load_study_config(root / "study.yaml")
    record = extract_radiology(
        config, load_manifest(config.manifest_path), default_backend(1), progress=False
    )
    assert not record.failed, record.failed
    folder = root / "out" / "features" / "radiology"
    return {
        p.name: p.stat().st_mtime_ns
        for p in (folder / "habitat_model.json", *sorted(folder.glob("*.h5")))
    }


def test_changed_mask_refits_the_habitat_model_and_unchanged_rerun_reuses_it(root, capsys):
    first = _extract(root)
    assert sorted(first) == ["S1.h5", "S2.h5", "S3.h5", "habitat_model.json"]
    capsys.readouterr()

    assert _extract(root) == first, "an unchanged rerun rewrote the model or features"
    assert "refitting" not in capsys.readouterr().out

    _write(root / "S2_mask.nii.gz", _ball(6.0).astype(np.uint8))  # a training subject's mask
    changed = _extract(root)
    out = capsys.readouterr().out
    assert "habitat model: refitting (input changed: S2/mask)" in out
    assert all(changed[name] != first[name] for name in first), (
        "the model and every subject's features (which depend on it) must be redone"
    )

    model_path = root / "out" / "features" / "radiology" / "habitat_model.json"
    config = load_study_config(root / "study.yaml")
    jobs = radiology_jobs(load_manifest(config.manifest_path), config.out_dir)
    fit_config = RadiologyConfig(features="pyradiomics", units="grid", seed=3)
    reference, _ = fit_habitat_model(jobs, fit_config, progress=False)
    assert np.allclose(HabitatModel.load(model_path).centres, reference.centres), (
        "the refitted model must equal a fresh fit on the changed cohort"
    )
    record = read_provenance(model_path)
    assert record is not None
    assert record["digest"] == habitat_provenance(jobs, fit_config).digest

    assert _extract(root) == changed, "the rerun after the refit must reuse it"
