"""Longitudinal cohorts: patients seen at several declared time points (seeds/002, "MRP").

A longitudinal manifest is a CSV with one row per patient and time point (``phase``)::

    patient_id,centre,phase,volume_path,pre_contrast_path,post_contrast_path,image_paths,pcr
    P001,NKI,pre,,mri/P001_t1pre.nii.gz,mri/P001_t1post.nii.gz,mg/P001_CC.png;mg/P001_MLO.png,1
    P001,NKI,mid,mri/P001_mid_sub.nii.gz,,,,1

- ``patient_id``, ``centre``, ``phase`` are required; the path columns may be absent (blank).
- ``volume_path``: a 3D DCE subtraction volume (NIfTI, NRRD, or a DICOM series folder).
- ``pre_contrast_path`` + ``post_contrast_path``: the subtraction is made from them
  (:func:`radiograph.longitudinal.images.make_subtraction`); give either these two or
  ``volume_path``, not both.
- ``image_paths``: 2D mammogram views (PNG, TIFF or DICOM), ``;``-separated.
- the label column (default ``pcr``): 1 for pathological complete response, 0 otherwise.
- the declared clinical columns (:class:`~radiograph.fusion.clinical.ClinicalVariable`) and
  optional reader columns (a radiologist's score at that time point).

Paths are relative to the manifest's folder (absolute paths are kept). Clinical attributes and
the label are baseline attributes of the patient: they must agree across the patient's rows (a
blank cell in some rows is fine). A patient's visits are sorted by the study's declared phase
order, whatever the order of the rows in the file.

Reading checks everything and raises one :class:`ValueError` listing every problem, each as
``line <n>, patient '<id>', phase '<phase>' [<column>]: <what>`` (the file named where one is
concerned): a phase that is not declared, two rows for one patient and phase, a post-contrast
volume without a pre-contrast one (or the reverse), a 2D image where a volume is expected and
a volume where a 2D image is expected (dimensionality read cheaply from the file's header:
axes longer than one voxel), a missing file, an unsafe identifier
(:func:`radiograph.io.paths.safe_name`), a label other than 0/1, a row without any image, a
patient without any image, conflicting baseline cells, clinical cells outside their declared
levels (:func:`~radiograph.fusion.clinical.check_clinical`), reader scores that are not finite
numbers.

Cross-validation folds are drawn over patients (:func:`patient_folds`), so a patient's time
points never sit in two folds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from radiograph.fusion.clinical import ClinicalVariable, check_clinical
from radiograph.io.paths import safe_name
from radiograph.manifest import CsvError, csv_records

REQUIRED_COLUMNS = ("patient_id", "centre", "phase")
VOLUME_COLUMN = "volume_path"
PRE_COLUMN = "pre_contrast_path"
POST_COLUMN = "post_contrast_path"
IMAGES_COLUMN = "image_paths"
PATH_COLUMNS = (VOLUME_COLUMN, PRE_COLUMN, POST_COLUMN, IMAGES_COLUMN)
PATH_SEPARATOR = ";"
#: Modalities of :meth:`LongitudinalCohort.availability` (column ``"<phase>:<modality>"``).
MODALITIES = ("mri", "mammo")
#: Problems shown in one error message (the rest are counted).
MAX_SHOWN = 50


@dataclass(frozen=True)
class Visit:
    """One manifest row: one patient at one time point. Paths are absolute.

    Attributes:
        phase: the declared phase name (e.g. ``pre``, ``mid``, ``post``).
        volume: DCE subtraction volume given in the manifest, or None.
        pre_contrast: pre-contrast volume; with ``post_contrast`` the subtraction
            ``post - pre`` is made from them. None when not given.
        post_contrast: post-contrast volume, or None.
        images: 2D mammogram views, possibly empty.
        line: the manifest line the row starts on (header = line 1), for messages.
        reader_scores: reader column -> that reader's score at this time point (blank cells
            left out).
    """

    phase: str
    volume: Path | None
    pre_contrast: Path | None
    post_contrast: Path | None
    images: tuple[Path, ...]
    line: int
    reader_scores: dict[str, float] = field(default_factory=dict)

    @property
    def has_mri(self) -> bool:
        """A volume is given, or both contrast volumes that make one."""
        return self.volume is not None or (
            self.pre_contrast is not None and self.post_contrast is not None
        )

    @property
    def has_mammo(self) -> bool:
        """At least one 2D image is given."""
        return bool(self.images)


@dataclass(frozen=True)
class Patient:
    """One patient: baseline attributes and the visits in declared phase order.

    Attributes:
        patient_id: safe identifier (it names output files).
        centre: the centre the patient comes from.
        label: 1 pathological complete response (pCR), 0 non-pCR.
        visits: one per phase the patient has, sorted by the study's declared phase order.
        clinical: declared clinical column -> raw cell (blank -> ""), merged over the rows.
        reader_scores: reader column -> the score at the patient's latest visit that has one
            (a reader who sees the phases in order ends with this assessment; per-phase scores
            are in :attr:`Visit.reader_scores`).
    """

    patient_id: str
    centre: str
    label: int
    visits: tuple[Visit, ...]
    clinical: dict[str, str]
    reader_scores: dict[str, float]

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases of :attr:`visits`, in declared order."""
        return tuple(v.phase for v in self.visits)

    def visit(self, phase: str) -> Visit | None:
        """The visit at ``phase``, or None when the patient has none there."""
        return next((v for v in self.visits if v.phase == phase), None)

    def until(self, phase: str, phases: Sequence[str]) -> Patient:
        """The patient as known at ``phase``: the visits at ``phase`` and earlier (in the
        declared order ``phases``), e.g. the inputs of a mid-treatment prediction. The result
        may have no visit (a patient first seen later)."""
        if phase not in phases:
            raise ValueError(f"phase: {phase!r} is not one of the declared phases {list(phases)}")
        last = list(phases).index(phase)
        kept = tuple(v for v in self.visits if list(phases).index(v.phase) <= last)
        return replace(self, visits=kept)


@dataclass(frozen=True)
class LongitudinalCohort:
    """A validated longitudinal manifest (module docstring).

    Attributes:
        phases: the declared phase names in time order.
        patients: in order of first appearance in the manifest.
        clinical_variables: the declared clinical variables.
        manifest: path of the manifest CSV.
        reader_columns: the declared reader-score columns.
    """

    phases: tuple[str, ...]
    patients: tuple[Patient, ...]
    clinical_variables: tuple[ClinicalVariable, ...]
    manifest: Path
    reader_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def patient_ids(self) -> list[str]:
        """Patient identifiers in cohort order."""
        return [p.patient_id for p in self.patients]

    def subset(self, indices: Sequence[int] | np.ndarray) -> LongitudinalCohort:
        """The cohort of the patients at ``indices`` (e.g. one side of :func:`patient_folds`),
        in that order."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise ValueError(f"indices: out of range for {len(self)} patients")
        return replace(self, patients=tuple(self.patients[i] for i in index))

    def labels(self) -> np.ndarray:
        """(n_patients,) int64 labels (1 pCR, 0 non-pCR) in cohort order."""
        return np.array([p.label for p in self.patients], dtype=np.int64)

    def clinical_table(self) -> pd.DataFrame:
        """(n_patients, n_variables) raw clinical cells (str, blank ""), index ``patient_id``,
        columns in declared order; validated by
        :func:`~radiograph.fusion.clinical.check_clinical` when the manifest was read. Feed it
        to :class:`~radiograph.fusion.clinical.ClinicalEncoder`."""
        names = [v.name for v in self.clinical_variables]
        table = pd.DataFrame(
            [[p.clinical[n] for n in names] for p in self.patients],
            columns=names,
            index=pd.Index(self.patient_ids, name="patient_id"),
            dtype=object,
        )
        return table

    def availability(self) -> pd.DataFrame:
        """Which phases and modalities each patient has.

        Returns:
            Bool frame, index ``patient_id``, columns ``"<phase>:mri"`` and
            ``"<phase>:mammo"`` for each declared phase (in order), then ``"clinical"`` (at
            least one declared clinical cell is not blank; False when none is declared).
        """
        columns = [f"{phase}:{m}" for phase in self.phases for m in MODALITIES] + ["clinical"]
        rows = []
        for patient in self.patients:
            row = dict.fromkeys(columns, False)
            for visit in patient.visits:
                row[f"{visit.phase}:mri"] = visit.has_mri
                row[f"{visit.phase}:mammo"] = visit.has_mammo
            row["clinical"] = any(cell != "" for cell in patient.clinical.values())
            rows.append(row)
        return pd.DataFrame(
            rows, columns=columns, dtype=bool, index=pd.Index(self.patient_ids, name="patient_id")
        )

    def availability_summary(self) -> pd.DataFrame:
        """Patients per centre and availability pattern, for the report.

        Returns:
            Frame with columns ``centre``, ``pattern`` (the available ``"<phase>:<modality>"``
            entries joined by ``" + "``, ``"clinical"`` included), ``patients`` and
            ``responders``; sorted by centre then pattern.
        """
        available = self.availability()
        patterns = [
            " + ".join(c for c in available.columns if row[c]) for _, row in available.iterrows()
        ]
        frame = pd.DataFrame(
            {
                "centre": [p.centre for p in self.patients],
                "pattern": patterns,
                "label": self.labels(),
            }
        )
        return (
            frame.groupby(["centre", "pattern"], sort=True)["label"]
            .agg(patients="size", responders="sum")
            .reset_index()
        )

    def reader_table(self, phase: str | None = None) -> pd.DataFrame:
        """Reader scores, index ``patient_id``, one float column per reader (NaN when blank).

        Args:
            phase: the scores given at this phase; None for :attr:`Patient.reader_scores`
                (each patient's latest score).
        """
        if phase is not None and phase not in self.phases:
            raise ValueError(
                f"phase: {phase!r} is not one of the declared phases {list(self.phases)}"
            )
        rows = []
        for patient in self.patients:
            if phase is None:
                scores = patient.reader_scores
            else:
                visit = patient.visit(phase)
                scores = visit.reader_scores if visit is not None else {}
            rows.append([scores.get(c, math.nan) for c in self.reader_columns])
        return pd.DataFrame(
            rows,
            columns=list(self.reader_columns),
            dtype=np.float64,
            index=pd.Index(self.patient_ids, name="patient_id"),
        )


def read_longitudinal_manifest(
    path: str | os.PathLike,
    phases: Sequence[str],
    clinical_variables: Sequence[ClinicalVariable] = (),
    *,
    label_column: str = "pcr",
    reader_columns: Sequence[str] = (),
) -> LongitudinalCohort:
    """Read and validate a longitudinal manifest (module docstring).

    Args:
        path: the manifest CSV (UTF-8, comma-separated, header on the first line).
        phases: the study's phase names in time order (e.g. ``("pre", "mid", "post")``);
            distinct safe names.
        clinical_variables: the declared clinical columns (baseline attributes).
        label_column: the 0/1 response column.
        reader_columns: optional reader-score columns (finite numbers or blank).

    Returns:
        The cohort, patients in order of first appearance, visits in declared phase order.

    Raises:
        ValueError: a bad argument (named), or one message listing every problem of the file
            (module docstring).
    """
    phases = _check_phases(phases)
    clinical_variables = tuple(clinical_variables)
    reader_columns = tuple(reader_columns)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: longitudinal manifest {path} does not exist or is not a file")
    header, rows = _read_csv(path)
    declared = (
        *REQUIRED_COLUMNS,
        label_column,
        *[v.name for v in clinical_variables],
        *reader_columns,
    )
    missing = [c for c in declared if c not in header]
    if missing:
        raise ValueError(
            f"{path}: line 1 (header): column(s) {missing} are missing; the header has {header}"
        )
    if not rows:
        raise ValueError(f"{path}: no data rows (only a header)")
    problems: list[str] = []
    order = {phase: i for i, phase in enumerate(phases)}
    by_patient: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, cells in rows:
        by_patient.setdefault(cells["patient_id"], []).append((line, cells))
    patients = []
    for pid, patient_rows in by_patient.items():
        patient = _read_patient(
            pid,
            patient_rows,
            path.parent,
            order,
            label_column,
            clinical_variables,
            reader_columns,
            problems,
        )
        if patient is not None:
            patients.append(patient)
    if clinical_variables and not problems:
        table = pd.DataFrame([{"patient_id": p.patient_id, **p.clinical} for p in patients])
        try:
            check_clinical(table, clinical_variables, id_column="patient_id", source=path)
        except ValueError as err:
            problems += [line.strip() for line in str(err).splitlines()[1:]]
    if problems:
        shown = problems[:MAX_SHOWN]
        if len(problems) > MAX_SHOWN:
            shown.append(f"... and {len(problems) - MAX_SHOWN} more")
        raise ValueError(
            f"{path}: {len(problems)} problem(s) in the longitudinal manifest:\n  "
            + "\n  ".join(shown)
        )
    return LongitudinalCohort(
        phases=phases,
        patients=tuple(patients),
        clinical_variables=clinical_variables,
        manifest=path,
        reader_columns=reader_columns,
    )


def patient_folds(
    cohort: LongitudinalCohort, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold split over patients (never over time points).

    Each patient is in exactly one test fold; every fold holds
    ``floor`` or ``ceil`` of ``n_class / folds`` patients of each class
    (:class:`sklearn.model_selection.StratifiedKFold`, shuffled with ``seed``).

    Args:
        cohort: the cohort.
        folds: number of folds, 2 <= folds <= the size of the smaller class.
        seed: shuffling seed.

    Returns:
        ``folds`` pairs ``(train, test)`` of sorted int64 patient indices into
        ``cohort.patients``.
    """
    from sklearn.model_selection import StratifiedKFold

    labels = cohort.labels()
    smallest = int(min(np.sum(labels == 0), np.sum(labels == 1)))
    if not 2 <= folds <= smallest:
        raise ValueError(
            f"folds: need 2 <= folds <= {smallest} (patients in the smaller class), got {folds}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        (np.sort(train).astype(np.int64), np.sort(test).astype(np.int64))
        for train, test in splitter.split(np.zeros((len(labels), 1)), labels)
    ]


def image_dimensionality(path: Path) -> tuple[int, tuple[int, ...]]:
    """(number of axes longer than one voxel, size per axis) from an image file's header.

    Reads only the header (SimpleITK's ``ReadImageInformation``): cheap for NIfTI, NRRD,
    PNG, TIFF and DICOM. A folder counts as a DICOM series (3D, sizes unknown: ``()``).

    Raises:
        ValueError: the header cannot be read.
    """
    if path.is_dir():
        return 3, ()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ValueError(f"not a readable image header ({first})") from err
    size = tuple(int(s) for s in reader.GetSize())
    return sum(s > 1 for s in size), size


def _check_phases(phases: Sequence[str]) -> tuple[str, ...]:
    phases = tuple(str(p) for p in phases)
    if not phases:
        raise ValueError("phases: declare at least one phase name")
    repeated = sorted({p for p in phases if phases.count(p) > 1})
    if repeated:
        raise ValueError(f"phases: {repeated} declared more than once in {list(phases)}")
    for phase in phases:
        if reason := safe_name(phase):
            raise ValueError(f"phases: phase name {phase!r} {reason}")
    return phases


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and data rows (line the row starts on, stripped cells by column); blank lines
    are skipped but counted."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err}); save it as 'CSV UTF-8'") from err
    try:
        records = csv_records(text)
    except CsvError as err:
        raise ValueError(f"{path}: line {err.line}: {err}") from err
    if not records:
        raise ValueError(
            f"{path}: the file is empty; expected a header "
            f"({','.join(REQUIRED_COLUMNS)}, ...) and one row per patient and phase"
        )
    (_, header), data = records[0], records[1:]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ValueError(f"{path}: line 1 (header): column(s) {repeated} appear more than once")
    rows = []
    for line, cells in data:
        if len(cells) > len(header) and any(cells[len(header) :]):
            raise ValueError(
                f"{path}: line {line}: {len(cells)} cells but the header has "
                f"{len(header)} columns; quote a cell that holds a comma"
            )
        cells = cells[: len(header)] + [""] * (len(header) - len(cells))
        rows.append((line, dict(zip(header, cells))))
    return header, rows


def _where(line: int, patient: str, phase: str, column: str) -> str:
    return f"line {line}, patient {patient!r}, phase {phase!r} [{column}]"


def _read_patient(
    pid: str,
    rows: list[tuple[int, dict[str, str]]],
    root: Path,
    order: dict[str, int],
    label_column: str,
    variables: tuple[ClinicalVariable, ...],
    reader_columns: tuple[str, ...],
    problems: list[str],
) -> Patient | None:
    """Validate one patient's rows (problems appended); the Patient when it has none."""
    before = len(problems)
    if reason := safe_name(pid):
        problems.append(
            f"{_where(rows[0][0], pid, rows[0][1]['phase'], 'patient_id')}: patient id {reason}"
        )
    visits: list[Visit] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        phase = cells["phase"]
        if phase not in order:
            problems.append(
                f"{_where(line, pid, phase, 'phase')}: phase {phase!r} is not "
                f"declared (declared phases: {list(order)})"
            )
            continue
        if phase in seen:
            problems.append(
                f"{_where(line, pid, phase, 'phase')}: a second row for this "
                f"patient and phase (first on line {seen[phase]}); keep one"
            )
            continue
        seen[phase] = line
        visit = _read_visit(line, pid, phase, cells, root, reader_columns, problems)
        if visit is not None:
            visits.append(visit)
    centre = _baseline(pid, rows, "centre", problems)
    if centre and (reason := safe_name(centre)):
        problems.append(
            f"{_where(rows[0][0], pid, rows[0][1]['phase'], 'centre')}: centre {centre!r} {reason}"
        )
    elif not centre:
        problems.append(
            f"{_where(rows[0][0], pid, rows[0][1]['phase'], 'centre')}: no centre "
            "given in any row of this patient"
        )
    label_text = _baseline(pid, rows, label_column, problems)
    if label_text not in ("0", "1"):
        lines = ", ".join(str(line) for line, _ in rows)
        got = f"{label_text!r}" if label_text else "blank in every row"
        problems.append(
            f"line(s) {lines}, patient {pid!r} [{label_column}]: the label must be "
            f"0 (non-pCR) or 1 (pCR), got {got}"
        )
    clinical = {v.name: _baseline(pid, rows, v.name, problems) for v in variables}
    empty = [v for v in visits if not (v.has_mri or v.has_mammo)]
    if empty and len(empty) == len(rows):
        lines = ", ".join(str(line) for line, _ in rows)
        problems.append(
            f"line(s) {lines}, patient {pid!r} [{', '.join(PATH_COLUMNS)}]: the "
            "patient has no image at any phase (no volume, no contrast pair, no 2D "
            "image)"
        )
    else:
        problems += [
            f"{_where(v.line, pid, v.phase, ', '.join(PATH_COLUMNS))}: no image in "
            "this row; give a file or drop the row"
            for v in empty
        ]
    if len(problems) > before:
        return None
    visits.sort(key=lambda v: order[v.phase])
    latest: dict[str, float] = {}
    for visit in visits:
        latest.update(visit.reader_scores)
    return Patient(
        patient_id=pid,
        centre=centre,
        label=int(label_text),
        visits=tuple(visits),
        clinical=clinical,
        reader_scores=latest,
    )


def _baseline(
    pid: str, rows: list[tuple[int, dict[str, str]]], column: str, problems: list[str]
) -> str:
    """The patient's value of a baseline column: the non-blank cells must agree."""
    values = [(line, cells[column]) for line, cells in rows if cells[column] != ""]
    distinct = sorted({value for _, value in values})
    if len(distinct) > 1:
        shown = "; ".join(
            f"{value!r} on line(s) " + ", ".join(str(line) for line, v in values if v == value)
            for value in distinct
        )
        problems.append(
            f"patient {pid!r} [{column}]: baseline attribute differs between the "
            f"patient's rows ({shown}); give one value (blank cells are fine)"
        )
    return values[0][1] if values else ""


def _read_visit(
    line: int,
    pid: str,
    phase: str,
    cells: dict[str, str],
    root: Path,
    reader_columns: tuple[str, ...],
    problems: list[str],
) -> Visit | None:
    """Validate one row's files and reader scores (problems appended)."""
    before = len(problems)

    def report(column: str, message: str) -> None:
        problems.append(f"{_where(line, pid, phase, column)}: {message}")

    def one_path(column: str, want: int) -> Path | None:
        cell = cells.get(column, "")
        if not cell:
            return None
        if PATH_SEPARATOR in cell:
            report(column, f"one file expected, got {cell!r}")
            return None
        return _checked_file(root, cell, want, column, report)

    volume = one_path(VOLUME_COLUMN, 3)
    pre, post = one_path(PRE_COLUMN, 3), one_path(POST_COLUMN, 3)
    if cells.get(POST_COLUMN) and not cells.get(PRE_COLUMN):
        report(
            PRE_COLUMN,
            f"a subtraction is requested ({POST_COLUMN} "
            f"{cells[POST_COLUMN]!r}) without a pre-contrast volume; give "
            f"{PRE_COLUMN}, or the subtraction itself in {VOLUME_COLUMN}",
        )
    if cells.get(PRE_COLUMN) and not cells.get(POST_COLUMN):
        report(
            POST_COLUMN,
            f"{PRE_COLUMN} {cells[PRE_COLUMN]!r} is given without a "
            "post-contrast volume; the subtraction needs both",
        )
    if cells.get(VOLUME_COLUMN) and (cells.get(PRE_COLUMN) or cells.get(POST_COLUMN)):
        report(
            VOLUME_COLUMN,
            f"give either {VOLUME_COLUMN} (a subtraction volume) or "
            f"{PRE_COLUMN} + {POST_COLUMN}, not both",
        )
    images = []
    for cell in filter(
        None, (c.strip() for c in cells.get(IMAGES_COLUMN, "").split(PATH_SEPARATOR))
    ):
        image = _checked_file(root, cell, 2, IMAGES_COLUMN, report)
        if image is not None:
            images.append(image)
    scores = {}
    for column in reader_columns:
        cell = cells[column]
        if not cell:
            continue
        try:
            score = float(cell)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            report(column, f"reader score {cell!r} is not a finite number")
        else:
            scores[column] = score
    if len(problems) > before:
        return None
    return Visit(
        phase=phase,
        volume=volume,
        pre_contrast=pre,
        post_contrast=post,
        images=tuple(images),
        line=line,
        reader_scores=scores,
    )


def _checked_file(root: Path, cell: str, want: int, column: str, report) -> Path | None:
    """The absolute path of ``cell`` after checking it exists and has ``want`` (2 or 3)
    axes longer than one voxel; None (and a report) otherwise."""
    path = Path(cell)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        report(column, f"file {path} does not exist")
        return None
    if want == 2 and path.is_dir():
        report(column, f"{path} is a folder; a 2D image file (PNG, TIFF, DICOM) is expected")
        return None
    try:
        ndim, size = image_dimensionality(path)
    except ValueError as err:
        report(column, f"file {path}: {err}")
        return None
    shape = " x ".join(str(s) for s in size)
    if want == 3 and ndim < 3:
        report(
            column,
            f"file {path} is a 2D image ({shape}) where a 3D volume is expected; "
            f"a mammogram belongs in {IMAGES_COLUMN}",
        )
        return None
    if want == 2 and ndim != 2:
        kind = "a 3D volume" if ndim >= 3 else f"an image with {ndim} axis(es) > 1 voxel"
        report(
            column,
            f"file {path} is {kind} ({shape}) where a 2D image is expected; a "
            f"volume belongs in {VOLUME_COLUMN}",
        )
        return None
    return path
