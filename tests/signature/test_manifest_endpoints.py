"""Manifest: endpoint pairs (os/rfs), per-slide ROI paths, and 0/1 treatment columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiograph.manifest import binary_column_problems, load_manifest, validate_manifest

HEADER = (
    "subject_id,patient_id,centre,time,time_unit,event,os_time,os_event,rfs_time,"
    "rfs_event,slide_paths,roi_paths,chemo\n"
)


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_endpoints_and_rois_are_parsed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            "s1,p1,A,20,months,1,20,1,8,1,a.svs;b.svs;c.svs,a.geojson;;c.geojson,1",
            "s2,p2,A,30,months,0,30,0,,,d.svs,,0",
        ],
    )
    manifest = load_manifest(path, check_files=False)
    s1, s2 = manifest.subjects
    assert s1.endpoints == {"os": (20.0, 1), "rfs": (8.0, 1)}
    assert s2.endpoints == {"os": (30.0, 0)}  # rfs unknown: both cells empty
    assert s1.roi_paths == (tmp_path / "a.geojson", None, tmp_path / "c.geojson")
    assert s2.roi_paths == ()
    assert "os_time" not in s1.covariates and s1.covariates["chemo"] == 1.0
    assert (s1.line, s2.line) == (2, 3)


def test_endpoint_problems_name_subject_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            "s1,p1,A,20,months,1,20,1,25,1,,,1",  # RFS after OS
            "s2,p2,A,30,months,0,30,2,,,,,0",  # os_event not 0/1
            "s3,p3,A,30,months,0,30,0,12,,,,0",  # rfs pair half-filled
            "s4,p4,A,30,months,0,30,0,10,1,x.svs;y.svs,r.geojson,0",  # 1 ROI entry for 2 slides
        ],
    )
    manifest, problems = validate_manifest(path, check_files=False)
    assert manifest is None
    found = {(p.line, p.subject_id, p.column) for p in problems}
    assert found == {
        (2, "s1", "rfs_time"),
        (3, "s2", "os_event"),
        (4, "s3", "rfs_event"),
        (5, "s4", "roi_paths"),
    }
    text = "\n".join(map(str, problems))
    assert "rfs_time 25 is after os_time 20" in text


def test_missing_roi_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.svs").write_bytes(b"")
    path = _write(tmp_path, ["s1,p1,A,20,months,1,20,1,8,1,a.svs,missing.geojson,1"])
    _, problems = validate_manifest(path, check_files=True)
    assert [(p.subject_id, p.column) for p in problems] == [("s1", "roi_paths")]
    assert "missing.geojson" in problems[0].message


def test_treatment_values_other_than_0_1_are_listed_and_the_rest_goes_on(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            "s1,p1,A,20,months,1,,,,,,,1",
            "s2,p2,A,30,months,0,,,,,,,yes",
            "s3,p3,A,30,months,0,,,,,,,0",
            "s4,p4,A,30,months,0,,,,,,,2",
        ],
    )
    manifest = load_manifest(path, check_files=False)
    problems = binary_column_problems(manifest, "chemo")
    assert [(p.line, p.subject_id, p.column) for p in problems] == [
        (3, "s2", "chemo"),
        (5, "s4", "chemo"),
    ]
    assert "got 'yes'" in problems[0].message
    with pytest.raises(ValueError, match="'adjuvant'"):
        binary_column_problems(manifest, "adjuvant")


def test_keep_valid_rows_returns_the_other_subjects_beside_the_problems(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            "s1,p1,A,20,months,1,20,1,25,1,,,1",  # RFS after OS
            "s2,p2,A,30,months,0,30,0,12,1,,,0",
            "s3,p3,A,30,months,0,30,2,,,,,0",  # os_event not 0/1
            "s4,p4,A,40,months,1,40,1,,,,,1",
        ],
    )
    manifest, problems = validate_manifest(path, check_files=False, keep_valid_rows=True)
    assert manifest is not None
    assert [s.subject_id for s in manifest.subjects] == ["s2", "s4"]
    assert {(p.line, p.subject_id, p.column) for p in problems} == {
        (2, "s1", "rfs_time"),
        (4, "s3", "os_event"),
    }
    strict, _ = validate_manifest(path, check_files=False)
    assert strict is None


def test_keep_valid_rows_still_refuses_a_problem_of_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("subject_id,patient_id,centre,time,event\ns1,p1,A,20,1\n")  # no time_unit
    manifest, problems = validate_manifest(path, check_files=False, keep_valid_rows=True)
    assert manifest is None and problems and problems[0].column == "time_unit"
