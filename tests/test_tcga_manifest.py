"""``radiograph tcga-manifest`` on a small GDC-shaped cohort written here.

The fixture has the shapes of the real downloads: the GDC clinical TSV (two rows per case, one
per treatment, ``'--`` for empty; bare column names as in the older portal and entity-prefixed
ones as in portal 2.0), the clinical JSON, the clinical ``.tar.gz``; slides in the GDC
client's one-folder-per-file layout; CT as NIfTI named by case and as TCIA patient folders of
DICOM series. The expected manifest below is written out by hand from the survival rules
(Dead: event 1 at days_to_death; Alive: event 0 at days_to_last_follow_up).
"""

from __future__ import annotations

import csv
import io
import json
import random
import tarfile
from pathlib import Path

import pytest

from radiograph.cohorts.gdc import ClinicalCase, ClinicalError, overall_survival, read_clinical
from radiograph.cohorts.tcga import build_cohort, scan_slides, scan_volumes, write_manifest
from radiograph.manifest import load_manifest

E = "'--"
#: case -> (project, vital_status, days_to_death per row, days_to_last_follow_up per row,
#: age_at_index, gender); every case has two rows (two treatments), as in the GDC TSV.
CASES = {
    "TCGA-B0-4712": ("TCGA-KIRC", "Alive", (E, E), ("1964", "1964"), "58", "male"),
    "TCGA-B0-5094": ("TCGA-KIRC", "Dead", ("538", "538"), ("400", "400"), "71", "female"),
    "TCGA-BQ-5887": ("TCGA-KIRP", "Alive", (E, E), ("2380", "2380"), "63", "male"),
    "TCGA-KL-8326": ("TCGA-KICH", "Dead", ("700", "700"), ("900", "900"), "45", "female"),
    "TCGA-CJ-4634": ("TCGA-KIRC", "Dead", (E, E), ("300", "300"), "66", "male"),
    "TCGA-CZ-5982": ("TCGA-KIRC", "Alive", (E, E), ("-10", "-10"), "50", "male"),
    "TCGA-A3-3308": ("TCGA-KIRC", "Alive", (E, E), (E, E), "59", "female"),
    "TCGA-B8-5158": ("TCGA-KIRC", "Not Reported", (E, E), ("800", "800"), "61", "male"),
    "TCGA-AK-3456": ("TCGA-KIRC", "Dead", ("400", "410"), (E, E), "70", "male"),
    "TCGA-B2-3923": ("TCGA-KIRC", "Dead", ("0", "0"), (E, E), "55", "female"),
    "TCGA-BP-4162": ("TCGA-KIRC", "Alive", ("100", "100"), ("500", "500"), "48", "male"),
    "TCGA-DV-5565": ("TCGA-KIRC", "Alive", (E, E), ("1500", "1500"), "52", "female"),
    "TCGA-B0-4700": ("TCGA-KIRC", "Dead", ("abc", "abc"), (E, E), "60", "male"),
}
#: Why each left-out case is left out (words of its problem).
LEFT_OUT = {
    "TCGA-CJ-4634": "vital_status Dead without days_to_death",
    "TCGA-CZ-5982": "days_to_last_follow_up is -10",
    "TCGA-A3-3308": "vital_status Alive without days_to_last_follow_up",
    "TCGA-B8-5158": "vital_status is 'Not Reported'",
    "TCGA-AK-3456": "rows disagree on days_to_death: 400, 410",
    "TCGA-B2-3923": "days_to_death is 0",
    "TCGA-BP-4162": "vital_status Alive but days_to_death is 100",
    "TCGA-DV-5565": "--require any, has no image",
    "TCGA-ZZ-0001": "no clinical record",
    "TCGA-B0-4700": "days_to_death 'abc' is not a number",
}
UUID = "0f83fd6c-5a9f-4b2a-a6c5-0c5f0c0d8f4b"
SERIES = "07-18-1999-NA-CT ABDOMEN-12345/3.000000-NA-67890"
#: The manifest by hand: (case, time in days, event, slides, volume, mask, project).
EXPECTED = [
    (
        "TCGA-B0-4712",
        1964,
        0,
        [f"slides/a1/TCGA-B0-4712-01Z-00-DX1.{UUID}.svs"],
        "ct/TCGA-B0-4712.nii.gz",
        "masks/TCGA-B0-4712_mask.nii.gz",
        "TCGA-KIRC",
    ),
    (
        "TCGA-B0-5094",
        538,
        1,
        [f"slides/b1/TCGA-B0-5094-01Z-00-DX1.{UUID}.svs"],
        f"ct/TCGA-KIRC/TCGA-B0-5094/{SERIES}",
        "masks/TCGA-B0-5094.nii.gz",
        "TCGA-KIRC",
    ),
    (
        "TCGA-BQ-5887",
        2380,
        0,
        [
            f"slides/c1/TCGA-BQ-5887-01Z-00-DX1.{UUID}.svs",
            f"slides/c2/TCGA-BQ-5887-01Z-00-DX2.{UUID}.svs",
        ],
        "",
        "",
        "TCGA-KIRP",
    ),
    (
        "TCGA-KL-8326",
        700,
        1,
        [f"slides/d1/TCGA-KL-8326-01Z-00-DX1.{UUID}.svs"],
        "",
        "",
        "TCGA-KICH",
    ),
]


def clinical_rows(dotted: bool) -> list[list[str]]:
    """The clinical TSV's cells, header first: bare (older portal) or dotted (portal 2.0)."""
    names = (
        [
            "cases.case_id",
            "cases.submitter_id",
            "demographic.submitter_id",
            "project.project_id",
            "demographic.age_at_index",
            "demographic.gender",
            "demographic.vital_status",
            "demographic.days_to_death",
            "diagnoses.days_to_last_follow_up",
            "treatments.treatment_type",
        ]
        if dotted
        else [
            "case_id",
            "case_submitter_id",
            "project_id",
            "age_at_index",
            "gender",
            "vital_status",
            "days_to_death",
            "days_to_last_follow_up",
            "treatment_type",
        ]
    )
    rows = [names]
    for n, (case, (project, vital, deaths, follows, age, gender)) in enumerate(CASES.items()):
        for i, treatment in enumerate(("Pharmaceutical Therapy, NOS", "Radiation Therapy, NOS")):
            ids = [f"uuid-{n}", case] + ([f"{case}_demographic"] if dotted else [])
            rows.append([*ids, project, age, gender, vital, deaths[i], follows[i], treatment])
    return rows


def tsv_text(rows: list[list[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def clinical_json() -> str:
    """The same cases as the GDC clinical JSON: one object per case, one diagnosis per TSV
    row; a second days_to_death (the disagreeing case) on the second diagnosis."""

    def value(cell: str) -> object:
        if cell == E:
            return None
        try:
            return int(cell)
        except ValueError:
            return cell

    cases = []
    for n, (case, (project, vital, deaths, follows, age, gender)) in enumerate(CASES.items()):
        diagnoses: list[dict[str, object]] = [
            {"days_to_last_follow_up": value(f), "treatments": [{"treatment_type": "x"}]}
            for f in follows
        ]
        if deaths[1] != deaths[0]:
            diagnoses[1]["days_to_death"] = value(deaths[1])
        cases.append(
            {
                "case_id": f"uuid-{n}",
                "submitter_id": case,
                "project": {"project_id": project},
                "demographic": {
                    "vital_status": vital,
                    "days_to_death": value(deaths[0]),
                    "age_at_index": int(age),
                    "gender": gender,
                },
                "diagnoses": diagnoses,
            }
        )
    return json.dumps(cases, indent=1)


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


@pytest.fixture()
def cohort_dir(tmp_path: Path) -> Path:
    """Slides, CT and masks in the layouts of the GDC client and the NBIA Data Retriever."""
    for folder, name in (
        ("a1", f"TCGA-B0-4712-01Z-00-DX1.{UUID}.svs"),
        ("a2", f"TCGA-B0-4712-01A-01-TS1.{UUID}.svs"),  # frozen: skipped
        ("a3", f"TCGA-B0-4712-11A-01-DX1.{UUID}.svs"),  # normal: skipped
        ("a4", f"TCGA-B0-4712-01Z-00-DX1.{UUID}.svs"),  # a second copy
        ("b1", f"TCGA-B0-5094-01Z-00-DX1.{UUID}.svs"),
        ("c1", f"TCGA-BQ-5887-01Z-00-DX1.{UUID}.svs"),
        ("c2", f"TCGA-BQ-5887-01Z-00-DX2.{UUID}.svs"),
        ("d1", f"TCGA-KL-8326-01Z-00-DX1.{UUID}.svs"),
        ("e1", f"TCGA-ZZ-0001-01Z-00-DX1.{UUID}.svs"),  # no clinical record
        ("f1", "overview.svs"),
    ):  # no barcode
        touch(tmp_path / "slides" / folder / name)
    touch(tmp_path / "slides" / "MANIFEST.txt")
    for case in (
        "TCGA-CJ-4634",
        "TCGA-CZ-5982",
        "TCGA-A3-3308",
        "TCGA-B8-5158",
        "TCGA-AK-3456",
        "TCGA-B2-3923",
        "TCGA-BP-4162",
        "TCGA-B0-4700",
    ):
        touch(tmp_path / "slides" / case / f"{case}-01Z-00-DX1.{UUID}.svs")
    ct = tmp_path / "ct"
    touch(ct / "TCGA-B0-4712.nii.gz")
    touch(ct / "TCGA-KIRC" / "TCGA-B0-5094" / SERIES / "1-001.dcm")
    touch(ct / "TCGA-KIRC" / "TCGA-B0-5094" / SERIES / "1-002.dcm")
    for series in ("3.000000-arterial-1", "4.000000-venous-2"):  # two series: ambiguous
        touch(ct / "TCGA-KIRP" / "TCGA-BQ-5887" / "01-01-2000-NA-CT-1" / series / "1-1.dcm")
    touch(ct / "TCGA-KL-8326_ct.nii.gz")  # CT without a mask
    for name in ("TCGA-B0-4712_mask.nii.gz", "TCGA-B0-5094.nii.gz", "TCGA-BQ-5887.nii.gz"):
        touch(tmp_path / "masks" / name)
    return tmp_path


def make(tmp_path: Path, clinical: Path, out: str = "manifest.csv", **options) -> Path:
    table = read_clinical([clinical])
    cohort = build_cohort(
        table,
        slides=scan_slides(tmp_path / "slides"),
        volumes=scan_volumes(tmp_path / "ct", dicom=True),
        masks=scan_volumes(tmp_path / "masks", dicom=False),
        require=options.pop("require", "any"),
    )
    manifest, _ = write_manifest(cohort, table, tmp_path / out, **options)
    return manifest


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_clinical(tmp_path: Path, form: str) -> Path:
    if form == "json":
        path = tmp_path / "clinical.cases_selection.json"
        path.write_text(clinical_json())
    elif form == "tar.gz":
        path = tmp_path / "clinical.cases_selection.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            for name, text in (
                ("clinical.tsv", tsv_text(clinical_rows(dotted=False))),
                ("exposure.tsv", "case_id\tcigarettes_per_day\n"),
            ):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        path = tmp_path / f"clinical_{form}.tsv"
        path.write_text(tsv_text(clinical_rows(dotted=form == "dotted")))
    return path


def test_manifest_matches_the_hand_made_table_and_validates(cohort_dir):
    manifest = make(cohort_dir, write_clinical(cohort_dir, "bare"))
    rows = read_rows(manifest)
    got = [
        (
            r["subject_id"],
            int(r["time"]),
            int(r["event"]),
            r["slide_paths"].split(";") if r["slide_paths"] else [],
            r["volume_paths"],
            r["mask_path"],
            r["project_id"],
        )
        for r in rows
    ]
    assert got == EXPECTED
    assert all(r["patient_id"] == r["subject_id"] and r["time_unit"] == "days" for r in rows)
    assert [r["centre"] for r in rows] == ["B0", "B0", "BQ", "KL"]  # tissue source sites
    loaded = load_manifest(manifest)  # the project's own validator, files included
    assert [s.has_radiology for s in loaded.subjects] == [True, True, False, False]
    assert loaded.subjects[1].volume_paths[0].is_dir()  # the DICOM series folder


def test_every_left_out_case_is_reported_with_its_reason(cohort_dir):
    manifest = make(cohort_dir, write_clinical(cohort_dir, "bare"))
    report = {r["case_id"]: r for r in read_rows(cohort_dir / "manifest.cases.csv")}
    assert set(report) == set(CASES) | {"TCGA-ZZ-0001"}
    for case, reason in LEFT_OUT.items():
        assert report[case]["in_manifest"] == "0" and reason in report[case]["problems"], case
    written = {r["subject_id"] for r in read_rows(manifest)}
    assert written == {case for case, *_ in EXPECTED} and not written & set(LEFT_OUT)
    assert "2 CT volumes" in report["TCGA-BQ-5887"]["notes"]
    assert "CT without a tumour mask" in report["TCGA-KL-8326"]["notes"]
    assert "900 is after days_to_death 700" in report["TCGA-KL-8326"]["notes"]
    # a Dead case without days_to_death keeps no time at all: its follow-up is not used
    assert report["TCGA-CJ-4634"]["time_days"] == report["TCGA-CJ-4634"]["event"] == ""


def test_skipped_and_unrecognised_slides(cohort_dir):
    scan = scan_slides(cohort_dir / "slides")
    assert sorted((p.parent.name, reason) for p, reason in scan.skipped) == [
        ("a2", "TS slide, not diagnostic"),
        ("a3", "sample type 11, not tumour"),
        ("a4", "file name seen before"),
    ]
    assert [p.name for p in scan.unrecognised] == ["overview.svs"]
    assert len(scan.by_case["TCGA-BQ-5887"]) == 2


@pytest.mark.parametrize("form", ["dotted", "json", "tar.gz"])
def test_every_gdc_form_gives_the_same_manifest_and_report(cohort_dir, form):
    reference = make(cohort_dir, write_clinical(cohort_dir, "bare"), "reference.csv")
    other = make(cohort_dir, write_clinical(cohort_dir, form), "other.csv")
    assert other.read_text() == reference.read_text()
    assert (cohort_dir / "other.cases.csv").read_text() == (
        cohort_dir / "reference.cases.csv"
    ).read_text()


def test_row_order_changes_nothing(cohort_dir):
    reference = make(cohort_dir, write_clinical(cohort_dir, "bare"), "reference.csv")
    rows = clinical_rows(dotted=False)
    body = rows[1:]
    random.Random(0).shuffle(body)
    shuffled = cohort_dir / "shuffled.tsv"
    shuffled.write_text(tsv_text([rows[0], *body]))
    assert make(cohort_dir, shuffled, "shuffled.csv").read_text() == reference.read_text()


def test_months_and_years_are_days_over_a_twelfth_and_a_whole_julian_year(cohort_dir):
    clinical = write_clinical(cohort_dir, "bare")
    days = {case: float(t) for case, t, *_ in EXPECTED}
    for unit, length in (("months", 365.25 / 12), ("years", 365.25)):
        rows = read_rows(make(cohort_dir, clinical, f"{unit}.csv", time_unit=unit))
        assert {r["time_unit"] for r in rows} == {unit}
        for r in rows:
            assert float(r["time"]) == pytest.approx(days[r["subject_id"]] / length, abs=5e-5)


def test_require_both_keeps_cases_with_both_modalities(cohort_dir):
    rows = read_rows(make(cohort_dir, write_clinical(cohort_dir, "bare"), require="both"))
    assert [r["subject_id"] for r in rows] == ["TCGA-B0-4712", "TCGA-B0-5094"]
    report = {r["case_id"]: r for r in read_rows(cohort_dir / "manifest.cases.csv")}
    assert "--require both, has pathology" in report["TCGA-KL-8326"]["problems"]


def test_covariates_and_project_label(cohort_dir):
    manifest = make(
        cohort_dir,
        write_clinical(cohort_dir, "dotted"),
        covariates=["age_at_index", "gender"],
        project_label=True,
    )
    subjects = load_manifest(manifest).subjects
    assert [s.label for s in subjects] == ["KIRC", "KIRC", "KIRP", "KICH"]
    assert subjects[0].covariates["age_at_index"] == 58.0
    assert subjects[0].covariates["gender"] == "male"


def test_ambiguous_or_unknown_covariates_are_errors_naming_the_columns(cohort_dir):
    clinical = write_clinical(cohort_dir, "dotted")
    with pytest.raises(ClinicalError, match="cases.submitter_id, demographic.submitter_id"):
        make(cohort_dir, clinical, covariates=["submitter_id"])
    with pytest.raises(ClinicalError, match="no column 'stage'"):
        make(cohort_dir, clinical, covariates=["stage"])
    with pytest.raises(ValueError, match="covariates"):
        make(cohort_dir, clinical, covariates=["time"])


@pytest.mark.parametrize(
    "header, words",
    [
        (
            ["case_submitter_id", "days_to_death", "days_to_last_follow_up"],
            "no vital status column",
        ),
        (
            ["patient", "vital_status", "days_to_death", "days_to_last_follow_up"],
            "no case id column",
        ),
    ],
)
def test_a_file_without_the_needed_columns_is_refused(tmp_path, header, words):
    path = tmp_path / "clinical.tsv"
    path.write_text(tsv_text([header, ["TCGA-B0-4712", *(["1"] * (len(header) - 1))]]))
    with pytest.raises(ClinicalError, match=words):
        read_clinical([path])


def test_command_writes_validates_and_refuses_to_overwrite(cohort_dir, capsys):
    from radiograph.cli import main

    clinical = write_clinical(cohort_dir, "bare")
    args = [
        "tcga-manifest",
        "--clinical",
        str(clinical),
        "--slides",
        str(cohort_dir / "slides"),
        "--ct",
        str(cohort_dir / "ct"),
        "--masks",
        str(cohort_dir / "masks"),
        "--out",
        str(cohort_dir / "manifest.csv"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "manifest: 4 case(s): pathology+radiology 2, pathology only 2" in out
    assert f"left out: {len(LEFT_OUT)} case(s)" in out
    for case, reason in LEFT_OUT.items():
        assert f"{case}: " in out and reason in out
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main([a for a in args if a not in ("--masks", str(cohort_dir / "masks"))]) == 2
    assert "--ct and --masks go together" in capsys.readouterr().err
    (cohort_dir / "no_slides").mkdir()
    no_case = [
        "tcga-manifest",
        "--clinical",
        str(clinical),
        "--slides",
        str(cohort_dir / "no_slides"),
        "--out",
        str(cohort_dir / "empty.csv"),
    ]
    assert main(no_case) == 1 and "no rows" in capsys.readouterr().err


def case(**values: tuple[str, ...]) -> ClinicalCase:
    return ClinicalCase("TCGA-B0-0001", {k.replace("__", "."): v for k, v in values.items()}, 1)


@pytest.mark.parametrize(
    "record, time, event, words",
    [
        (
            case(
                demographic__vital_status=("Dead",),
                demographic__days_to_death=("538",),
                diagnoses__days_to_last_follow_up=("soon",),
            ),
            538.0,
            1,
            "'soon' is not a number",
        ),
        (
            case(
                demographic__vital_status=("Alive", "Dead"),
                diagnoses__days_to_last_follow_up=("9",),
            ),
            None,
            None,
            "rows disagree on vital_status: Alive, Dead",
        ),
        (case(diagnoses__days_to_last_follow_up=("9",)), None, None, "vital_status is empty"),
        (case(vital_status=("alive",), days_to_last_follow_up=("12.5",)), 12.5, 0, ""),
        (
            case(vital_status=("Alive",), days_to_last_follow_up=("100", "120")),
            None,
            None,
            "rows disagree on days_to_last_follow_up: 100, 120",
        ),
    ],
)
def test_overall_survival_of_single_records(record, time, event, words):
    survival = overall_survival(record)
    assert (survival.time_days, survival.event) == (time, event)
    assert words in "; ".join(survival.problems + survival.notes)
