"""Exit status that tells the truth (issue 15, point 4): a cohort command or the study with
failed subjects finishes what it can, lists them and exits 1, unless --allow-failures (a count
or a fraction of the cohort) accepts that many; the study lists the left-out subjects in
report/excluded_subjects.csv."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiograph.cli import main
from radiograph.io.features import FeatureSet, write_features
from radiograph.runner import allowed_failures, parse_allow_failures

ROOT = Path(__file__).resolve().parents[2]


def nan_cohort(folder: Path) -> Path:
    """Pathology features of subjects A, B, C; B's have NaN rows, so its graph fails."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2) * 224.0
    for sid in ("A", "B", "C"):
        features = rng.normal(size=(len(grid), 8)).astype(np.float32)
        if sid == "B":
            features[[3, 7], 2] = np.nan
        write_features(
            folder / "pathology" / sid / "slide.h5",
            FeatureSet(features, grid, {"subject_id": sid, "patch_size": 224}),
        )
    return folder


@pytest.mark.parametrize(
    "allow, status", [(None, 1), ("1", 0), ("0.5", 0), ("0.2", 1), ("0", 1), ("1.0", 0)]
)
def test_cohort_command_fails_unless_its_failures_are_allowed(tmp_path, capsys, allow, status):
    features = nan_cohort(tmp_path / "features")
    command = [
        "build-graphs",
        "--features",
        str(features),
        "--out",
        str(tmp_path / "graphs"),
        "--modality",
        "pathology",
        "--workers",
        "1",
    ]
    assert main(command + (["--allow-failures", allow] if allow else [])) == status
    err = capsys.readouterr().err
    assert "FAILED pathology/B: " in err and "subject B" in err  # listed either way
    assert sorted(p.stem for p in (tmp_path / "graphs" / "pathology").glob("*.pt")) == ["A", "C"]
    if status:
        assert "1 of 3 tasks failed" in err and "--allow-failures 1 accepts" in err, err
    else:
        assert f"1 failure(s) accepted by --allow-failures {allow}" in err, err


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", "2.0", "nan"])
def test_bad_allowance_is_refused_by_the_parser(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "build-graphs",
                "--features",
                str(tmp_path),
                "--out",
                str(tmp_path / "g"),
                "--allow-failures",
                value,
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--allow-failures" in err and "a count of tasks" in err and repr(value) in err, err


def test_allowance_counts_and_fractions():
    assert parse_allow_failures("3") == 3 and isinstance(parse_allow_failures("3"), int)
    assert parse_allow_failures("0.1") == 0.1 and parse_allow_failures(0.25) == 0.25
    for bad in (True, -2, 1.01, "1e-3x"):
        with pytest.raises(ValueError, match="allow_failures must be"):
            parse_allow_failures(bad)
    # floor(fraction x total), by hand: 0.1 x 48 = 4.8, 0.29 x 100 = 29 (28.999... in binary)
    assert allowed_failures(0.1, 48) == 4
    assert allowed_failures(0.29, 100) == 29
    assert allowed_failures(0.05, 19) == 0
    assert allowed_failures(1, 100) == 1 and allowed_failures(1.0, 100) == 100
    assert allowed_failures(None, 100) == 0


STUDY = """
out_dir: out
cohort: {{manifest: {manifest}}}
pathology: null
radiology: {{features: pyradiomics, units: grid}}
graphs: {{method: slidegraph}}
training: {{folds: 2, epochs: 1, batch_size: 4, seed: 0}}
aggregators: [mean]
modality_sets: [[radiology]]
baselines: {{models: [coxph], inner_folds: 2, grids: {{coxph: {{alpha: [1.0]}}}}}}
report: {{km_model: coxph, pooled_boot: 10}}
workers: 1
{extra}
"""


def study_script():
    spec = importlib.util.spec_from_file_location(
        "radiopathomics", ROOT / "experiments" / "radiopathomics.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_study_lists_left_out_subjects_and_exits_1_unless_allowed(tmp_path, capsys):
    from radiograph.synth import make_cohort

    manifest = make_cohort(
        tmp_path / "cohort", 10, seed=3, slide_size=(1344, 896), workers=1, progress=False
    )
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    broken = table.loc[table["volume_paths"] != "", "subject_id"].iloc[1]
    bad_ct = tmp_path / "cohort" / "broken_ct.nii.gz"
    bad_ct.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    table.loc[table["subject_id"] == broken, "volume_paths"] = str(bad_ct)
    table.to_csv(manifest, index=False)
    config = tmp_path / "study.yaml"
    script = study_script()

    config.write_text(textwrap.dedent(STUDY.format(manifest=manifest, extra="")))
    assert script.main(["--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 of 10 subjects left out of the study (at most 0 allowed" in err, err
    assert f"  {broken} (extract-radiology): " in err and "broken_ct.nii.gz" in err
    excluded = pd.read_csv(tmp_path / "out" / "report" / "excluded_subjects.csv", dtype=str)
    assert list(excluded.columns) == ["subject_id", "stage", "error"]
    assert excluded[["subject_id", "stage"]].values.tolist() == [[broken, "extract-radiology"]]
    assert "broken_ct.nii.gz" in excluded["error"].iloc[0]
    assert (tmp_path / "out" / "report" / "table1.csv").exists()  # the rest ran to the end

    assert script.main(["--config", str(config), "--no-progress", "--allow-failures", "1"]) == 0
    config.write_text(textwrap.dedent(STUDY.format(manifest=manifest, extra="allow_failures: 0.1")))
    assert script.main(["--config", str(config), "--no-progress"]) == 0
    assert "1 of 10 subjects left out" in capsys.readouterr().err
    assert script.main(["--config", str(config), "--no-progress", "--allow-failures", "0"]) == 1
