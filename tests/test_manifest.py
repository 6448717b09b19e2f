"""Manifest validation: every problem reported at once, with line, subject and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiograph.cli import main
from radiograph.manifest import ManifestError, load_manifest, validate_manifest

HEADER = (
    "subject_id,patient_id,centre,time,time_unit,event,label,slide_paths,volume_paths,mask_path,age"
)


def write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    for name in ("s1.tiff", "s2.tiff", "ct1.nii.gz", "m1.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = "A,P1,C1,100,days,1,high,s1.tiff,ct1.nii.gz,m1.nii.gz,61"


def test_good_manifest_loads_with_absolute_paths_and_covariates(tmp_path):
    path = write(tmp_path, [GOOD, "B,P2,C1,50.5,days,0,low,s1.tiff;s2.tiff,,,70"])
    manifest = load_manifest(path)
    a, b = manifest.subjects
    assert a.slide_paths == (tmp_path / "s1.tiff",)
    assert a.volume_paths == (tmp_path / "ct1.nii.gz",) and a.mask_path == tmp_path / "m1.nii.gz"
    assert b.slide_paths == (tmp_path / "s1.tiff", tmp_path / "s2.tiff")
    assert not b.has_radiology and b.has_pathology
    assert a.covariates == {"age": 61.0} and a.event == 1 and b.time == 50.5
    assert manifest.time_unit == "days"


# Each case: (rows, header, [(line, column, words in the message)])
BAD_CASES = {
    "missing column": (
        [GOOD.replace(",days", "")],
        HEADER.replace(",time_unit", ""),
        [(1, "time_unit", "missing")],
    ),
    "duplicate subject": (
        [GOOD, GOOD.replace("P1", "P9")],
        HEADER,
        [(3, "subject_id", "duplicate")],
    ),
    "non-numeric time": ([GOOD.replace(",100,", ",abc,")], HEADER, [(2, "time", "not a number")]),
    "NaN time": ([GOOD.replace(",100,", ",NaN,")], HEADER, [(2, "time", "finite")]),
    "empty time": ([GOOD.replace(",100,", ",,")], HEADER, [(2, "time", "not a number")]),
    "zero time": ([GOOD.replace(",100,", ",0,")], HEADER, [(2, "time", "> 0")]),
    "negative time": ([GOOD.replace(",100,", ",-3,")], HEADER, [(2, "time", "> 0")]),
    "event 2": ([GOOD.replace(",days,1,", ",days,2,")], HEADER, [(2, "event", "0 or 1")]),
    "event text": (
        [GOOD.replace(",days,1,", ",days,dead,")],
        HEADER,
        [(2, "event", "not a number")],
    ),
    "missing file": (
        [GOOD.replace("s1.tiff", "nope.tiff")],
        HEADER,
        [(2, "slide_paths", "does not exist")],
    ),
    "volume without mask": (
        [GOOD.replace(",m1.nii.gz", ",")],
        HEADER,
        [(2, "mask_path", "mask_path is empty")],
    ),
    "bad time unit": ([GOOD.replace(",days,", ",weeks,")], HEADER, [(2, "time_unit", "weeks")]),
    "patient label conflict": (
        [GOOD, "B,P1,C1,80,days,0,low,,,,60"],
        HEADER,
        [(2, "label", "different labels")],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_manifest_reports_line_and_column(tmp_path, case):
    rows, header, expected = BAD_CASES[case]
    manifest, problems = validate_manifest(write(tmp_path, rows, header))
    assert manifest is None
    for line, column, words in expected:
        assert any(
            p.line == line and p.column == column and words in p.message for p in problems
        ), f"{case}: expected line {line} [{column}] '{words}', got {[str(p) for p in problems]}"


def test_all_problems_reported_at_once_and_cli_exit_status(tmp_path, capsys):
    rows = [
        GOOD.replace(",100,", ",-1,"),
        GOOD.replace("A,", "B,").replace(",days,1,", ",days,7,"),
        GOOD.replace("A,", "C,").replace("ct1.nii.gz", "missing.nii.gz"),
    ]
    path = write(tmp_path, rows)
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    columns = sorted((p.line, p.column) for p in info.value.problems)
    assert columns == [(2, "time"), (3, "event"), (4, "volume_paths")]
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "3 problem(s)" in out and "subject 'C'" in out and "missing.nii.gz" in out


def test_cli_summary_on_valid_manifest(tmp_path, capsys):
    path = write(tmp_path, [GOOD, "B,P2,C2,10,days,0,low,,ct1.nii.gz,m1.nii.gz,55"])
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "subjects: 2" in out and "events: 1 (50.0%)" in out
    assert "pathology+radiology 1" in out and "radiology only 1" in out


def test_shipped_example_manifest_is_valid_apart_from_files():
    example = Path(__file__).parents[1] / "data_manifests" / "example_tcga_rcc.csv"
    manifest, problems = validate_manifest(example, check_files=False)
    assert problems == [] and len(manifest) == 4
    kirp = manifest.by_id()["TCGA-BQ-5887"]
    assert len(kirp.slide_paths) == 2 and kirp.volume_paths[0].name == "TCGA-BQ-5887"
    _, with_files = validate_manifest(example)
    assert {p.column for p in with_files} == {"slide_paths", "volume_paths", "mask_path"}
