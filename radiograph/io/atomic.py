"""Atomic file writes: a killed process never leaves a half-written output.

Every writer in radiograph writes to a temporary file in the destination folder and renames it
over the destination only after the content is complete and flushed (``os.replace`` is atomic
on POSIX and Windows when source and destination are on the same file system).

A temporary file's name carries its writer's host and pid, so that clean-up
(:func:`stale_temporaries`) removes only the files of writers that are dead: never the
in-flight file of another live run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from radiograph.lock import LOCK_NAME, held_by_another, pid_alive

TMP_MARK = ".tmp-"
#: ``<host>-<pid>-<random>`` between ``.tmp-<stem>-`` and the extension of a temporary name.
_WRITER = re.compile(r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)-[0-9a-f]{12}")
#: ``<random>`` alone: a temporary of a version that did not record its writer.
_ANONYMOUS = re.compile(r"[0-9a-f]+")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    Use this with libraries that write to a file name (h5py, ``torch.save``, SimpleITK,
    matplotlib). If the body raises, the temporary file is removed and ``path`` is untouched.

    Args:
        path: final destination. Its parent folder is created if needed.

    Yields:
        A path in the same folder named ``.tmp-<stem>-<host>-<pid>-<random><extension>``
        (host: this machine's name with characters other than letters, digits and ``_``
        replaced by ``_``; pid: this process), where the extension is everything from the first
        dot of ``path``'s name (``.nii.gz`` stays whole, so libraries that pick a writer from it
        still work). The file is created empty with the usual permissions (umask applies).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stem, extension = _split_name(dest)
    writer = f"{_host_token()}-{os.getpid()}"
    while True:
        tmp = dest.with_name(f"{TMP_MARK}{stem}-{writer}-{secrets.token_hex(6)}{extension}")
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
    """Temporary files of ``path`` whose writers are dead (e.g. killed mid-write).

    A temporary is stale when its writer (host and pid in its name, see :func:`atomic_path`)
    is on this host and no longer running, or is on another host (a cluster worker) and no
    other process holds the lock of the run folder (:mod:`radiograph.lock`; the nearest
    folder above ``path`` with a lock file): then no run is writing there. A temporary without
    a writer in its name (written by an older version) is stale. The in-flight file of a live
    writer is never listed.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    stem, extension = _split_name(dest)
    prefix = f"{TMP_MARK}{stem}-"
    stale = []
    for tmp in dest.parent.glob(f"{prefix}*{extension}"):
        middle = tmp.name[len(prefix) : len(tmp.name) - len(extension)]
        writer = _WRITER.fullmatch(middle)
        if writer is not None:
            if _writer_dead(dest.parent, writer["host"], int(writer["pid"])):
                stale.append(tmp)
        elif _ANONYMOUS.fullmatch(middle):
            stale.append(tmp)
        # anything else is the temporary of another output whose name starts with stem + "-"
    return sorted(stale)


def _writer_dead(folder: Path, host: str, pid: int) -> bool:
    if host == _host_token():
        return not pid_alive(pid)
    for parent in (folder, *folder.parents):
        if (parent / LOCK_NAME).exists():
            return not held_by_another(parent)
    return True


def _host_token() -> str:
    """This machine's name as it appears in temporary names (letters, digits and ``_``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


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
