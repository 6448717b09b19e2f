"""``radiograph validate`` on a corpus of bad manifests (issue 15, points 5 and 8): each fault
gives exit status 1 and a message with its line (the header is line 1) and column; identifiers
that are not safe file names never reach a path; bad numeric options stop at parsing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from radiograph.argtypes import below_one, non_negative_int, positive_float, positive_int
from radiograph.cli import main
from radiograph.io.paths import MAX_NAME_LENGTH, inside, safe_name
from radiograph.manifest import DEFAULT_FOLDS, validate_manifest

HEADER = (
    "subject_id,patient_id,centre,time,time_unit,event,label,slide_paths,volume_paths,mask_path"
)
FILES = ("s1.tiff", "s2.tiff", "ct1.nii.gz", "ct2.nii.gz", "m1.nii.gz", "a/s1.tiff", "CON.svs")


def row(
    sid: str = "A",
    patient: str = "P1",
    time: str = "100",
    unit: str = "days",
    event: str = "1",
    label: str = "",
    slides: str = "s1.tiff",
    volumes: str = "ct1.nii.gz",
    mask: str = "m1.nii.gz",
) -> str:
    return ",".join([sid, patient, "C1", time, unit, event, label, slides, volumes, mask])


def cohort(n: int = 6, **change) -> list[str]:
    """``n`` good rows (subjects S0.., one patient each, events on every other row)."""
    return [
        row(**{"sid": f"S{i}", "patient": f"P{i}", "event": str(i % 2), **change}) for i in range(n)
    ]


def write(folder: Path, text: str | bytes) -> Path:
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    path = folder / "manifest.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def lines(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


# case -> (file content, words that one line of the report must hold)
BAD = {
    "empty file": (b"", ["file [-]", "the file is empty (0 bytes"]),
    "blank file": (b" \n\n", ["file [-]", "the file is empty (3 bytes"]),
    "header only": (lines(), ["line 1 [-]", "no rows (only a header)"]),
    "semicolon separated": (
        lines(*cohort()).replace(",", ";"),
        ["line 1 [-]", "looks ;-separated", "comma-separated"],
    ),
    "tab separated": (lines(*cohort()).replace(",", "\t"), ["line 1 [-]", "looks tab-separated"]),
    "column twice": (
        lines(*[r + ",1" for r in cohort()], header=HEADER + ",time"),
        ["line 1 [time]", "appears 2 times"],
    ),
    "not UTF-8": (
        lines(*cohort()).encode().replace(b"S1,", b"S\xe91,"),
        ["line 3 [-]", "not UTF-8 text (byte 0xe9"],
    ),
    "too many cells": (
        lines(*cohort()[:2], row("S9") + ",extra,cells"),
        ["line 4 subject 'S9' [-]", "12 cells but the header has 10 columns"],
    ),
    "subject escapes the run folder": (
        lines(*cohort(), row("../../../ESCAPED")),
        ["line 8", "[subject_id]", "path separator '/'"],
    ),
    "subject with a slash": (lines(row("a/b"), *cohort()), ["line 2", "[subject_id]", "'/'"]),
    "subject with a backslash": (
        lines(row("a\\b"), *cohort()),
        ["line 2", "[subject_id]", "path separator '\\\\'"],
    ),
    "subject is ..": (lines(*cohort(), row("..")), ["line 8", "[subject_id]", "starts with a dot"]),
    "hidden subject": (
        lines(*cohort(), row(".S9")),
        ["line 8", "[subject_id]", "starts with a dot"],
    ),
    "control character": (
        lines(*cohort(), row("S\x079")),
        ["line 8", "[subject_id]", "control character (U+0007)"],
    ),
    "reserved name": (lines(*cohort(), row("con")), ["line 8", "[subject_id]", "reserves (CON)"]),
    "reserved name with extension": (
        lines(*cohort(), row("LPT1.data")),
        ["line 8", "[subject_id]", "reserves (LPT1)"],
    ),
    "trailing dot": (
        lines(*cohort(), row("S9.")),
        ["line 8", "[subject_id]", "ends with a space or a dot"],
    ),
    "Windows character": (lines(*cohort(), row("S:9")), ["line 8", "[subject_id]", "':'"]),
    "too long": (
        lines(*cohort(), row("S" * (MAX_NAME_LENGTH + 1))),
        ["line 8", "[subject_id]", f"at most {MAX_NAME_LENGTH}"],
    ),
    "unsafe patient": (
        lines(*cohort(), row("S9", patient="P/9")),
        ["line 8 subject 'S9' [patient_id]", "patient id 'P/9'", "'/'"],
    ),
    "reserved slide name": (
        lines(*cohort(), row("S9", slides="CON.svs")),
        ["line 8 subject 'S9' [slide_paths]", "slide name 'CON'", "rename"],
    ),
    "same slide twice": (
        lines(*cohort(), row("S9", slides="s1.tiff;s2.tiff;./s1.tiff")),
        ["line 8 subject 'S9' [slide_paths]", "listed twice", "s1.tiff"],
    ),
    "slides sharing a name": (
        lines(*cohort(), row("S9", slides="s1.tiff;a/s1.tiff")),
        ["line 8 subject 'S9' [slide_paths]", "share the name 's1'"],
    ),
    "same volume twice": (
        lines(*cohort(), row("S9", volumes="ct1.nii.gz;ct1.nii.gz")),
        ["line 8 subject 'S9' [volume_paths]", "listed twice"],
    ),
    "mask among the volumes": (
        lines(*cohort(), row("S9", volumes="ct1.nii.gz;m1.nii.gz")),
        ["line 8 subject 'S9' [mask_path]", "also listed in volume_paths"],
    ),
    "mixed time units": (
        lines(*cohort(), row("S9", unit="months")),
        [
            "line 8 subject 'S9' [time_unit]",
            "mixed time units: 'months' here but 'days' on 6 row(s) from line 2",
        ],
    ),
    "blank lines count": (
        lines(cohort()[0], "", "", row("S0", patient="P9")),
        ["line 5 subject 'S0' [subject_id]", "duplicate subject id (first on line 2)"],
    ),
    "quoted cell over two lines": (
        lines('"S0\nX",P0,C1,100,days,1,,s1.tiff,,', row("S9", time="-1")),
        ["line 4 subject 'S9' [time]", "> 0"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifest_fails_validate_with_line_and_column(tmp_path, capsys, case):
    text, words = BAD[case]
    assert main(["validate", str(write(tmp_path, text))]) == 1
    out = capsys.readouterr().out
    assert any(all(w in line for w in words) for line in out.splitlines()), out
    assert "Traceback" not in out


def test_good_corpus_rows_validate(tmp_path, capsys):
    """The rows the bad cases start from are valid: each case fails for its fault alone."""
    assert main(["validate", str(write(tmp_path, lines(*cohort())))]) == 0
    assert "subjects: 6" in capsys.readouterr().out


@pytest.mark.parametrize(
    "label, advice",
    [("", "check the column (1 = event observed"), ("1", "only a classification task")],
)
def test_all_censored_cohort_is_a_warning(tmp_path, capsys, label, advice):
    """The manifest does not know the task: a classification study or a feature extraction
    can use an all-censored cohort, so validate passes with a warning (survival training then
    refuses the cohort, naming the column)."""
    text = lines(*cohort(event="0", label=label))
    assert main(["validate", str(write(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert (
        "WARNING file [event]: every subject is censored (event = 0 on all 6 rows): survival "
        "training will refuse this cohort"
    ) in out
    assert advice in out


def test_default_folds_follow_the_training_config():
    from dataclasses import fields

    from radiograph.train.config import TrainConfig

    assert {f.name: f.default for f in fields(TrainConfig)}["folds"] == DEFAULT_FOLDS


def test_fewer_events_than_folds_is_a_warning_with_the_counts(tmp_path, capsys):
    events = DEFAULT_FOLDS - 2
    text = lines(*[row(f"S{i}", f"P{i}", event=str(int(i < events))) for i in range(10)])
    manifest, problems = validate_manifest(write(tmp_path, text))
    assert problems == [] and len(manifest.warnings) == 1
    assert main(["validate", str(tmp_path / "manifest.csv")]) == 0
    out = capsys.readouterr().out
    assert f"{events} event(s) among 10 subjects, fewer than the default {DEFAULT_FOLDS}" in out


def test_every_problem_carries_its_line(tmp_path):
    """Row problems have the row's line; only whole-file and whole-cohort problems have none."""
    text = lines(
        row("a/b"),
        row("S1", time="x"),
        row("S2", unit="years"),
        row("S3"),
        row("S4", slides="s1.tiff;s1.tiff"),
    )
    _, problems = validate_manifest(write(tmp_path, text))
    assert sorted((p.line, p.column) for p in problems) == [
        (2, "subject_id"),
        (3, "time"),
        (4, "time_unit"),
        (6, "slide_paths"),
    ]


def test_unsafe_subject_stops_extraction_before_any_file_is_written(tmp_path, capsys):
    """Issue 15, point 5: ``../../../ESCAPED`` used to write outside --out."""
    run = tmp_path / "deep" / "er" / "run"
    path = write(tmp_path, lines(row("../../../ESCAPED", slides="", volumes="ct1.nii.gz")))
    status = main(["extract-radiology", "--manifest", str(path), "--out", str(run)])
    assert status == 1
    err = capsys.readouterr().err
    assert "line 2 subject '../../../ESCAPED' [subject_id]" in err
    assert not list(tmp_path.rglob("*ESCAPED*")) and not list(tmp_path.rglob("*.h5"))


# ----------------------------------------------------------------------------- names, paths
NAMES = {
    "TCGA-B0-4712": None,
    "syn003": None,
    "a..b": None,
    "x.svs": None,
    "COM10": None,
    "CONSOLE": None,
    "": "is empty",
    "a/b": "'/'",
    "a\\b": "'\\\\'",
    ".": "starts with a dot",
    "..": "starts with a dot",
    ".x": "starts with a dot",
    "a\tb": "U+0009",
    "a\x7fb": "U+007F",
    "nul": "reserves (NUL)",
    "Com3.txt": "reserves (COM3)",
    "aux .x": "reserves (AUX)",
    "x ": "ends with a space",
    "x.": "ends with",
    "a?b": "'?'",
    "é" * MAX_NAME_LENGTH: None,
    "x" * (MAX_NAME_LENGTH + 1): "129 characters",
}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_safe_name(name):
    reason = safe_name(name)
    if NAMES[name] is None:
        assert reason is None, reason
    else:
        assert reason is not None and NAMES[name] in reason, reason


def test_inside_accepts_the_run_folder_and_refuses_escapes(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    assert inside(root, root / "features" / "S1.h5") == root / "features" / "S1.h5"
    assert inside(root, root) == root
    assert inside(str(root), root / "x" / ".." / "S1.h5") == root / "x" / ".." / "S1.h5"
    for escape in (root / ".." / "ESCAPED", root / "a" / ".." / ".." / "b", tmp_path / "runner"):
        with pytest.raises(ValueError, match=rf"{escape.name}.*outside the run folder {root}"):
            inside(root, escape)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the run folder"):
        inside(root, root / "link" / "S1.h5")


# ----------------------------------------------------------------------------- arguments
ARGUMENTS = [
    (["extract-pathology", "--batch-size", "0"], "--batch-size: must be an integer > 0, got '0'"),
    (["extract-pathology", "--mpp", "0"], "--mpp: must be a finite number > 0, got '0'"),
    (["extract-pathology", "--mpp", "-0.25"], "--mpp: must be a finite number > 0"),
    (["extract-pathology", "--mpp", "nan"], "--mpp: must be a finite number > 0, got 'nan'"),
    (["extract-pathology", "--target-mpp", "0"], "--target-mpp: must be a finite number > 0"),
    (["extract-pathology", "--patch-size", "-224"], "--patch-size: must be an integer > 0"),
    (["extract-pathology", "--num-workers", "-1"], "--num-workers: must be an integer >= 0"),
    (["extract-radiology", "--batch-size", "0"], "--batch-size: must be an integer > 0"),
    (["extract-radiology", "--spacing", "0"], "--spacing: must be a finite number > 0"),
    (["extract-radiology", "--unit-size", "-8"], "--unit-size: must be a finite number > 0"),
    (["build-graphs", "--k", "0"], "--k: must be an integer > 0"),
    (["build-graphs", "--lambda-h", "1"], "--lambda-h: must be a number in [0, 1), got '1'"),
    (["build-graphs", "--radius", "inf"], "--radius: must be a finite number > 0"),
]
REQUIRED = {
    "extract-pathology": ["--manifest", "m.csv", "--out", "o"],
    "extract-radiology": ["--manifest", "m.csv", "--out", "o"],
    "build-graphs": ["--features", "f", "--out", "o"],
}


@pytest.mark.parametrize("argv, message", ARGUMENTS, ids=[" ".join(a) for a, _ in ARGUMENTS])
def test_bad_number_option_stops_at_parsing(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main([argv[0], *REQUIRED[argv[0]], *argv[1:]])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_argument_types_accept_their_boundaries():
    assert positive_int("1") == 1 and non_negative_int("0") == 0
    assert positive_float("1e-3") == 0.001 and below_one("0") == 0.0
