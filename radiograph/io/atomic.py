"""Atomic file writes: a killed process never leaves a half-written output.

Every writer in radiograph writes to a temporary file in the destination folder and renames it
over the destination only after the content is complete and flushed (``os.replace`` is atomic
on POSIX and Windows when source and destination are on the same file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Use this with libraries that write to a file name (h5py, ``torch.save``, SimpleITK,
    matplotlib). If the body raises, the temporary file is removed and ``path`` is untouched.

    Args:
        path: final destination. Its parent folder is created if needed.

    Yields:
        A path in the same folder named ``.tmp-<stem>-<random><extension>``, where the
        extension is everything from the first dot of ``path``'s name (``.nii.gz`` stays whole,
        so libraries that pick a writer from it still work). The file is created empty with
        the usual permissions (umask applies).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stem, extension = _split_name(dest)
    while True:
        tmp = dest.with_name(f"{TMP_MARK}{stem}-{secrets.token_hex(6)}{extension}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that writers of ``path`` left behind (e.g. when killed mid-write)."""
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    stem, extension = _split_name(dest)
    return sorted(dest.parent.glob(f"{TMP_MARK}{stem}-*{extension}"))


def _split_name(path: Path) -> tuple[str, str]:
    """("S1", ".nii.gz") for "S1.nii.gz": the name up to its first dot, and the rest."""
    stem, dot, rest = path.name.partition(".")
    return stem, dot + rest


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing and rename it to ``path`` when the block succeeds."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open is for writing; got mode {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode.replace("x", "w"), **kwargs) as fh:
            yield fh


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def finished_files(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Files in ``folder`` matching ``pattern`` (``Path.glob``), without writers' temporaries.

    Use this, not a bare ``glob``, to list outputs: ``Path.glob("*.h5")`` also matches the
    hidden ``.tmp-*.h5`` file of a write in progress or of a killed writer.
    """
    return sorted(p for p in Path(folder).glob(pattern) if not p.name.startswith(TMP_MARK))


def partial_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files left in ``folder`` (recursively), e.g. by a process killed mid-write."""
    return sorted(p for p in Path(folder).rglob(f"{TMP_MARK}*") if p.is_file())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
