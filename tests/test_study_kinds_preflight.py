"""The preflight, the output folder's lock and ``radiograph report`` for the study kinds other
than radiopathomics (signature, habitat-fusion, longitudinal), through the command line.

Per kind: ``radiograph study CONFIG --check`` on a small valid synthetic cohort exits 0 in
seconds; a broken manifest (a missing file, a bad row) exits 2 naming the subject and the file
or field; a second run while another process holds the output folder's lock exits 75 naming
the holder (as ``tests/integrity/test_process_lock.py`` does for the cohort commands);
``radiograph report`` on such a folder exits 2 saying the kind's report is written by
``radiograph study``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from radiograph.cli import main
from radiograph.lock import EXIT_LOCKED
from radiograph.preflight import _Findings, check_outcomes
from radiograph.synth.fusion_cohort import make_fusion_cohort
from radiograph.synth.longitudinal_cohort import (
    CLINICAL_VARIABLES,
    PHASES,
    make_longitudinal_cohort,
)
from radiograph.synth.signature_cohort import SignatureSynthParams, make_signature_cohort

ROOT = Path(__file__).resolve().parents[1]
DRIVER = [sys.executable, str(ROOT / "tests" / "support" / "rg_process_stages.py")]
#: Seconds a --check on the small cohorts may take (measured: well under 5 s each).
CHECK_SECONDS = 30.0


def _signature(root: Path) -> tuple[Path, Path]:
    """(config, manifest) of a 90-subject signature cohort, paths absolute."""
    manifest = make_signature_cohort(
        root / "cohort", 0, SignatureSynthParams(centres=(("ZS", 50), ("TJ", 25), ("SZ", 15)))
    )
    raw = yaml.safe_load((ROOT / "experiments/configs/signature_benefit.yaml").read_text())
    raw |= {
        "manifest": str(manifest),
        "features_dir": str(manifest.parent),
        "out": str(root / "out"),
        "n_boot": 10,
    }
    config = root / "signature.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config, manifest


def _fusion(root: Path) -> tuple[Path, Path]:
    """(config, cohort.csv) of an 80-patient habitat-fusion cohort (the generator's
    smallest), paths absolute."""
    cohort = make_fusion_cohort(root / "cohort", seed=0, patients=80, size=12, patches=5)
    raw = yaml.safe_load((ROOT / "experiments/configs/habitat_fusion.yaml").read_text())
    raw |= {"cohort": str(cohort), "out_dir": str(root / "out")}
    config = root / "fusion.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config, cohort


def _longitudinal(root: Path) -> tuple[Path, Path]:
    """(config, manifest) of a 40-patient longitudinal cohort (the generator's smallest),
    paths absolute."""
    manifest = make_longitudinal_cohort(
        root / "cohort", seed=3, patients=40, shape=(16, 16, 16), image_shape=(32, 32)
    )
    raw = {
        "kind": "longitudinal",
        "manifest": str(manifest),
        "out": str(root / "out"),
        "phases": list(PHASES),
        "clinical": [
            {"name": v.name, "kind": v.kind, **({"levels": list(v.levels)} if v.levels else {})}
            for v in CLINICAL_VARIABLES
        ],
        "reader_columns": ["reader_1"],
        "external_centres": ["A"],
        "folds": 2,
        "volume_shape": [16, 16, 16],
        "image_shape": [32, 32],
    }
    config = root / "longitudinal.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config, manifest


MAKERS: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "signature": _signature,
    "habitat-fusion": _fusion,
    "longitudinal": _longitudinal,
}


@pytest.fixture(scope="module", params=list(MAKERS))
def cohort(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(kind, config, manifest) of a small valid cohort of each kind."""
    root = tmp_path_factory.mktemp(request.param)
    return (request.param, *MAKERS[request.param](root))


def _check(config: Path, capsys) -> tuple[int, str, float]:
    start = time.perf_counter()
    status = main(["study", str(config), "--check"])
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    return status, captured.out + captured.err, seconds


def test_check_passes_in_seconds_on_a_valid_cohort(cohort, capsys) -> None:
    kind, config, _ = cohort
    status, output, seconds = _check(config, capsys)
    assert status == 0, output
    assert "preflight: ready" in output
    assert seconds < CHECK_SECONDS
    out = Path(yaml.safe_load(config.read_text()).get("out") or "")
    assert not (out / "config.json").exists()  # --check runs nothing


def _broken_copy(kind: str, config: Path, manifest: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the manifest with one subject's file deleted and another row made bad;
    returns the config pointing at it and the subject whose file is gone."""
    folder = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(manifest.parent), str(folder)], check=True)
    table = pd.read_csv(folder / manifest.name, dtype=str, keep_default_na=False)
    raw = yaml.safe_load(config.read_text())
    if kind == "signature":
        gone = table.loc[3, "subject_id"]
        (folder / "features" / "pathology" / gone / f"{gone}.h5").unlink()
        table.loc[5, "rfs_time"] = "soon"
        raw |= {"manifest": str(folder / manifest.name), "features_dir": str(folder)}
    elif kind == "habitat-fusion":
        row = table[table["patches"] != ""].index[0]
        gone = table.loc[row, "subject_id"]
        (folder / table.loc[row, "patches"]).unlink()
        raw["cohort"] = str(folder / manifest.name)
    else:
        row = table[table["volume_path"] != ""].index[0]
        gone = table.loc[row, "patient_id"]
        (folder / table.loc[row, "volume_path"]).unlink()
        table.loc[row + 1 if row + 1 < len(table) else 0, "pcr"] = "maybe"
        raw["manifest"] = str(folder / manifest.name)
    table.to_csv(folder / manifest.name, index=False)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(raw))
    return broken, gone


def test_check_fails_naming_the_subject_and_the_file_of_a_broken_manifest(
    cohort, tmp_path, capsys
) -> None:
    kind, config, manifest = cohort
    broken, gone = _broken_copy(kind, config, manifest, tmp_path)
    status, output, seconds = _check(broken, capsys)
    assert status == 2, output
    assert seconds < CHECK_SECONDS
    problem_lines = output.split("problem(s)")[1].splitlines()
    named = [line for line in problem_lines if gone in line]
    assert named, output
    assert any(str(tmp_path / "broken") in line for line in named), output
    if kind == "signature":
        assert any("rfs_time" in line and "line 7" in line for line in problem_lines), output
    if kind == "longitudinal":
        assert any("pcr" in line for line in problem_lines), output


def test_check_fails_on_an_unwritable_output_folder(cohort, tmp_path, capsys) -> None:
    kind, config, _ = cohort
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    raw = yaml.safe_load(config.read_text())
    raw["out_dir" if kind == "habitat-fusion" else "out"] = str(blocker / "out")
    bad = tmp_path / "bad_out.yaml"
    bad.write_text(yaml.safe_dump(raw))
    status, output, _ = _check(bad, capsys)
    assert status == 2
    assert f"{blocker} is not a folder" in output


def test_longitudinal_check_names_a_missing_weights_file(tmp_path, capsys) -> None:
    config, _ = _longitudinal(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["model"] = {"encoder": "resnet", "mri_weights": str(tmp_path / "r3d_18.pt")}
    config.write_text(yaml.safe_dump(raw))
    status, output, _ = _check(config, capsys)
    assert status == 2
    assert f"key 'model.mri_weights': weights file not found: {tmp_path / 'r3d_18.pt'}" in output


@pytest.fixture()
def held(cohort) -> Iterator[tuple[str, Path, Path]]:
    """(kind, config, out folder) while another process holds the out folder's lock."""
    kind, config, _ = cohort
    raw = yaml.safe_load(config.read_text())
    out = Path(raw["out_dir" if kind == "habitat-fusion" else "out"])
    proc = subprocess.Popen(
        [*DRIVER, "hold-lock", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        yield kind, config, out
    finally:
        proc.kill()
        proc.wait()


def test_a_run_of_every_kind_stops_at_once_on_a_held_output_folder(held, capsys) -> None:
    kind, config, out = held
    start = time.perf_counter()
    status = main(["study", str(config)])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert status == EXIT_LOCKED, err
    assert f"radiograph study: {out} is in use by another run" in err
    assert "command: rg-test holder" in err and "--wait" in err
    assert seconds < CHECK_SECONDS
    assert not (out / "config.json").exists()  # nothing of the study ran


def test_report_on_another_kinds_folder_exits_2_saying_how_to_rewrite_it(
    cohort, tmp_path, capsys
) -> None:
    kind, config, _ = cohort
    from radiograph.study_commands import STUDY_KINDS

    fields = STUDY_KINDS[kind].function("saved").__dataclass_fields__
    out = tmp_path / "done"
    out.mkdir()
    # a folder written before the kind was recorded: known by its keys; a current one (a
    # field the older code did not have) by its "kind"
    for saved in ({name: None for name in fields}, {"kind": kind, "a_later_field": 1}):
        (out / "config.json").write_text(json.dumps(saved))
        status = main(["report", str(out)])
        err = capsys.readouterr().err
        assert status == 2
        assert f"holds a {kind!r} study" in err
        assert "radiograph study CONFIG.yaml --out" in err


def test_check_outcomes_notes_one_class_and_fewer_events_than_folds() -> None:
    found = _Findings()
    check_outcomes(found, "all censored", [0, 0, 0])
    check_outcomes(found, "rare", [1, 0, 0, 0, 0], folds=3)
    check_outcomes(found, "balanced", [1, 0, 1, 0, 1, 0], folds=3)
    assert not found.problems
    warnings = [note for note in found.notes if note.startswith("warning:")]
    assert len(warnings) == 2
    assert "all censored: all 3 subjects have outcome 0" in warnings[0]
    assert (
        "rare: 1 subject(s) in the smaller outcome class, fewer than the 3 folds" in (warnings[1])
    )
