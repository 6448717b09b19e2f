"""The cohort manifest: one CSV row per subject, validated all at once.

Columns (see ``data_manifests/README.md`` for the full schema):

=====================  ========  ===========================================================
column                 required  meaning
=====================  ========  ===========================================================
subject_id             yes       unique per row
patient_id             yes       several subjects may share a patient (kept in one CV fold)
centre                 yes       acquiring centre / site
time                   yes       follow-up time, > 0, in ``time_unit``
time_unit              yes       days | months | years (one unit for the whole manifest)
event                  yes       1 = event (death) observed, 0 = censored
label                  no        classification target (any string / integer class name)
slide_paths            no        H&E slide paths separated by ';'
volume_paths           no        CT/MRI volume paths (co-registered channels) separated by ';'
                                 (NIfTI, NRRD or a DICOM series folder)
mask_path              no        tumour mask (required when volume_paths is given)
mpp                    no        microns per pixel override for this row's slides
radiology_modality     no        CT (default) | MR
any other column       no        a covariate (kept as-is in ``Subject.covariates``)
=====================  ========  ===========================================================

Paths are relative to the manifest's folder (absolute paths are kept).
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REQUIRED_COLUMNS = ("subject_id", "patient_id", "centre", "time", "time_unit", "event")
OPTIONAL_COLUMNS = (
    "label",
    "slide_paths",
    "volume_paths",
    "mask_path",
    "mpp",
    "radiology_modality",
)
TIME_UNITS = ("days", "months", "years")
RADIOLOGY_MODALITIES = ("CT", "MR")
PATH_SEPARATOR = ";"


@dataclass(frozen=True)
class Problem:
    """One validation problem.

    Attributes:
        line: line number in the CSV file (the header is line 1), or None for file-level
            problems such as a missing column.
        subject_id: the row's subject id ("" when unknown).
        column: the column concerned.
        message: what is wrong and, where possible, how to fix it.
    """

    line: int | None
    subject_id: str
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        subject = f" subject {self.subject_id!r}" if self.subject_id else ""
        return f"{where}{subject} [{self.column}]: {self.message}"


@dataclass(frozen=True)
class Subject:
    """One validated manifest row; paths are absolute."""

    subject_id: str
    patient_id: str
    centre: str
    time: float
    event: int
    label: str | None = None
    covariates: dict[str, Any] = field(default_factory=dict)
    slide_paths: tuple[Path, ...] = ()
    volume_paths: tuple[Path, ...] = ()
    mask_path: Path | None = None
    mpp: float | None = None
    radiology_modality: str = "CT"

    @property
    def has_pathology(self) -> bool:
        return bool(self.slide_paths)

    @property
    def has_radiology(self) -> bool:
        return bool(self.volume_paths)


@dataclass(frozen=True)
class Manifest:
    """A validated cohort."""

    path: Path
    time_unit: str
    subjects: tuple[Subject, ...]

    def __len__(self) -> int:
        return len(self.subjects)

    def by_id(self) -> dict[str, Subject]:
        return {s.subject_id: s for s in self.subjects}

    def summary(self) -> str:
        """A short human-readable summary: subjects, events, modalities per subject."""
        n = len(self.subjects)
        events = sum(s.event for s in self.subjects)
        patients = len({s.patient_id for s in self.subjects})
        both = sum(s.has_pathology and s.has_radiology for s in self.subjects)
        path_only = sum(s.has_pathology and not s.has_radiology for s in self.subjects)
        rad_only = sum(s.has_radiology and not s.has_pathology for s in self.subjects)
        none = n - both - path_only - rad_only
        times = sorted(s.time for s in self.subjects)
        median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
        centres = Counter(s.centre for s in self.subjects)
        lines = [
            f"{self.path}: OK",
            f"  subjects: {n} ({patients} patients, centres: "
            + ", ".join(f"{c}={k}" for c, k in sorted(centres.items()))
            + ")",
            f"  events: {events} ({100.0 * events / n:.1f}%), censored: {n - events}",
            f"  median follow-up: {median:g} {self.time_unit}",
            f"  modalities: pathology+radiology {both}, pathology only {path_only}, "
            f"radiology only {rad_only}, none {none}",
        ]
        labels = Counter(s.label for s in self.subjects if s.label is not None)
        if labels:
            lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
        return "\n".join(lines)


class ManifestError(ValueError):
    """The manifest has problems; ``problems`` lists every one, ``str()`` is the report."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path = path
        self.problems = problems
        report = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s)\n{report}")


def load_manifest(path: str | os.PathLike, *, check_files: bool = True) -> Manifest:
    """Read and validate a manifest; every later stage goes through this.

    Args:
        path: the CSV file.
        check_files: also check that every referenced file exists.

    Raises:
        ManifestError: listing every problem found (not only the first).
    """
    manifest, problems = validate_manifest(path, check_files=check_files)
    if problems:
        raise ManifestError(Path(path), problems)
    assert manifest is not None
    return manifest


def validate_manifest(
    path: str | os.PathLike, *, check_files: bool = True
) -> tuple[Manifest | None, list[Problem]]:
    """Check a manifest completely. Returns (manifest or None, problems)."""
    path = Path(path)
    if not path.is_file():
        return None, [Problem(None, "", "-", f"manifest file not found: {path}")]
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        return None, [Problem(None, "", "-", f"not a readable CSV file: {err}")]
    table.columns = [c.strip() for c in table.columns]

    problems: list[Problem] = [
        Problem(None, "", column, "required column is missing")
        for column in REQUIRED_COLUMNS
        if column not in table.columns
    ]
    if problems:
        return None, problems
    if table.empty:
        return None, [Problem(None, "", "-", "the manifest has no rows")]

    root = path.parent
    covariate_columns = [
        c for c in table.columns if c not in REQUIRED_COLUMNS and c not in OPTIONAL_COLUMNS
    ]
    subjects: list[Subject] = []
    time_units: set[str] = set()
    seen_ids: dict[str, int] = {}
    for index, row in table.iterrows():
        line = int(index) + 2
        cells = {k: str(v).strip() for k, v in row.items()}
        sid = cells["subject_id"]
        before = len(problems)

        def report(column: str, message: str) -> None:
            problems.append(Problem(line, sid, column, message))

        if not sid:
            report("subject_id", "empty subject id")
        elif sid in seen_ids:
            report("subject_id", f"duplicate subject id (first on line {seen_ids[sid]})")
        else:
            seen_ids[sid] = line
        if not cells["patient_id"]:
            report("patient_id", "empty patient id")
        time = _parse_time(cells["time"], report)
        event = _parse_event(cells["event"], report)
        unit = cells["time_unit"].lower()
        if unit not in TIME_UNITS:
            report("time_unit", f"{cells['time_unit']!r} is not one of {', '.join(TIME_UNITS)}")
        else:
            time_units.add(unit)
        mpp = _parse_mpp(cells.get("mpp", ""), report)
        modality = (cells.get("radiology_modality", "") or "CT").upper()
        if modality not in RADIOLOGY_MODALITIES:
            report("radiology_modality", f"{modality!r} is not one of CT, MR")

        slides = _paths(cells.get("slide_paths", ""), root)
        volumes = _paths(cells.get("volume_paths", ""), root)
        masks = _paths(cells.get("mask_path", ""), root)
        if len(masks) > 1:
            report("mask_path", "give one mask path (found several separated by ';')")
        if volumes and not masks:
            report("mask_path", "volume_paths is given but mask_path is empty")
        if masks and not volumes:
            report("volume_paths", "mask_path is given but volume_paths is empty")
        if check_files:
            for column, paths in (("slide_paths", slides), ("volume_paths", volumes),
                                  ("mask_path", masks)):
                for p in paths:
                    if not p.exists():
                        report(column, f"file does not exist: {p}")

        if len(problems) == before:
            subjects.append(
                Subject(
                    subject_id=sid,
                    patient_id=cells["patient_id"],
                    centre=cells["centre"],
                    time=time,  # type: ignore[arg-type]
                    event=event,  # type: ignore[arg-type]
                    label=cells.get("label") or None,
                    covariates={c: _maybe_number(cells[c]) for c in covariate_columns},
                    slide_paths=tuple(slides),
                    volume_paths=tuple(volumes),
                    mask_path=masks[0] if masks else None,
                    mpp=mpp,
                    radiology_modality=modality,
                )
            )

    if len(time_units) > 1:
        problems.append(
            Problem(None, "", "time_unit", f"mixed time units {sorted(time_units)}; use one")
        )
    problems.extend(_label_conflicts(table))
    if problems:
        return None, problems
    return Manifest(path=path, time_unit=time_units.pop(), subjects=tuple(subjects)), []


def _parse_time(text: str, report) -> float | None:
    try:
        value = float(text)
    except ValueError:
        report("time", f"not a number: {text!r}")
        return None
    if math.isnan(value) or math.isinf(value):
        report("time", f"time is {text!r}; give a finite follow-up time")
    elif value <= 0:
        report("time", f"time must be > 0, got {value:g}")
    else:
        return value
    return None


def _parse_event(text: str, report) -> int | None:
    try:
        value = float(text)
    except ValueError:
        report("event", f"not a number: {text!r} (use 1 = event, 0 = censored)")
        return None
    if value not in (0.0, 1.0):
        report("event", f"event must be 0 or 1, got {text!r}")
        return None
    return int(value)


def _parse_mpp(text: str, report) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        report("mpp", f"not a number: {text!r}")
        return None
    if not value > 0 or math.isinf(value):
        report("mpp", f"mpp must be a positive number of microns per pixel, got {text!r}")
        return None
    return value


def _paths(cell: str, root: Path) -> list[Path]:
    parts = [p.strip() for p in cell.split(PATH_SEPARATOR)] if cell else []
    return [(root / p) if not os.path.isabs(p) else Path(p) for p in parts if p]


def _maybe_number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _label_conflicts(table: pd.DataFrame) -> list[Problem]:
    if "label" not in table.columns:
        return []
    labels: dict[str, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for index, row in table.iterrows():
        label = str(row["label"]).strip()
        if label:
            labels[str(row["patient_id"]).strip()][label].append(
                (int(index) + 2, str(row["subject_id"]).strip())
            )
    problems = []
    for patient, by_label in labels.items():
        if len(by_label) > 1:
            detail = "; ".join(
                f"{label!r} on " + ", ".join(f"line {ln} ({sid})" for ln, sid in rows)
                for label, rows in sorted(by_label.items())
            )
            first_line, first_sid = min(r for rows in by_label.values() for r in rows)
            problems.append(
                Problem(first_line, first_sid, "label",
                        f"patient {patient!r} has subjects with different labels: {detail}")
            )
    return problems
