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
roi_paths              no        QuPath GeoJSON tumour ROIs separated by ';', one entry per
                                 slide in the order of slide_paths (empty: that slide has none)
<name>_time,           no        a further survival endpoint (e.g. os_time, os_event,
<name>_event                     rfs_time, rfs_event), checked as time and event; both cells
                                 empty: the endpoint is unknown for that subject
any other column       no        a covariate (kept as-is in ``Subject.covariates``)
=====================  ========  ===========================================================

Paths are relative to the manifest's folder (absolute paths are kept). Subject, patient and
slide identifiers name output files, so each must be a safe file name
(:func:`radiograph.io.paths.safe_name`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radiograph.io.paths import safe_name

REQUIRED_COLUMNS = ("subject_id", "patient_id", "centre", "time", "time_unit", "event")
OPTIONAL_COLUMNS = (
    "label",
    "slide_paths",
    "volume_paths",
    "mask_path",
    "mpp",
    "radiology_modality",
    "roi_paths",
)
#: Endpoints that end no later than overall survival (``os``): their time may not exceed it.
BEFORE_OS_ENDPOINTS = ("rfs", "dfs", "pfs", "efs", "ttp")
TIME_UNITS = ("days", "months", "years")
RADIOLOGY_MODALITIES = ("CT", "MR")
PATH_SEPARATOR = ";"
#: Separators a spreadsheet may have written instead of commas, and how a message names them.
OTHER_DELIMITERS = {";": ";-separated", "\t": "tab-separated", "|": "|-separated"}
#: Outer cross-validation folds of the default training config (``TrainConfig.folds``): a
#: cohort with fewer events than this leaves some test folds without an event.
DEFAULT_FOLDS = 5

Report = Callable[[str, str], None]


@dataclass(frozen=True)
class Problem:
    """One validation problem.

    Attributes:
        line: line number in the CSV file where the row starts (the header is line 1, blank
            lines count), or None for problems of the whole file or cohort (file not found,
            empty file, every subject censored).
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
    roi_paths: tuple[Path | None, ...] = ()
    endpoints: dict[str, tuple[float, int]] = field(default_factory=dict)
    line: int | None = None

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
    warnings: tuple[Problem, ...] = ()

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
        lines += [f"  WARNING {w}" for w in self.warnings]
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
    path: str | os.PathLike, *, check_files: bool = True, keep_valid_rows: bool = False
) -> tuple[Manifest | None, list[Problem]]:
    """Check a manifest completely. Returns (manifest or None, problems).

    With ``keep_valid_rows``, when every problem belongs to a row (it has a line and a
    subject), the manifest of the other subjects is returned beside the problems, so a study
    can leave those subjects out and go on; a problem of the whole file still gives None.

    Every problem found is returned (not only the first), each with the line its row starts on.
    Findings about the events, which matter only to a survival task the manifest does not
    know of (every subject censored; fewer events than the default number of folds), are not
    problems: they are in ``Manifest.warnings`` and the summary, and survival training refuses
    an all-censored cohort itself.
    """
    path = Path(path)
    if not path.is_file():
        return None, [Problem(None, "", "-", f"manifest file not found: {path}")]
    header, rows, problems = _read_rows(path)
    if problems:
        return None, problems

    root = path.parent
    endpoints = endpoint_names(header)
    endpoint_columns = {f"{e}_{part}" for e in endpoints for part in ("time", "event")}
    covariate_columns = [
        c
        for c in header
        if c
        and c not in REQUIRED_COLUMNS
        and c not in OPTIONAL_COLUMNS
        and c not in endpoint_columns
    ]
    subjects: list[Subject] = []
    seen_ids: dict[str, int] = {}
    for row in rows:
        subject = _check_row(
            row, root, covariate_columns, seen_ids, check_files, problems, endpoints
        )
        if subject is not None:
            subjects.append(subject)
    problems.extend(_mixed_time_units(rows))
    problems.extend(_label_conflicts(rows))
    if problems and not (
        keep_valid_rows and all(p.line is not None and p.subject_id for p in problems)
    ):
        return None, problems
    failed = {p.subject_id for p in problems}
    subjects = [s for s in subjects if s.subject_id not in failed]
    if not subjects:
        return None, problems
    return Manifest(
        path=path,
        time_unit=rows[0].cells["time_unit"].lower(),
        subjects=tuple(subjects),
        warnings=tuple(_event_warnings(subjects)),
    ), problems


@dataclass(frozen=True)
class _Row:
    """One data row of a manifest: the line it starts on and its cells by column name."""

    line: int
    cells: dict[str, str]


class CsvError(ValueError):
    """A CSV text the ``csv`` module cannot parse; ``line`` is where it stopped (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def csv_records(text: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of a CSV ``text``: (line the record starts on, 1-based; its cells
    stripped of surrounding spaces). Blank lines are skipped but counted, so the lines match
    what an editor shows, quoted line breaks included.

    Raises:
        CsvError: the text is not readable CSV (naming the line).
    """
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    records: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if any(c.strip() for c in cells):
                records.append((start, [c.strip() for c in cells]))
    except csv.Error as err:
        raise CsvError(reader.line_num, f"not a readable CSV file ({err})") from err
    return records


def _read_rows(path: Path) -> tuple[list[str], list[_Row], list[Problem]]:
    """The header and the data rows of a manifest CSV, cells stripped of surrounding spaces.

    Blank lines are skipped (they still count for line numbers; a quoted cell may span lines);
    a row with fewer cells than the header gets empty cells for the rest.

    Returns:
        (header, rows, problems); problems concern the file as a whole: empty, not UTF-8,
        not CSV, separated by ';' or tabs instead of commas, a required column missing or a
        column twice, a row with more cells than the header, no data rows. When there are
        problems, ``rows`` is empty.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return (
            [],
            [],
            [
                Problem(
                    line,
                    "",
                    "-",
                    f"not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                    f"offset {err.start}); save the file as 'CSV UTF-8'",
                )
            ],
        )
    try:
        records = csv_records(text)
    except CsvError as err:
        return [], [], [Problem(err.line, "", "-", str(err))]
    if not records:
        return (
            [],
            [],
            [
                Problem(
                    None,
                    "",
                    "-",
                    f"the file is empty ({len(raw)} bytes, no cell "
                    f"filled); expected a header line ({','.join(REQUIRED_COLUMNS)}, "
                    "...) and one row per subject",
                )
            ],
        )
    (header_line, header), data = records[0], records[1:]
    problems = _header_problems(header, header_line)
    if problems:
        return header, [], problems
    rows = []
    for line, cells in data:
        sid = dict(zip(header, cells)).get("subject_id", "")
        if len(cells) > len(header) and any(cells[len(header) :]):
            problems.append(
                Problem(
                    line,
                    sid,
                    "-",
                    f"{len(cells)} cells but the header has "
                    f"{len(header)} columns; quote a cell that holds a comma",
                )
            )
            continue
        cells = cells[: len(header)] + [""] * (len(header) - len(cells))
        unnamed = [i + 1 for i, (name, cell) in enumerate(zip(header, cells)) if cell and not name]
        if unnamed:
            problems.append(
                Problem(
                    line,
                    sid,
                    f"column {unnamed[0]}",
                    "a value in a column without a name in the header; name the column",
                )
            )
            continue
        rows.append(_Row(line, dict(zip(header, cells))))
    if not data:
        problems.append(Problem(header_line, "", "-", "the manifest has no rows (only a header)"))
    return header, ([] if problems else rows), problems


def _header_problems(header: list[str], line: int) -> list[Problem]:
    """Missing required columns (with a hint when another separator was used), and names
    that appear twice."""
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = _delimiter_hint(header)
        if hint:
            return [Problem(line, "", "-", hint)]
        return [Problem(line, "", column, "required column is missing") for column in missing]
    counts = Counter(name for name in header if name)
    return [
        Problem(line, "", name, f"column appears {n} times in the header; keep one")
        for name, n in counts.items()
        if n > 1
    ]


def _delimiter_hint(header: list[str]) -> str:
    """A message when the header line splits into the required columns at ';', a tab or '|'
    (a spreadsheet saved with a regional separator); "" otherwise."""
    line = ",".join(header)
    for delimiter, name in OTHER_DELIMITERS.items():
        fields = {f.strip().strip('"') for f in line.split(delimiter)}
        if len(fields & set(REQUIRED_COLUMNS)) >= 2:
            return (
                f"the file looks {name} (its header splits into {len(fields)} columns at "
                f"{delimiter!r}); save it as comma-separated CSV (';' stays the separator "
                "between several paths inside one slide_paths or volume_paths cell)"
            )
    return ""


def _check_row(
    row: _Row,
    root: Path,
    covariate_columns: list[str],
    seen_ids: dict[str, int],
    check_files: bool,
    problems: list[Problem],
    endpoints: list[str] = (),
) -> Subject | None:
    """Check one row, appending its problems; the Subject when it has none."""
    cells = row.cells
    sid = cells["subject_id"]
    before = len(problems)

    def report(column: str, message: str) -> None:
        problems.append(Problem(row.line, sid, column, message))

    _check_identifiers(cells, row.line, seen_ids, report)
    time = _parse_time(cells["time"], report)
    event = _parse_event(cells["event"], report)
    unit = cells["time_unit"].lower()
    if unit not in TIME_UNITS:
        report("time_unit", f"{cells['time_unit']!r} is not one of {', '.join(TIME_UNITS)}")
    mpp = _parse_mpp(cells.get("mpp", ""), report)
    modality = (cells.get("radiology_modality", "") or "CT").upper()
    if modality not in RADIOLOGY_MODALITIES:
        report("radiology_modality", f"{modality!r} is not one of CT, MR")
    slides, volumes, masks = (
        _paths(cells.get(column, ""), root)
        for column in ("slide_paths", "volume_paths", "mask_path")
    )
    _check_image_paths(slides, volumes, masks, report)
    if check_files:
        for column, paths in (
            ("slide_paths", slides),
            ("volume_paths", volumes),
            ("mask_path", masks),
        ):
            for p in paths:
                if not p.exists():
                    report(column, f"file does not exist: {p}")
    rois = _roi_paths(cells.get("roi_paths", ""), root, slides, check_files, report)
    outcomes = _parse_endpoints(cells, endpoints, report)
    if len(problems) > before:
        return None
    return Subject(
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
        roi_paths=rois,
        endpoints=outcomes,
        line=row.line,
    )


def _check_identifiers(
    cells: dict[str, str], line: int, seen_ids: dict[str, int], report: Report
) -> None:
    """Subject and patient ids: present, safe file names, subject ids unique."""
    sid = cells["subject_id"]
    if not sid:
        report("subject_id", "empty subject id")
    elif reason := safe_name(sid):
        report(
            "subject_id",
            f"subject id {sid!r} {reason}; subject ids name output files: "
            "use letters, digits, '-', '_' and '.'",
        )
    elif sid in seen_ids:
        report("subject_id", f"duplicate subject id (first on line {seen_ids[sid]})")
    else:
        seen_ids[sid] = line
    patient = cells["patient_id"]
    if not patient:
        report("patient_id", "empty patient id")
    elif reason := safe_name(patient):
        report(
            "patient_id", f"patient id {patient!r} {reason}; use letters, digits, '-', '_' and '.'"
        )


def _check_image_paths(
    slides: list[Path], volumes: list[Path], masks: list[Path], report: Report
) -> None:
    """A row's image paths: one mask with the volumes, no file twice, slide names that can
    name output files and do not clash."""
    if len(masks) > 1:
        report("mask_path", "give one mask path (found several separated by ';')")
    if volumes and not masks:
        report("mask_path", "volume_paths is given but mask_path is empty")
    if masks and not volumes:
        report("volume_paths", "mask_path is given but volume_paths is empty")
    for column, paths in (("slide_paths", slides), ("volume_paths", volumes)):
        for path in _repeated(paths):
            report(column, f"the same file is listed twice: {path}")
    if masks and _normal(masks[0]) in {_normal(v) for v in volumes}:
        report("mask_path", f"the mask {masks[0]} is also listed in volume_paths")
    by_stem: dict[str, Path] = {}
    for slide in dict.fromkeys(_normal(s) for s in slides):
        if reason := safe_name(slide.stem):
            report(
                "slide_paths",
                f"slide name {slide.stem!r} (file {slide}) {reason}; the "
                "name is used for the slide's output files: rename the file",
            )
        elif slide.stem in by_stem:
            report(
                "slide_paths",
                f"slides {by_stem[slide.stem]} and {slide} share the name "
                f"{slide.stem!r}, so their output files would clash; rename one",
            )
        else:
            by_stem[slide.stem] = slide


def _mixed_time_units(rows: list[_Row]) -> list[Problem]:
    """One problem per row whose (valid) time unit differs from the most common one."""
    units = [(row.line, row.cells["subject_id"], row.cells["time_unit"].lower()) for row in rows]
    units = [(line, sid, unit) for line, sid, unit in units if unit in TIME_UNITS]
    counts = Counter(unit for _, _, unit in units)
    if len(counts) < 2:
        return []
    main, n = counts.most_common(1)[0]  # ties: the unit seen first
    first = next(line for line, _, unit in units if unit == main)
    return [
        Problem(
            line,
            sid,
            "time_unit",
            f"mixed time units: {unit!r} here but {main!r} on "
            f"{n} row(s) from line {first}; use one unit",
        )
        for line, sid, unit in units
        if unit != main
    ]


def _event_warnings(subjects: list[Subject]) -> list[Problem]:
    """Warnings for a survival task: every subject censored, or fewer events than
    :data:`DEFAULT_FOLDS` (some test folds then have no event)."""
    n = len(subjects)
    events = sum(s.event for s in subjects)
    if events == 0:
        use = (
            "only a classification task (column label) can use it"
            if any(s.label is not None for s in subjects)
            else "check the column (1 = event observed, 0 = censored)"
        )
        return [
            Problem(
                None,
                "",
                "event",
                f"every subject is censored (event = 0 on all {n} "
                "rows): survival training will refuse this cohort "
                f"(no C-index without an event); {use}",
            )
        ]
    if events < DEFAULT_FOLDS:
        return [
            Problem(
                None,
                "",
                "event",
                f"{events} event(s) among {n} subjects, fewer than "
                f"the default {DEFAULT_FOLDS} cross-validation folds: "
                "some test folds will have no event and no C-index; "
                "set fewer 'folds' in the training config",
            )
        ]
    return []


def _parse_time(text: str, report: Report) -> float | None:
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


def _parse_event(text: str, report: Report) -> int | None:
    try:
        value = float(text)
    except ValueError:
        report("event", f"not a number: {text!r} (use 1 = event, 0 = censored)")
        return None
    if value not in (0.0, 1.0):
        report("event", f"event must be 0 or 1, got {text!r}")
        return None
    return int(value)


def _parse_mpp(text: str, report: Report) -> float | None:
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


def _normal(path: Path) -> Path:
    """``path`` with ``.``, ``..`` and doubled separators removed (no file-system access)."""
    return Path(os.path.normpath(path))


def _repeated(paths: list[Path]) -> list[Path]:
    """The paths that occur more than once (after :func:`_normal`), each once, in order."""
    counts = Counter(_normal(p) for p in paths)
    return [p for p, n in counts.items() if n > 1]


def endpoint_names(header: list[str]) -> list[str]:
    """Endpoints ``<name>`` with both ``<name>_time`` and ``<name>_event`` columns, in header
    order (the default endpoint ``time, event`` is not among them)."""
    names = [c[: -len("_time")] for c in header if c.endswith("_time") and len(c) > 5]
    return [n for n in names if f"{n}_event" in header]


def _parse_endpoints(
    cells: dict[str, str], endpoints: list[str], report: Report
) -> dict[str, tuple[float, int]]:
    """Each endpoint pair checked as ``time, event``; both cells empty: unknown for this
    subject. An endpoint of :data:`BEFORE_OS_ENDPOINTS` may not end after ``os``."""
    out: dict[str, tuple[float, int]] = {}
    for name in endpoints:
        time_text, event_text = cells[f"{name}_time"], cells[f"{name}_event"]
        if not time_text and not event_text:
            continue
        problems: list[tuple[str, str]] = []

        def column_report(column: str, message: str, name: str = name) -> None:
            problems.append((f"{name}_{column}", message))

        time = _parse_time(time_text, column_report)
        event = _parse_event(event_text, column_report)
        for column, message in problems:
            report(column, message)
        if time is not None and event is not None:
            out[name] = (time, event)
    if "os" in out:
        for name in BEFORE_OS_ENDPOINTS:
            if name in out and out[name][0] > out["os"][0]:
                report(
                    f"{name}_time",
                    f"{name}_time {out[name][0]:g} is after os_time "
                    f"{out['os'][0]:g}: {name.upper()} cannot end after "
                    "overall survival",
                )
    return out


def _roi_paths(
    cell: str, root: Path, slides: list[Path], check_files: bool, report: Report
) -> tuple[Path | None, ...]:
    """The ROI file of each slide (None where its entry is empty), aligned with the slides."""
    if not cell:
        return ()
    entries = [e.strip() for e in cell.split(PATH_SEPARATOR)]
    if len(entries) != len(slides):
        report(
            "roi_paths",
            f"{len(entries)} entries for {len(slides)} slide(s); give one per "
            "slide in the order of slide_paths (an empty entry for a slide "
            "without an ROI)",
        )
        return ()
    rois = tuple(_paths(e, root)[0] if e else None for e in entries)
    for slide, roi in zip(slides, rois):
        if roi is not None and check_files and not roi.exists():
            report("roi_paths", f"ROI file of slide {slide.name} does not exist: {roi}")
    return rois


def binary_column_problems(manifest: Manifest, column: str) -> list[Problem]:
    """One problem per subject whose covariate ``column`` (e.g. a treatment) is not 0 or 1.

    A study drops those subjects from the analyses of ``column`` and goes on with the others.

    Raises:
        ValueError: naming ``column`` when no subject has it.
    """
    if not any(column in s.covariates for s in manifest.subjects):
        raise ValueError(f"column: {column!r} is not a column of {manifest.path}")
    problems = []
    for s in manifest.subjects:
        value = s.covariates.get(column, "")
        if value not in (0.0, 1.0):
            problems.append(Problem(s.line, s.subject_id, column, f"must be 0 or 1, got {value!r}"))
    return problems


def _maybe_number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _label_conflicts(rows: list[_Row]) -> list[Problem]:
    labels: dict[str, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        label = row.cells.get("label", "")
        if label:
            labels[row.cells["patient_id"]][label].append((row.line, row.cells["subject_id"]))
    problems = []
    for patient, by_label in labels.items():
        if len(by_label) > 1:
            detail = "; ".join(
                f"{label!r} on " + ", ".join(f"line {ln} ({sid})" for ln, sid in lines)
                for label, lines in sorted(by_label.items())
            )
            first_line, first_sid = min(r for lines in by_label.values() for r in lines)
            problems.append(
                Problem(
                    first_line,
                    first_sid,
                    "label",
                    f"patient {patient!r} has subjects with different labels: {detail}",
                )
            )
    return problems
