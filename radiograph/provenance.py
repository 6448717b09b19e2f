"""What each output was made from, so that a rerun redoes exactly the outputs that changed.

Every per-subject output (feature h5, thumbnail, graph), the study's habitat model and every
fold's baselines table has a small JSON sidecar ``<output>.prov.json``, written atomically::

    {"format": 1,
     "output_fingerprint": "...",        # binds the record to this very file (None: pending)
     "inputs":   {"slide": "<fingerprint>", "weights": "<fingerprint>", ...},
     "upstream": {"fold": "<digest of the upstream output's record>", ...},
     "settings": "<settings digest>",
     "settings_summary": {...},          # the canonical settings, to say what changed
     "digest":   "<digest of inputs, upstream and settings>"}

A stage builds the :class:`Provenance` it expects for each output (cheap: file fingerprints
and a digest of its settings) and :func:`is_current` compares it with the record. An output is
redone when its record is missing (made by an older version, or lost), unreadable, belongs to
another file (the output was rewritten after its record), or differs in inputs, upstream
digests or settings. Training folds keep their digest in ``summary.json`` instead
(:mod:`radiograph.train.trainer`); the report's statistics and figures keep one record per
group of outputs (:mod:`radiograph.report.cache`).

A stage writes the record twice: pending (no output fingerprint) before it writes its outputs
(:func:`begin_outputs`, which first removes the outputs that are not current), and bound to
the finished output after (:func:`record_outputs`). A run killed between the output's rename
and its final record thus leaves an output that still counts as current (only this task could
have written it after its pending record), and no window where a finished output lacks one.

Fingerprints (:func:`file_fingerprint`) hash sampled blocks, not whole files: size and mtime
catch every ordinary write, the content hash catches a file replaced by another with the same
size and a preserved mtime. A copy that does not preserve mtimes (``cp`` without ``-p``)
changes every fingerprint, so everything downstream of it is redone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiograph.io.atomic import read_json, stale_temporaries, write_json

if TYPE_CHECKING:
    from radiograph.runner import Task

#: Bytes per sampled block of :func:`file_fingerprint`.
BLOCK_BYTES = 64 * 1024
#: Blocks sampled at fixed fractions of a large file, besides its first and last block.
SAMPLED_BLOCKS = 16
#: Suffix of an output's provenance record: ``S1.h5`` -> ``S1.h5.prov.json``.
SIDECAR_SUFFIX = ".prov.json"
#: Version of the sidecar layout.
FORMAT = 1
#: Fingerprint of an input file that does not exist (the task then fails on its own).
MISSING = "missing"
#: Start of :func:`is_current`'s reason when an output has no record.
NO_RECORD = "no provenance record"


def file_fingerprint(path: str | os.PathLike) -> str:
    """``"<size>-<mtime_ns>-<hash>"`` of a file, reading at most 18 x 64 KiB of it.

    The hash is BLAKE2b (128 bit) of the size and of sampled content: the whole file when it
    is at most 18 blocks of 64 KiB, else its first and last 64 KiB and 16 blocks of 64 KiB at
    the fixed offsets ``(size - 64 KiB) * i / 17``, i = 1..16. It does NOT read the whole file,
    so a 2 GB slide costs 18 reads (benchmarks/README.md, "Provenance"). Consequence: an edit
    inside an unsampled block that keeps the size and the mtime is not detected; any normal
    write changes the mtime (which is part of the fingerprint), so it is.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        stat = os.fstat(fh.fileno())
        digest = hashlib.blake2b(str(stat.st_size).encode(), digest_size=16)
        for offset in _sample_offsets(stat.st_size):
            fh.seek(offset)
            digest.update(fh.read(BLOCK_BYTES))
    return f"{stat.st_size}-{stat.st_mtime_ns}-{digest.hexdigest()}"


def _sample_offsets(size: int) -> list[int]:
    """Offsets of the blocks :func:`file_fingerprint` reads from a file of ``size`` bytes."""
    if size <= (SAMPLED_BLOCKS + 2) * BLOCK_BYTES:
        return list(range(0, size, BLOCK_BYTES))
    last = size - BLOCK_BYTES
    middle = [last * i // (SAMPLED_BLOCKS + 1) for i in range(1, SAMPLED_BLOCKS + 1)]
    return [0, *middle, last]


def canonical(obj: Any, *, exclude: Iterable[str] = ()) -> Any:
    """The JSON-ready canonical form of settings, for :func:`settings_digest`.

    Dataclasses become dicts of their fields, mappings get string keys (sorted when dumped),
    tuples and arrays become lists, numpy scalars Python numbers. A float with an integer
    value becomes that integer (``1.0`` and ``1`` are one setting), NaN and infinities the
    strings ``"nan"``, ``"inf"``, ``"-inf"``; other floats keep their exact value (JSON writes
    ``repr``). Paths become absolute (``~`` expanded, not resolving symlinks), so the same
    file named from two working directories is one setting. Leave out of ``obj`` what does
    not shape the output (devices, batch sizes, worker counts) and replace files whose content
    matters by their fingerprint (weights, parameter files): the stages do both.

    Args:
        obj: a dataclass instance, mapping, sequence or scalar.
        exclude: top-level field or key names to leave out.

    Raises:
        TypeError: a value of another type (named), rather than a silent ``str()``.
    """
    excluded = set(exclude)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: canonical(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.name not in excluded
        }
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in obj.items() if str(k) not in excluded}
    if isinstance(obj, np.ndarray):
        return canonical(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        return canonical(obj.item())
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return repr(obj)
        return int(obj) if obj.is_integer() and abs(obj) < 2**53 else obj
    if isinstance(obj, os.PathLike):
        return os.path.abspath(os.path.expanduser(os.fspath(obj)))
    raise TypeError(f"settings value of type {type(obj).__name__} has no canonical form: {obj!r}")


def digest_of(obj: Any) -> str:
    """BLAKE2b (128 bit, hex) of ``obj``'s canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def settings_digest(obj: Any, *, exclude: Iterable[str] = ()) -> str:
    """Digest of settings: :func:`digest_of` ``canonical(obj, exclude=exclude)``."""
    return digest_of(canonical(obj, exclude=exclude))


@dataclass(frozen=True)
class Provenance:
    """What an output is made from.

    Attributes:
        inputs: name -> :func:`file_fingerprint` of each input file (:data:`MISSING` when
            absent).
        upstream: name -> digest of an upstream output's record (e.g. a fold's digest).
        settings: :func:`settings_digest` of the settings that shape the output.
        settings_summary: their canonical form (small), to say which setting changed.
    """

    inputs: Mapping[str, str] = field(default_factory=dict)
    upstream: Mapping[str, str] = field(default_factory=dict)
    settings: str = ""
    settings_summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Digest of inputs, upstream digests and settings (not of the summary)."""
        return digest_of(
            {
                "inputs": dict(self.inputs),
                "upstream": dict(self.upstream),
                "settings": self.settings,
            }
        )

    @property
    def missing_inputs(self) -> list[str]:
        """Names of the inputs that did not exist when the record was made."""
        return [name for name, fingerprint in self.inputs.items() if fingerprint == MISSING]

    def to_dict(self) -> dict[str, Any]:
        """The record's fields and its digest, JSON-ready."""
        return {
            "inputs": dict(self.inputs),
            "upstream": dict(self.upstream),
            "settings": self.settings,
            "settings_summary": dict(self.settings_summary),
            "digest": self.digest,
        }


def make_provenance(
    settings: Any,
    *,
    files: Mapping[str, str | os.PathLike] | None = None,
    fingerprints: Mapping[str, str] | None = None,
    upstream: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
) -> Provenance:
    """The expected provenance of an output.

    Args:
        settings: what shapes the output, digested by :func:`settings_digest` less ``exclude``.
        files: input name -> path, fingerprinted here (see :func:`fingerprint_files`).
        fingerprints: input name -> fingerprint computed before (inputs shared by many
            outputs, such as encoder weights, fingerprinted once).
        upstream: name -> digest of an upstream output's record.
    """
    summary = canonical(settings, exclude=exclude)
    return Provenance(
        inputs={**(fingerprints or {}), **fingerprint_files(files or {})},
        upstream=dict(upstream or {}),
        settings=digest_of(summary),
        settings_summary=summary if isinstance(summary, dict) else {"value": summary},
    )


def fingerprint_files(files: Mapping[str, str | os.PathLike]) -> dict[str, str]:
    """name -> :func:`file_fingerprint` of each file, :data:`MISSING` for one that does not
    exist (its task then fails with its own message)."""
    out = {}
    for name, path in files.items():
        try:
            out[name] = file_fingerprint(path)
        except FileNotFoundError:
            out[name] = MISSING
    return out


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where ``output``'s record lives: ``<output>.prov.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR_SUFFIX)


def write_provenance(
    output: str | os.PathLike, provenance: Provenance, *, pending: bool = False
) -> Path:
    """Write ``output``'s record (atomically), binding it to the output's current fingerprint.

    Call it after the output is complete, or with ``pending`` before the output is written
    (then the record has no output fingerprint; see :func:`begin_outputs`). Returns the
    sidecar path.

    Raises:
        FileNotFoundError: ``output`` does not exist (and not ``pending``).
    """
    bound = None if pending else file_fingerprint(output)
    record = {"format": FORMAT, "output_fingerprint": bound, **provenance.to_dict()}
    path = sidecar_path(output)
    write_json(path, record)
    return path


def read_provenance(output: str | os.PathLike) -> dict[str, Any] | None:
    """``output``'s record as written by :func:`write_provenance`; None when it has none.

    Raises:
        ValueError: the record exists but is not a readable JSON object (naming the file).
    """
    path = sidecar_path(output)
    try:
        record = read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable provenance record ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: unreadable provenance record (not a JSON object)")
    return record


def is_current(output: str | os.PathLike, expected: Provenance) -> tuple[bool, str]:
    """Whether ``output`` exists and was made from exactly ``expected``; and why not.

    Returns:
        ``(True, "current")``, or ``(False, reason)`` with reason one of: ``"output
        missing"``, ``"no provenance record (...)"`` (:data:`NO_RECORD`), ``"unreadable
        provenance record"``, ``"output rewritten after its provenance record"``, or what
        differs: ``"settings changed (target_mpp: 0.5 -> 1.0)"``, ``"input changed: slide"``,
        ``"upstream changed: fold"``.
    """
    output = Path(output)
    if not output.exists():
        return False, "output missing"
    try:
        record = read_provenance(output)
    except ValueError:
        return False, "unreadable provenance record"
    if record is None:
        return False, f"{NO_RECORD} (made by an older version of radiograph, or it was lost)"
    bound = record.get("output_fingerprint")
    if bound is not None and bound != file_fingerprint(output):
        return False, "output rewritten after its provenance record"
    if record.get("digest") == expected.digest:
        return True, "current"
    return False, _difference(record, expected)


def _difference(record: Mapping[str, Any], expected: Provenance) -> str:
    """What differs between a stored record and the expected provenance, in words."""
    reasons = []
    if record.get("settings") != expected.settings:
        old = _flatten(record.get("settings_summary") or {})
        new = _flatten(expected.settings_summary)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        details = ", ".join(
            f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in changed[:3]
        )
        reasons.append(f"settings changed ({details})" if details else "settings changed")
    for part in ("inputs", "upstream"):
        old = record.get(part) or {}
        new = getattr(expected, part)
        names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if names:
            noun = "input" if part == "inputs" else "upstream"
            reasons.append(
                f"{noun} changed: {', '.join(names[:3])}" + (" ..." if len(names) > 3 else "")
            )
    return "; ".join(reasons) or "record of another kind"


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level with dotted keys: ``{"params.lambda_f": 0.1, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if value is not None else "(none)"
    return text if len(text) <= 40 else text[:37] + "..."


def begin_outputs(outputs: Sequence[str | os.PathLike], provenance: Provenance | None) -> None:
    """Before a task writes ``outputs``: remove those not current for ``provenance``, then
    write a pending record for each.

    Nothing is done when ``provenance`` is None, or names a missing input (the task fails on
    it; a pending record would make the old output look current). A pending record beside an
    output that exists means the output was written by this task after the record (a
    non-current one was removed first), so :func:`is_current` accepts it.
    """
    if provenance is None or provenance.missing_inputs:
        return
    for output in outputs:
        if not is_current(output, provenance)[0]:
            discard(output)
        write_provenance(output, provenance, pending=True)


def record_outputs(outputs: Sequence[str | os.PathLike], provenance: Provenance | None) -> None:
    """Write the record of each finished output, bound to its fingerprint (nothing when
    ``provenance`` is None)."""
    if provenance is None:
        return
    for output in outputs:
        write_provenance(output, provenance)


def discard(output: str | os.PathLike) -> None:
    """Remove an output and its record (each if present)."""
    Path(output).unlink(missing_ok=True)
    sidecar_path(output).unlink(missing_ok=True)


def outputs_current(outputs: Sequence[str | os.PathLike], expected: Provenance) -> tuple[bool, str]:
    """:func:`is_current` of every output: (True, "current") or the first output's reason."""
    for output in outputs:
        current, reason = is_current(output, expected)
        if not current:
            return False, f"{Path(output).name}: {reason}"
    return True, "current"


def prepare_rerun(stage: str, tasks: Sequence[Task], noun: str = "subjects") -> str:
    """Find the tasks whose existing outputs are out of date, remove those outputs, say so.

    A task is out of date when all its outputs exist but one is not current for the task's
    ``provenance`` (tasks without one are left alone). Its outputs and records are removed
    now, before the stage runs, so that the folder never holds outputs of two settings at
    once, even when the redo fails or the run is killed. A task with a missing input keeps its
    outputs (the redo fails and is reported; a missing input is not a changed one). The
    temporary files of records whose writers died (a killed run) are removed as well.

    Returns:
        The lines to print ("" when nothing changed), e.g. ``"extract-pathology: 3 of 48
        slides changed since the last run (settings or inputs): redoing them"`` plus up to
        three examples, and once, how many outputs an older version made without a record.
    """
    changed: list[tuple[str, str]] = []
    unrecorded: list[str] = []
    for task in tasks:
        for output in task.outputs:
            for stale in stale_temporaries(sidecar_path(output)):
                stale.unlink(missing_ok=True)
        expected = task.provenance
        if expected is None or not task.outputs or expected.missing_inputs:
            continue
        if not all(Path(p).exists() for p in task.outputs):
            continue
        current, reason = outputs_current(task.outputs, expected)
        if current:
            continue
        (unrecorded.append(task.key) if NO_RECORD in reason else changed.append((task.key, reason)))
        for output in task.outputs:
            discard(output)
    lines = []
    if changed:
        lines.append(
            f"{stage}: {len(changed)} of {len(tasks)} {noun} changed since the last run "
            "(settings or inputs): redoing them"
        )
        lines += [f"  {key}: {reason}" for key, reason in changed[:3]]
        if len(changed) > 3:
            lines.append(f"  ... and {len(changed) - 3} more")
    if unrecorded:
        lines.append(
            f"{stage}: {len(unrecorded)} of {len(tasks)} {noun} have outputs without a "
            "provenance record (made by an older version of radiograph): redoing them"
        )
    return "\n".join(lines)
