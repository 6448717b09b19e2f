"""TCGA downloads -> a radiograph manifest: one row per case with its diagnostic slides, its CT
and tumour mask, and overall survival from the GDC clinical data.

Files are matched to cases by the TCGA barcode their names start with (``TCGA-XX-XXXX``, the
case submitter id; ``XX`` is the tissue source site, written as the row's ``centre``):

* **slides** (``--slides``, searched recursively, so the GDC client's one folder per file
  works): ``TCGA-XX-XXXX-01Z-00-DX1.<uuid>.svs``. Kept: diagnostic slides (``DX``: formalin
  fixed, paraffin embedded) of tumour samples (sample type ``01``-``09``). Frozen sections
  (``TS``, ``BS``, ``MS``) and normal-tissue samples are listed as skipped.
* **CT** (``--ct``, recursively): a NIfTI / NRRD / MetaImage file whose name starts with the
  case id (``TCGA-XX-XXXX.nii.gz``, ``TCGA-XX-XXXX_ct.nrrd``), or a TCIA patient folder named
  by the case id (the NBIA Data Retriever's ``<collection>/<case>/<study>/<series>/*.dcm``) in
  which every folder directly holding ``.dcm`` files is one series. A case needs exactly one
  volume; with several (studies, phases) none is chosen and the case's CT is reported as
  ambiguous.
* **masks** (``--masks``, recursively): a NIfTI / NRRD / MetaImage file in the CT's geometry
  whose name starts with the case id (``TCGA-XX-XXXX.nii.gz``, ``TCGA-XX-XXXX_mask.nii.gz``).
  A CT without a mask (or a mask without a CT) leaves the case without radiology.

Time is converted from days with a year of 365.25 days and a month of a twelfth of it
(30.4375 days).
"""

from __future__ import annotations

import csv
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from radiograph.cohorts.gdc import (
    PROJECT_COLUMNS,
    ClinicalCase,
    ClinicalTable,
    Survival,
    overall_survival,
)
from radiograph.io.atomic import atomic_open
from radiograph.manifest import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

#: A case id at the start of a name, not followed by another letter or digit.
CASE_PREFIX = re.compile(r"(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})(?![A-Z0-9])", re.IGNORECASE)
#: A slide barcode: case, sample type (2 digits) + vial, portion, slide kind (DX, TS, ...).
SLIDE_BARCODE = re.compile(
    r"(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(\d{2})[A-Z]-\d{2}-([A-Z]{2})\d*", re.IGNORECASE
)
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs")
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIX = ".dcm"
DAYS_PER = {"days": 1.0, "months": 365.25 / 12.0, "years": 365.25}
REQUIREMENTS = ("any", "pathology", "radiology", "both")
#: Manifest columns this module writes, before the covariates.
COLUMNS = (*REQUIRED_COLUMNS, "slide_paths", "volume_paths", "mask_path", "project_id")
REPORT_COLUMNS = (
    "case_id",
    "in_manifest",
    "time_days",
    "event",
    "dx_slides",
    "volume",
    "mask",
    "problems",
    "notes",
)


@dataclass(frozen=True)
class SlideScan:
    """The slides of a folder by case.

    Attributes:
        by_case: case id -> its diagnostic tumour slides, sorted by file name.
        skipped: (file, short reason) of slides that are not diagnostic tumour slides, or
            repeat the file name of one found before (in sorted path order).
        unrecognised: slide files whose names are no TCGA slide barcode.
    """

    by_case: Mapping[str, tuple[Path, ...]]
    skipped: tuple[tuple[Path, str], ...] = ()
    unrecognised: tuple[Path, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    """What became of one case.

    Attributes:
        case_id: ``TCGA-XX-XXXX``.
        survival: its overall survival (None: no clinical record).
        slides: diagnostic slides.
        volume: its one CT (file or DICOM series folder), None when absent or ambiguous.
        mask: its one tumour mask, None when absent or ambiguous.
        problems: why the case is not in the manifest (empty: it is).
        notes: what the case lost or what is odd, with the case still in the manifest.
    """

    case_id: str
    survival: Survival | None
    slides: tuple[Path, ...] = ()
    volume: Path | None = None
    mask: Path | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def written(self) -> bool:
        return not self.problems

    @property
    def has_radiology(self) -> bool:
        return self.volume is not None and self.mask is not None


@dataclass(frozen=True)
class TcgaCohort:
    """Every case seen in the clinical files or the image folders, and the scans."""

    cases: tuple[CaseResult, ...]
    slides: SlideScan = field(default_factory=lambda: SlideScan({}))
    volumes: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    masks: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)


def case_prefix(name: str) -> str | None:
    """The TCGA case id a file or folder name starts with (upper case), or None."""
    match = CASE_PREFIX.match(name)
    return match.group(1).upper() if match else None


def scan_slides(folder: str | os.PathLike) -> SlideScan:
    """Find the diagnostic tumour slides under ``folder`` (recursively), by case."""
    by_case: dict[str, list[Path]] = defaultdict(list)
    seen: dict[str, Path] = {}
    skipped: list[tuple[Path, str]] = []
    unrecognised: list[Path] = []
    for path in _files(folder, SLIDE_SUFFIXES):
        match = SLIDE_BARCODE.match(path.name)
        if match is None:
            unrecognised.append(path)
            continue
        case, sample, kind = match.group(1).upper(), int(match.group(2)), match.group(3).upper()
        if kind != "DX":
            skipped.append((path, f"{kind} slide, not diagnostic"))
        elif not 1 <= sample <= 9:
            skipped.append((path, f"sample type {sample:02d}, not tumour"))
        elif path.name in seen:
            skipped.append((path, "file name seen before"))
        else:
            seen[path.name] = path
            by_case[case].append(path)
    return SlideScan(
        {c: tuple(sorted(p, key=lambda s: s.name)) for c, p in by_case.items()},
        tuple(skipped),
        tuple(unrecognised),
    )


def scan_volumes(folder: str | os.PathLike, *, dicom: bool) -> dict[str, tuple[Path, ...]]:
    """Volumes under ``folder`` by case: files whose name starts with a case id and, with
    ``dicom``, the DICOM series folders inside a folder named by a case id."""
    found: dict[str, list[Path]] = defaultdict(list)
    for path in _files(folder, VOLUME_SUFFIXES):
        case = case_prefix(path.name)
        if case is not None:
            found[case].append(path)
    if dicom:
        for root, dirs, _ in os.walk(folder):
            case = case_prefix(Path(root).name)
            if case is not None:
                found[case] += _dicom_series(Path(root))
                dirs.clear()  # the patient folder's series are all found
    return {c: tuple(sorted(paths)) for c, paths in found.items()}


def build_cohort(
    table: ClinicalTable,
    *,
    slides: SlideScan | None = None,
    volumes: Mapping[str, Sequence[Path]] | None = None,
    masks: Mapping[str, Sequence[Path]] | None = None,
    require: str = "any",
) -> TcgaCohort:
    """Match the scans to the clinical cases and decide, per case, what the manifest gets.

    Args:
        table: the clinical cases (:func:`radiograph.cohorts.gdc.read_clinical`).
        slides, volumes, masks: the scans (None: that folder was not given).
        require: modalities a case needs to be written: ``any`` (at least one), ``pathology``,
            ``radiology`` or ``both``.

    Raises:
        ValueError: ``require`` is not one of :data:`REQUIREMENTS`.
    """
    if require not in REQUIREMENTS:
        raise ValueError(f"require must be one of {', '.join(REQUIREMENTS)}, got {require!r}")
    slides = slides or SlideScan({})
    volumes = {case: tuple(paths) for case, paths in (volumes or {}).items()}
    masks = {case: tuple(paths) for case, paths in (masks or {}).items()}
    ids = sorted({*table.cases, *slides.by_case, *volumes, *masks})
    results = []
    for case_id in ids:
        clinical = table.cases.get(case_id)
        results.append(
            _decide(
                case_id,
                None if clinical is None else overall_survival(clinical),
                slides.by_case.get(case_id, ()),
                volumes.get(case_id, ()),
                masks.get(case_id, ()),
                require,
            )
        )
    return TcgaCohort(tuple(results), slides, volumes, masks)


def write_manifest(
    cohort: TcgaCohort,
    table: ClinicalTable,
    out: str | os.PathLike,
    *,
    time_unit: str = "days",
    project_label: bool = False,
    covariates: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write the manifest (the cases with no problem) and the per-case report beside it.

    Paths inside the manifest's folder are written relative to it, others absolute. Time is
    ``time_days / DAYS_PER[time_unit]``.

    Args:
        cohort: from :func:`build_cohort`.
        table: the clinical table (project and covariates).
        out: the manifest CSV; the report is ``<out stem>.cases.csv`` beside it.
        time_unit: days, months or years.
        project_label: write ``label`` = the project without ``TCGA-`` (KIRC, KIRP, KICH).
        covariates: clinical fields to copy as covariate columns (bare or dotted names, see
            :meth:`ClinicalTable.resolve`); a case whose rows disagree gets an empty cell and
            a note.

    Returns:
        (manifest path, report path).

    Raises:
        ValueError: an unknown ``time_unit``; a covariate named like a manifest column.
        ClinicalError: a covariate that is no column, or ambiguous.
    """
    if time_unit not in DAYS_PER:
        raise ValueError(f"time_unit must be one of {', '.join(DAYS_PER)}, got {time_unit!r}")
    reserved = set(COLUMNS) | set(OPTIONAL_COLUMNS)
    clash = [c for c in covariates if c in reserved]
    if clash or len(set(covariates)) != len(covariates):
        raise ValueError(
            f"covariates {clash or list(covariates)}: names must be distinct and "
            f"differ from the manifest's columns ({', '.join(sorted(reserved))})"
        )
    sources = {name: table.resolve(name) for name in covariates}
    header = [*COLUMNS, *(["label"] if project_label else []), *sources]
    out = Path(out)
    root = out.parent.resolve()
    report_rows = []
    with atomic_open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        for case in cohort.cases:
            notes = list(case.notes)
            clinical = table.cases.get(case.case_id)
            if case.written and clinical is not None and case.survival is not None:
                writer.writerow(
                    _manifest_row(case, clinical, sources, root, time_unit, project_label, notes)
                )
            report_rows.append(_report_row(case, notes))
    report = out.with_name(f"{out.name.removesuffix('.csv')}.cases.csv")
    with atomic_open(report, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(report_rows)
    return out, report


def summary(cohort: TcgaCohort, table: ClinicalTable) -> str:
    """What was matched and what is missing, in a few lines, then one line per case left out
    and per case note."""
    cases = cohort.cases
    written = [c for c in cases if c.written]
    clinical = [c for c in cases if c.survival is not None]
    with_survival = [c for c in clinical if c.survival and not c.survival.problems]
    both = sum(bool(c.slides) and c.has_radiology for c in written)
    path_only = sum(bool(c.slides) and not c.has_radiology for c in written)
    rad_only = sum(c.has_radiology and not c.slides for c in written)
    skipped = Counter(reason for _, reason in cohort.slides.skipped)
    lines = [
        f"clinical: {len(table.cases)} case(s) in {', '.join(map(str, table.sources))}; "
        f"overall survival for {len(with_survival)}, none for "
        f"{len(clinical) - len(with_survival)}",
        f"slides: {sum(map(len, cohort.slides.by_case.values()))} diagnostic slide(s) of "
        f"{len(cohort.slides.by_case)} case(s); skipped {len(cohort.slides.skipped)}"
        + (f" ({', '.join(f'{k}: {n}' for k, n in sorted(skipped.items()))})" if skipped else "")
        + f"; unrecognised file names {len(cohort.slides.unrecognised)}",
        f"CT: volumes for {len(cohort.volumes)} case(s) "
        f"({sum(len(v) > 1 for v in cohort.volumes.values())} with several), masks for "
        f"{len(cohort.masks)} case(s)",
        f"manifest: {len(written)} case(s): pathology+radiology {both}, pathology only "
        f"{path_only}, radiology only {rad_only}",
    ]
    outcomes = [(c.survival.time_days, c.survival.event) for c in written if c.survival]
    if outcomes:
        events = sum(event or 0 for _, event in outcomes)
        median = statistics.median(time or 0.0 for time, _ in outcomes)
        lines.append(
            f"  events: {events} ({100.0 * events / len(outcomes):.1f}%), median "
            f"follow-up {median:g} days"
        )
    left_out = [c for c in cases if not c.written]
    if left_out:
        lines.append(f"left out: {len(left_out)} case(s)")
        lines += [f"  {c.case_id}: {'; '.join(c.problems)}" for c in left_out]
    noted = [c for c in written if c.notes]
    if noted:
        lines.append(f"notes: {len(noted)} case(s) in the manifest")
        lines += [f"  {c.case_id}: {'; '.join(c.notes)}" for c in noted]
    return "\n".join(lines)


def _decide(
    case_id: str,
    survival: Survival | None,
    slides: tuple[Path, ...],
    volumes: tuple[Path, ...],
    masks: tuple[Path, ...],
    require: str,
) -> CaseResult:
    problems: list[str] = []
    notes: list[str] = []
    if survival is None:
        problems.append("no clinical record")
    else:
        problems += survival.problems
        notes += survival.notes
    if not CASE_PREFIX.fullmatch(case_id):
        problems.append("the case id is not a TCGA case barcode (TCGA-XX-XXXX)")
    volume = _only(volumes, "CT volumes", notes)
    mask = _only(masks, "masks", notes)
    if volume is not None and mask is None and not masks:
        notes.append("CT without a tumour mask: no radiology")
    if mask is not None and volume is None and not volumes:
        notes.append("tumour mask without a CT: no radiology")
    radiology = volume is not None and mask is not None
    if not radiology:
        volume = mask = None
    needed = {
        "any": bool(slides) or radiology,
        "pathology": bool(slides),
        "radiology": radiology,
        "both": bool(slides) and radiology,
    }[require]
    if not needed:
        have = [m for m, ok in (("pathology", bool(slides)), ("radiology", radiology)) if ok]
        problems.append(f"--require {require}, has {' and '.join(have) or 'no image'}")
    return CaseResult(case_id, survival, slides, volume, mask, tuple(problems), tuple(notes))


def _only(paths: tuple[Path, ...], what: str, notes: list[str]) -> Path | None:
    """The one path, or None with a note when there are several."""
    if len(paths) > 1:
        shown = ", ".join(str(p) for p in paths[:4]) + (" ..." if len(paths) > 4 else "")
        notes.append(f"{len(paths)} {what} ({shown}); keep one per case: no radiology")
        return None
    return paths[0] if paths else None


def _files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` (recursively, hidden ones left out) whose lower-case name ends
    with one of ``suffixes``, sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [
            Path(root) / f for f in files if not f.startswith(".") and f.lower().endswith(suffixes)
        ]
    return sorted(out)


def _dicom_series(patient: Path) -> list[Path]:
    """The folders under ``patient`` (itself included) that directly hold ``.dcm`` files."""
    return sorted(
        Path(root)
        for root, _, files in os.walk(patient)
        if any(f.lower().endswith(DICOM_SUFFIX) for f in files)
    )


def _single(values: Iterable[str], name: str, notes: list[str]) -> str:
    """The one value, or "" with a note when the case's rows disagree."""
    values = tuple(values)
    if len(values) > 1:
        notes.append(f"rows disagree on {name}: {', '.join(values)} (left empty)")
        return ""
    return values[0] if values else ""


def _relative(path: Path | None, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else absolute."""
    if path is None:
        return ""
    path = path.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _number(value: float) -> str:
    """A time as the manifest gets it: an integer without a point, else 4 decimals (0.003
    days of a month) without trailing zeros."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4f}".rstrip("0")


def _manifest_row(
    case: CaseResult,
    clinical: ClinicalCase,
    sources: Mapping[str, str],
    root: Path,
    time_unit: str,
    project_label: bool,
    notes: list[str],
) -> dict[str, object]:
    """One manifest row of a case with survival; disagreeing covariates are noted."""
    assert case.survival is not None and case.survival.time_days is not None
    project = _single(clinical.pooled(PROJECT_COLUMNS), "project_id", notes)
    row: dict[str, object] = {
        "subject_id": case.case_id,
        "patient_id": case.case_id,
        "centre": case.case_id.split("-")[1],
        "time": _number(case.survival.time_days / DAYS_PER[time_unit]),
        "time_unit": time_unit,
        "event": case.survival.event,
        "slide_paths": ";".join(_relative(p, root) for p in case.slides),
        "volume_paths": _relative(case.volume, root),
        "mask_path": _relative(case.mask, root),
        "project_id": project,
    }
    if project_label:
        row["label"] = project.removeprefix("TCGA-")
    for name, column in sources.items():
        row[name] = _single(clinical.values.get(column, ()), name, notes)
    return row


def _report_row(case: CaseResult, notes: list[str]) -> list[object]:
    survival = case.survival
    return [
        case.case_id,
        int(case.written),
        "" if survival is None or survival.time_days is None else f"{survival.time_days:g}",
        "" if survival is None or survival.event is None else survival.event,
        ";".join(str(p) for p in case.slides),
        case.volume or "",
        case.mask or "",
        "; ".join(case.problems),
        "; ".join(notes),
    ]
