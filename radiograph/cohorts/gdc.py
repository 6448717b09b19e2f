"""GDC clinical downloads -> one record per case, and each case's overall survival.

The GDC portal's cart gives a case's clinical data under "Clinical" in two forms, both read:

* **TSV**: ``clinical.tsv``, alone or inside the downloaded ``.tar.gz`` (which also holds
  ``exposure.tsv``, ``follow_up.tsv``, ...). One row per case and treatment (or diagnosis), so
  a case spans several rows that repeat its demographic values. Column names are bare in the
  older portal (``case_submitter_id``, ``vital_status``, ``days_to_death``,
  ``days_to_last_follow_up``) and prefixed by their entity in portal 2.0
  (``cases.submitter_id``, ``demographic.vital_status``, ``demographic.days_to_death``,
  ``diagnoses.days_to_last_follow_up``). An empty value is written ``'--``.
* **JSON**: a list of case objects (``submitter_id``, ``project``, ``demographic``,
  ``diagnoses`` [...]), null for empty. Nested objects are flattened to the same dotted
  column names (``demographic.days_to_death``; a top-level key ``k`` becomes ``cases.k``).

Overall survival (OS) of a case, in days from the index date (:func:`overall_survival`)::

    vital_status Dead   ->  event 1, time = days_to_death
    vital_status Alive  ->  event 0, time = days_to_last_follow_up (censored)

Nothing is filled in: a Dead case without ``days_to_death`` is not given its follow-up time,
an Alive case without ``days_to_last_follow_up`` is not dropped silently. Every such case gets
a problem naming the field and the values found, and no survival; so do negative or zero
times, values that are not numbers, and rows of one case that disagree.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Column names (bare and entity-prefixed) of each field the survival needs, in the order
#: their values are gathered; a case's values are pooled over every name present.
CASE_ID_COLUMNS = ("cases.submitter_id", "case_submitter_id")
PROJECT_COLUMNS = ("project.project_id", "project_id")
VITAL_STATUS_COLUMNS = ("demographic.vital_status", "vital_status", "diagnoses.vital_status")
DAYS_TO_DEATH_COLUMNS = ("demographic.days_to_death", "days_to_death", "diagnoses.days_to_death")
FOLLOW_UP_COLUMNS = ("diagnoses.days_to_last_follow_up", "days_to_last_follow_up")
#: Cell values that mean "no value" in GDC files (compared in lower case).
EMPTY_VALUES = frozenset({"", "'--", "--", "null", "none", "nan", "na", "n/a"})
TSV_NAME = "clinical.tsv"
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class ClinicalError(ValueError):
    """A clinical file that cannot be read as GDC clinical data; the message names the file."""


@dataclass(frozen=True)
class ClinicalCase:
    """The clinical values of one case, pooled over its rows (TSV) or nested entries (JSON).

    Attributes:
        case_id: the case submitter id (``TCGA-XX-XXXX`` for TCGA).
        values: column -> the distinct non-empty values of the case's rows, in file order
            (empty placeholders such as ``'--`` are dropped).
        rows: how many rows (TSV) or case objects (JSON) the case had.
    """

    case_id: str
    values: Mapping[str, tuple[str, ...]]
    rows: int

    def pooled(self, columns: Iterable[str]) -> tuple[str, ...]:
        """The distinct values of every column in ``columns`` that the case has, in order."""
        return tuple(dict.fromkeys(v for c in columns for v in self.values.get(c, ())))


@dataclass(frozen=True)
class ClinicalTable:
    """Every case of one or more clinical files.

    Attributes:
        cases: case id -> its :class:`ClinicalCase`.
        columns: every column seen, in file order.
        sources: the files read.
    """

    cases: Mapping[str, ClinicalCase]
    columns: tuple[str, ...]
    sources: tuple[Path, ...]

    def resolve(self, name: str) -> str:
        """The column a user's field name means: the column itself (``demographic.gender``),
        or the one column whose last part is ``name`` (``gender``).

        Raises:
            ClinicalError: no such column, or several (naming them).
        """
        if name in self.columns:
            return name
        matches = [c for c in self.columns if c.rsplit(".", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        where = ", ".join(str(s) for s in self.sources)
        if matches:
            raise ClinicalError(
                f"{where}: field {name!r} is ambiguous: columns "
                f"{', '.join(matches)}; give one of them"
            )
        more = " ..." if len(self.columns) > 40 else ""
        raise ClinicalError(
            f"{where}: no column {name!r} (columns: {', '.join(self.columns[:40])}{more})"
        )


@dataclass(frozen=True)
class Survival:
    """Overall survival of one case, or why it has none.

    Attributes:
        time_days: time to death (event 1) or to last follow-up (event 0), in days; None when
            ``problems`` is not empty.
        event: 1 = death observed, 0 = censored; None with ``problems``.
        problems: why the case has no survival (each names the field and its values).
        notes: oddities that do not change the survival (a follow-up recorded after death).
    """

    time_days: float | None
    event: int | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def read_clinical(paths: Iterable[str | os.PathLike]) -> ClinicalTable:
    """Read GDC clinical files (TSV, a ``.tar.gz`` holding ``clinical.tsv``, or JSON) into one
    table; a case found in several files has its values pooled.

    Raises:
        ClinicalError: a file is missing, unreadable, not TSV/JSON, has no case id column, or
            lacks the fields overall survival needs (vital status, days to death, days to last
            follow-up), naming the file and the columns it has.
    """
    sources = tuple(Path(p) for p in paths)
    if not sources:
        raise ClinicalError("no clinical file given")
    values: dict[str, dict[str, dict[str, None]]] = defaultdict(lambda: defaultdict(dict))
    rows: dict[str, int] = defaultdict(int)
    columns: dict[str, None] = {}
    for path in sources:
        for case_id, record in _read_records(path):
            rows[case_id] += 1
            for column, cells in record.items():
                columns.setdefault(column)
                for value in cells:
                    if value.lower() not in EMPTY_VALUES:
                        values[case_id][column].setdefault(value)
    table = ClinicalTable(
        cases={
            cid: ClinicalCase(cid, {c: tuple(v) for c, v in values[cid].items()}, rows[cid])
            for cid in rows
        },
        columns=tuple(columns),
        sources=sources,
    )
    for field, names in (
        ("vital status", VITAL_STATUS_COLUMNS),
        ("days to death", DAYS_TO_DEATH_COLUMNS),
        ("days to last follow-up", FOLLOW_UP_COLUMNS),
    ):
        if not any(n in columns for n in names):
            raise ClinicalError(
                f"{', '.join(map(str, sources))}: no {field} column (one of "
                f"{', '.join(names)}); is this the GDC clinical file "
                f"(clinical.tsv or the clinical JSON)?"
            )
    return table


def overall_survival(case: ClinicalCase) -> Survival:
    """Overall survival of ``case`` (rules in the module docstring), never filled in.

    A value that is not a number is a problem in the field that gives the time (days_to_death
    for Dead, days_to_last_follow_up for Alive) and a note in the other one.
    """
    vital = case.pooled(VITAL_STATUS_COLUMNS)
    death, bad_death = _days(case, DAYS_TO_DEATH_COLUMNS, "days_to_death")
    follow, bad_follow = _days(case, FOLLOW_UP_COLUMNS, "days_to_last_follow_up")
    if not vital:
        return Survival(None, None, ("vital_status is empty ('--)",))
    if len({v.lower() for v in vital}) > 1:
        return Survival(None, None, (f"rows disagree on vital_status: {', '.join(vital)}",))
    status = vital[0].lower()
    problems: list[str] = []
    notes: list[str] = []
    if status == "dead":
        problems += bad_death
        notes += bad_follow
        time = _one(
            death,
            "days_to_death",
            None
            if bad_death
            else "vital_status Dead without days_to_death "
            f"({_listing(follow, 'days_to_last_follow_up')}; not used for a death)",
            problems,
        )
        event = 1
        if time is not None and follow and max(follow) > time:
            notes.append(
                f"days_to_last_follow_up {_fmt(max(follow))} is after days_to_death "
                f"{_fmt(time)}; time = days_to_death"
            )
    elif status == "alive":
        problems += bad_follow
        notes += bad_death
        if death:
            problems.append(
                f"vital_status Alive but days_to_death is {', '.join(map(_fmt, death))}"
            )
        time = _one(
            follow,
            "days_to_last_follow_up",
            None if bad_follow else "vital_status Alive without days_to_last_follow_up ('--)",
            problems,
        )
        event = 0
    else:
        return Survival(None, None, (f"vital_status is {vital[0]!r}, neither Dead nor Alive",))
    if problems or time is None:
        return Survival(None, None, tuple(problems), tuple(notes))
    return Survival(time, event, (), tuple(notes))


def _one(days: list[float], name: str, when_empty: str | None, problems: list[str]) -> float | None:
    """The one positive value of ``days``, or None with a problem appended (``when_empty``
    when there is none; None: the field's values were already reported as not numbers)."""
    if not days:
        if when_empty is not None:
            problems.append(when_empty)
    elif len(days) > 1:
        problems.append(f"rows disagree on {name}: {', '.join(map(_fmt, days))}")
    elif days[0] <= 0:
        problems.append(f"{name} is {_fmt(days[0])}; a survival time must be > 0 days")
    else:
        return days[0]
    return None


def _days(case: ClinicalCase, columns: tuple[str, ...], name: str) -> tuple[list[float], list[str]]:
    """The distinct numeric values of a day-count field, and a problem per value that is not a
    finite number."""
    numbers: list[float] = []
    problems: list[str] = []
    for value in case.pooled(columns):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            problems.append(f"{name} {value!r} is not a number of days")
        elif number not in numbers:
            numbers.append(number)
    return numbers, problems


def _listing(days: list[float], name: str) -> str:
    return f"{name} {', '.join(map(_fmt, days))}" if days else f"no {name} either"


def _fmt(days: float) -> str:
    return f"{days:g}"


def _read_records(path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """(case id, column -> its values) per row (TSV: one value a column) or case object (JSON:
    one value per nested entry, e.g. per diagnosis) of one file."""
    if not path.is_file():
        raise ClinicalError(f"clinical file not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith(TAR_SUFFIXES):
            return _tsv_records(_tsv_from_tar(path), path)
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, tarfile.TarError) as err:
        raise ClinicalError(f"{path}: cannot read the clinical file ({err})") from err
    if name.endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        return _json_records(text, path)
    return _tsv_records(text, path)


def _tsv_from_tar(path: Path) -> str:
    """The text of the ``clinical.tsv`` member of a GDC clinical ``.tar.gz``."""
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
        found = [m for m in members if Path(m.name).name == TSV_NAME]
        if len(found) != 1:
            raise ClinicalError(
                f"{path}: expected one {TSV_NAME} in the archive, found "
                f"{len(found)} (members: {', '.join(m.name for m in members)})"
            )
        handle = archive.extractfile(found[0])
        assert handle is not None  # a regular file member
        return handle.read().decode("utf-8-sig")


def _tsv_records(text: str, path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = [h.strip() for h in next(reader, [])]
    id_column = next((c for c in CASE_ID_COLUMNS if c in header), None)
    if id_column is None:
        raise ClinicalError(
            f"{path}: no case id column ({' or '.join(CASE_ID_COLUMNS)}) in a "
            f"tab-separated header of {len(header)} column(s) "
            f"({', '.join(header[:8])}); give the GDC clinical.tsv"
        )
    records = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ClinicalError(
                f"{path}: line {line} has {len(cells)} cells, the header {len(header)}"
            )
        record = {c: [v.strip()] for c, v in zip(header, cells)}
        case_id = record[id_column][0]
        if case_id.lower() in EMPTY_VALUES:
            raise ClinicalError(f"{path}: line {line} has no case id ({id_column})")
        records.append((case_id, record))
    return records


def _json_records(text: str, path: Path) -> list[tuple[str, dict[str, list[str]]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClinicalError(f"{path}: not valid JSON ({err})") from err
    records = []
    for index, case in enumerate(data if isinstance(data, list) else [data]):
        if not isinstance(case, dict) or not isinstance(case.get("submitter_id"), str):
            raise ClinicalError(
                f"{path}: case {index} is not an object with a 'submitter_id' "
                "(expected the GDC clinical JSON: a list of cases)"
            )
        flat: dict[str, list[str]] = defaultdict(list)
        for key, value in case.items():
            _flatten("cases" if _is_scalar(value) else "", key, value, flat)
        records.append((case["submitter_id"].strip(), dict(flat)))
    return records


def _flatten(prefix: str, key: str, value: Any, out: dict[str, list[str]]) -> None:
    """Append the scalar values under ``value`` to ``out[<prefix>.<key>...]``."""
    name = f"{prefix}.{key}" if prefix else key
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(name, k, v, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(prefix, key, item, out)
    else:
        out[name].append(_text(value))


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _text(value: Any) -> str:
    """A JSON scalar as the TSV would write it (null -> '', 120.0 -> '120')."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
