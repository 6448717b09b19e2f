"""The longitudinal manifest: reading, every validation error, phase order, availability,
patient-level folds (radiograph.longitudinal.cohort)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from radiograph.fusion.clinical import ClinicalVariable
from radiograph.longitudinal.cohort import patient_folds, read_longitudinal_manifest

PHASES = ("pre", "mid", "post")
VARIABLES = (
    ClinicalVariable("age", "continuous"),
    ClinicalVariable("subtype", "categorical", ("HR+", "HER2+", "TNBC")),
)
COLUMNS = (
    "patient_id",
    "centre",
    "phase",
    "volume_path",
    "pre_contrast_path",
    "post_contrast_path",
    "image_paths",
    "pcr",
    "age",
    "subtype",
    "reader_1",
)


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    """A folder with small volumes (3D), a one-slice NIfTI and PNG images (2D)."""
    rng = np.random.default_rng(0)
    for name in ("sub_pre", "sub_mid", "sub_post", "pre", "post"):
        sitk.WriteImage(
            sitk.GetImageFromArray(rng.integers(0, 100, (6, 7, 8)).astype(np.int16)),
            str(tmp_path / f"{name}.nii.gz"),
        )
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((1, 7, 8), np.int16)), str(tmp_path / "flat.nii.gz")
    )
    for name in ("cc", "mlo"):
        Image.fromarray(rng.integers(0, 255, (16, 12)).astype(np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    return tmp_path


def _write(folder: Path, rows: list[dict[str, str]], name: str = "manifest.csv") -> Path:
    path = folder / name
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([{c: row.get(c, "") for c in COLUMNS} for row in rows])
    return path


def _row(pid: str, phase: str, **cells: str) -> dict[str, str]:
    return {"patient_id": pid, "centre": "A", "phase": phase, "pcr": "1", **cells}


GOOD = [
    _row("P1", "post", volume_path="sub_post.nii.gz", age="61", subtype="TNBC", reader_1="0.9"),
    _row(
        "P1",
        "pre",
        pre_contrast_path="pre.nii.gz",
        post_contrast_path="post.nii.gz",
        image_paths="cc.png; mlo.png",
        age="61",
        reader_1="0.2",
    ),
    _row("P2", "pre", volume_path="sub_pre.nii.gz", pcr="0", subtype="Unknown"),
    _row("P2", "mid", volume_path="sub_mid.nii.gz", pcr="0"),
    _row("P3", "pre", image_paths="cc.png", pcr="0", centre="B", age="48", subtype="HR+"),
]


def _read(path: Path):
    return read_longitudinal_manifest(path, PHASES, VARIABLES, reader_columns=("reader_1",))


def test_reads_visits_in_declared_order_with_absolute_paths(files: Path) -> None:
    cohort = _read(_write(files, GOOD))
    assert cohort.patient_ids == ["P1", "P2", "P3"]
    p1 = cohort.patients[0]
    assert p1.phases == ("pre", "post")  # file order was post, pre
    pre = p1.visit("pre")
    assert pre.pre_contrast == files / "pre.nii.gz" and pre.post_contrast == files / "post.nii.gz"
    assert pre.volume is None and pre.images == (files / "cc.png", files / "mlo.png")
    assert pre.line == 3 and p1.visit("post").line == 2
    assert p1.clinical == {"age": "61", "subtype": "TNBC"}  # blank in one row is fine
    assert p1.reader_scores == {"reader_1": 0.9}  # the latest visit's score
    assert pre.reader_scores == {"reader_1": 0.2}
    np.testing.assert_array_equal(cohort.labels(), [1, 0, 0])
    table = cohort.clinical_table()
    assert list(table.columns) == ["age", "subtype"] and table.loc["P2", "age"] == ""
    np.testing.assert_array_equal(cohort.reader_table("pre")["reader_1"], [0.2, np.nan, np.nan])
    np.testing.assert_array_equal(cohort.reader_table()["reader_1"], [0.9, np.nan, np.nan])


def test_availability_names_phases_and_modalities(files: Path) -> None:
    available = _read(_write(files, GOOD)).availability()
    assert list(available.columns) == [
        "pre:mri",
        "pre:mammo",
        "mid:mri",
        "mid:mammo",
        "post:mri",
        "post:mammo",
        "clinical",
    ]
    expected = pd.DataFrame(
        [
            [True, True, False, False, True, False, True],
            [True, False, True, False, False, False, True],
            [False, True, False, False, False, False, True],
        ],
        columns=available.columns,
        index=pd.Index(["P1", "P2", "P3"], name="patient_id"),
    )
    pd.testing.assert_frame_equal(available, expected)
    summary = _read(_write(files, GOOD)).availability_summary()
    assert summary["patients"].sum() == 3 and set(summary["centre"]) == {"A", "B"}


def test_row_order_changes_nothing(files: Path) -> None:
    """Any permutation of the rows gives the same patients' visits (up to line numbers)."""
    reference = _read(_write(files, GOOD))
    rng = np.random.default_rng(1)
    for k in range(3):
        shuffled = [GOOD[i] for i in rng.permutation(len(GOOD))]
        cohort = _read(_write(files, shuffled, f"shuffled{k}.csv"))
        by_id = {p.patient_id: p for p in cohort.patients}
        for patient in reference.patients:
            other = by_id[patient.patient_id]
            strip = [
                (v.phase, v.volume, v.pre_contrast, v.post_contrast, v.images, v.reader_scores)
                for v in patient.visits
            ]
            assert strip == [
                (v.phase, v.volume, v.pre_contrast, v.post_contrast, v.images, v.reader_scores)
                for v in other.visits
            ]
            assert (patient.clinical, patient.label, patient.reader_scores) == (
                other.clinical,
                other.label,
                other.reader_scores,
            )
        pd.testing.assert_frame_equal(
            cohort.availability().loc[reference.patient_ids], reference.availability()
        )


@pytest.mark.parametrize(
    "bad, fragments",
    [
        (
            _row("P9", "week6", volume_path="sub_pre.nii.gz"),
            ["line 7", "patient 'P9'", "phase 'week6'", "[phase]", "is not declared"],
        ),
        (
            _row("P1", "pre", volume_path="sub_pre.nii.gz", age="61"),
            ["line 7", "patient 'P1'", "phase 'pre'", "[phase]", "a second row", "first on line 3"],
        ),
        (
            _row("P9", "pre", post_contrast_path="post.nii.gz"),
            [
                "line 7",
                "patient 'P9'",
                "phase 'pre'",
                "[pre_contrast_path]",
                "post.nii.gz",
                "without a pre-contrast volume",
            ],
        ),
        (
            _row("P9", "pre", pre_contrast_path="pre.nii.gz"),
            ["patient 'P9'", "[post_contrast_path]", "pre.nii.gz", "without a post-contrast"],
        ),
        (
            _row(
                "P9",
                "pre",
                volume_path="sub_pre.nii.gz",
                pre_contrast_path="pre.nii.gz",
                post_contrast_path="post.nii.gz",
            ),
            ["patient 'P9'", "[volume_path]", "not both"],
        ),
        (
            _row("P9", "mid", volume_path="cc.png"),
            [
                "line 7",
                "patient 'P9'",
                "phase 'mid'",
                "[volume_path]",
                "cc.png",
                "is a 2D image",
                "where a 3D volume is expected",
            ],
        ),
        (
            _row("P9", "mid", volume_path="flat.nii.gz"),
            ["[volume_path]", "flat.nii.gz", "is a 2D image (8 x 7 x 1)"],
        ),
        (
            _row("P9", "pre", image_paths="cc.png;sub_pre.nii.gz"),
            [
                "patient 'P9'",
                "phase 'pre'",
                "[image_paths]",
                "sub_pre.nii.gz",
                "is a 3D volume",
                "where a 2D image is expected",
            ],
        ),
        (
            _row("P9", "pre", volume_path="absent.nii.gz"),
            ["patient 'P9'", "phase 'pre'", "[volume_path]", "absent.nii.gz", "does not exist"],
        ),
        (
            _row("P9", "pre", image_paths="absent.png"),
            ["[image_paths]", "absent.png", "does not exist"],
        ),
        (
            _row("a/b", "pre", volume_path="sub_pre.nii.gz"),
            ["patient 'a/b'", "[patient_id]", "path separator"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", centre="CON"),
            ["patient 'P9'", "[centre]", "device name"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", pcr="2"),
            ["line(s) 7", "patient 'P9'", "[pcr]", "0 (non-pCR) or 1 (pCR)", "'2'"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", pcr=""),
            ["patient 'P9'", "[pcr]", "blank in every row"],
        ),
        (_row("P9", "pre"), ["line(s) 7", "patient 'P9'", "image_paths", "no image at any phase"]),
        (_row("P3", "post"), ["line 7", "patient 'P3'", "phase 'post'", "no image in this row"]),
        (
            _row("P1", "mid", volume_path="sub_mid.nii.gz", subtype="HR+"),
            [
                "patient 'P1'",
                "[subtype]",
                "'HR+' on line(s) 7",
                "'TNBC' on line(s) 2",
                "baseline attribute differs",
            ],
        ),
        (
            _row("P1", "mid", volume_path="sub_mid.nii.gz", pcr="0"),
            ["patient 'P1'", "[pcr]", "'0' on line(s) 7", "'1' on line(s) 2, 3"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", subtype="luminal"),
            ["subject P9", "column 'subtype'", "'luminal'", "not a listed level"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", age="old"),
            ["subject P9", "column 'age'", "not a finite number"],
        ),
        (
            _row("P9", "pre", volume_path="sub_pre.nii.gz", reader_1="high"),
            ["patient 'P9'", "[reader_1]", "'high'", "not a finite number"],
        ),
    ],
)
def test_each_problem_names_patient_phase_file_and_field(
    files: Path, bad: dict[str, str], fragments: list[str]
) -> None:
    path = _write(files, [*GOOD, bad])
    with pytest.raises(ValueError) as err:
        _read(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_one_message_lists_every_problem(files: Path) -> None:
    rows = [
        *GOOD,
        _row("P8", "week6", volume_path="sub_pre.nii.gz"),
        _row("P9", "mid", volume_path="cc.png"),
        _row("P7", "pre", image_paths="sub_pre.nii.gz"),
    ]
    with pytest.raises(ValueError, match="3 problem") as err:
        _read(_write(files, rows))
    for fragment in ("patient 'P8'", "patient 'P9'", "patient 'P7'"):
        assert fragment in str(err.value)


def test_header_and_argument_errors(files: Path) -> None:
    path = _write(files, GOOD)
    with pytest.raises(ValueError, match=r"column\(s\) \['grade'\] are missing"):
        read_longitudinal_manifest(
            path, PHASES, (ClinicalVariable("grade", "ordinal", ("1", "2")),)
        )
    with pytest.raises(ValueError, match=r"phases: \['pre'\] declared more than once"):
        read_longitudinal_manifest(path, ("pre", "post", "pre"))
    with pytest.raises(ValueError, match="phases: phase name 'a:b'"):
        read_longitudinal_manifest(path, ("a:b",))
    with pytest.raises(ValueError, match="path: longitudinal manifest"):
        read_longitudinal_manifest(files / "none.csv", PHASES)


def _cohort_of(labels: np.ndarray, folder: Path):
    rows = [
        _row(f"P{i:03d}", phase, volume_path="sub_pre.nii.gz", pcr=str(int(y)))
        for i, y in enumerate(labels)
        for phase in ("post", "pre")
    ]
    return read_longitudinal_manifest(_write(folder, rows), PHASES)


def test_patient_folds_partition_patients_and_are_stratified(files: Path) -> None:
    labels = np.array([1] * 11 + [0] * 26)
    cohort = _cohort_of(np.random.default_rng(2).permutation(labels), files)
    y = cohort.labels()
    for seed in (0, 1):
        folds = patient_folds(cohort, 5, seed)
        tests = np.concatenate([test for _, test in folds])
        np.testing.assert_array_equal(np.sort(tests), np.arange(len(cohort)))
        for train, test in folds:
            assert not set(train) & set(test)
            assert len(train) + len(test) == len(cohort)
            assert y[test].sum() in (2, 3)  # 11 responders over 5 folds
            assert (1 - y[test]).sum() in (5, 6)  # 26 non-responders
    first = [tuple(t) for _, t in patient_folds(cohort, 5, 0)]
    assert first == [tuple(t) for _, t in patient_folds(cohort, 5, 0)]
    assert first != [tuple(t) for _, t in patient_folds(cohort, 5, 1)]
    with pytest.raises(ValueError, match="folds: need 2 <= folds <= 11"):
        patient_folds(cohort, 12, 0)


def test_until_and_subset(files: Path) -> None:
    cohort = _read(_write(files, GOOD))
    p1 = cohort.patients[0]
    assert p1.until("pre", PHASES).phases == ("pre",)
    assert p1.until("mid", PHASES).phases == ("pre",)
    assert p1.until("post", PHASES) == p1
    with pytest.raises(ValueError, match="phase: 'week6'"):
        p1.until("week6", PHASES)
    part = cohort.subset(np.array([2, 0]))
    assert part.patient_ids == ["P3", "P1"] and list(part.labels()) == [0, 1]
    assert part.phases == cohort.phases and part.manifest == cohort.manifest
    with pytest.raises(ValueError, match="indices: out of range"):
        cohort.subset([3])
