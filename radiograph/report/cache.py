"""Reuse the report's statistics and figures when what they are computed from is unchanged.

The report's intervals and comparisons (1000-resample bootstraps, Kang and DeLong tests, the
corrected resampled t-test) and its figures (PNG, PDF, SVG) are pure functions of the study's
long tables (the fold results, the per-subject risks or probabilities) and of the report
settings. Each group of them is made by :func:`reuse_or_make`, which keeps one record per group
in ``report/.provenance/<group>.json``::

    {"format": 1,
     "parts":   {"risks": "<digest>", "results": "<digest>", "settings": "<digest>"},
     "digest":  "<digest of parts>",
     "outputs": {"concordance_pooled.csv": "<file fingerprint>", ...}}

A group is made again when its record is missing or unreadable, when one part's digest
changed (any value of any prediction: :func:`frame_digest` hashes every value's bits), or when
one of its outputs is missing or was rewritten since (its fingerprint,
:func:`radiograph.provenance.file_fingerprint`, differs). The record is removed before a group
is made and written after all its outputs are, so a run killed in between makes it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from radiograph.io.atomic import read_json, write_json
from radiograph.provenance import digest_of, file_fingerprint

#: Folder of the group records, under the report folder.
RECORD_DIR = ".provenance"
#: Version of the record layout.
FORMAT = 1
#: Twins that :func:`radiograph.io.figures.save_figure` writes beside each PNG.
FIGURE_TWINS = (".pdf", ".svg")


def frame_digest(frame: pd.DataFrame) -> str:
    """BLAKE2b (128 bit, hex) of a table: its column names and dtypes, and every value in row
    order (floats by their exact bits, :func:`pandas.util.hash_pandas_object`); the index is
    left out. Any changed value, row or column changes it."""
    digest = hashlib.blake2b(digest_size=16)
    header = [[str(c) for c in frame.columns], [str(t) for t in frame.dtypes]]
    digest.update(json.dumps(header).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def with_twins(pngs: Sequence[Path]) -> list[Path]:
    """The PNG files and their PDF and SVG twins that exist."""
    return [
        p for png in pngs for p in (png, *(png.with_suffix(s) for s in FIGURE_TWINS)) if p.exists()
    ]


def record_path(folder: str | os.PathLike, group: str) -> Path:
    """``<folder>/.provenance/<group>.json``."""
    return Path(folder) / RECORD_DIR / f"{group}.json"


def reuse_or_make(
    folder: str | os.PathLike,
    group: str,
    parts: Mapping[str, Any],
    make: Callable[[], Sequence[Path]],
) -> tuple[bool, str]:
    """Call ``make`` unless the outputs of ``group`` were made from ``parts`` and are unchanged.

    Args:
        folder: the report folder; output names in the record are relative to it.
        group: the record's name (a file name).
        parts: name -> what the outputs are computed from (a :func:`frame_digest`, settings),
            each digested by :func:`radiograph.provenance.digest_of`.
        make: writes the outputs (under ``folder``) and returns their paths.

    Returns:
        ``(made, reason)``: whether ``make`` ran, and why (``"no record"``, ``"changed:
        risks"``, ``"output missing: x.csv"``, ``"output rewritten: x.png"``) or
        ``"unchanged"``.
    """
    folder = Path(folder)
    path = record_path(folder, group)
    digests = {name: digest_of(value) for name, value in parts.items()}
    reason = _stale(folder, path, digests)
    if reason is None:
        return False, "unchanged"
    path.unlink(missing_ok=True)
    outputs = make()
    write_json(
        path,
        {
            "format": FORMAT,
            "parts": digests,
            "digest": digest_of(digests),
            "outputs": {_relative(p, folder): file_fingerprint(p) for p in outputs},
        },
    )
    return True, reason


def _stale(folder: Path, path: Path, digests: Mapping[str, str]) -> str | None:
    """Why the group recorded at ``path`` must be made again; None when it is current."""
    try:
        record = read_json(path)
    except FileNotFoundError:
        return "no record"
    except (OSError, ValueError):
        return "unreadable record"
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return "record of another version"
    if record.get("digest") != digest_of(dict(digests)):
        old = record.get("parts") or {}
        changed = sorted(k for k in set(old) | set(digests) if old.get(k) != digests.get(k))
        return f"changed: {', '.join(changed)}"
    for name, fingerprint in (record.get("outputs") or {}).items():
        try:
            if file_fingerprint(folder / name) != fingerprint:
                return f"output rewritten: {name}"
        except FileNotFoundError:
            return f"output missing: {name}"
    return None


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (POSIX separators).

    Raises:
        ValueError: ``path`` is not under ``folder`` (naming both).
    """
    try:
        return Path(path).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"report output {path} is not under the report folder {folder}") from None
