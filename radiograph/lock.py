"""One writer per output folder: an exclusive ``fcntl.flock`` on ``<folder>/.radiograph.lock``.

Every cohort command and the study hold this lock on their output folder for their whole run;
a second run on the same folder fails at once with :class:`LockedError`, whose message names
the holder (pid, host, start time, command), or waits for it (``wait=True``, the ``--wait``
option). With Dask the lock is taken by the client (the command); workers never take it.

The lock file holds the holder's JSON ``{"pid", "host", "started", "command"}`` while it is
held and is emptied on release. The kernel releases a ``flock`` when its holder dies (even by
SIGKILL), so a killed run never leaves the folder locked; a stale JSON left by a killed holder
is overwritten by the next one. ``flock`` works between processes of one machine and, on
Linux, over NFS (emulated with byte-range locks); other network file systems may not honour it.

A process that already holds a folder's lock may take it again (the lock is re-entrant
within a process): only other processes are kept out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = ".radiograph.lock"
#: Exit status of a command refused because another run holds its folder (EX_TEMPFAIL).
EXIT_LOCKED = 75
#: Seconds between two tries of a waiting lock.
POLL_SECONDS = 0.2
#: Seconds a refused run keeps trying while the holder's JSON is missing or names a dead
#: process (the holder may be writing it, or a probe may hold the lock for a moment).
GRACE_SECONDS = 1.0

_held: dict[str, LockHolder] = {}  # realpath of a folder -> holder: locks of this process
_held_guard = threading.Lock()


class LockedError(RuntimeError):
    """Another process holds the folder's lock; the message names it and how to wait."""

    def __init__(self, message: str, holder: LockHolder | None):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LockHolder:
    """Who holds a folder's lock (the JSON in its lock file)."""

    pid: int
    host: str
    started: str
    command: str

    def describe(self) -> str:
        return (
            f"pid {self.pid} on host {self.host}, started {self.started}, command: {self.command}"
        )

    def is_alive(self) -> bool | None:
        """True / False for a holder on this host; None (unknown) for one on another host."""
        if self.host != socket.gethostname():
            return None
        return pid_alive(self.pid)


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike,
    *,
    wait: bool = False,
    timeout: float | None = None,
    what: str | None = None,
    on_wait: Callable[[LockHolder | None], None] | None = None,
) -> Iterator[LockHolder]:
    """Hold the exclusive lock of ``folder`` (created if needed) for the ``with`` block.

    Args:
        folder: the output folder.
        wait: when the folder is locked, wait for the holder to finish instead of failing.
        timeout: with ``wait``, give up (:class:`LockedError`) after this many seconds
            (None: wait as long as it takes).
        what: the holder's command recorded in the lock file (default: this process's
            command line).
        on_wait: called once, with the current holder, when ``wait`` has to wait.

    Yields:
        This process's :class:`LockHolder` record.

    Raises:
        LockedError: another process holds the lock (and not ``wait``, or ``timeout`` passed).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    with _held_guard:
        mine = _held.get(key)
    if mine is not None:  # re-entered: the outermost block releases
        yield mine
        return
    fd = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, folder, wait, timeout, on_wait)
        mine = LockHolder(os.getpid(), socket.gethostname(), _now(), what or shlex.join(sys.argv))
        _write_holder(fd, mine)
        with _held_guard:
            _held[key] = mine
        try:
            yield mine
        finally:
            with _held_guard:
                del _held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_holder(folder: str | os.PathLike) -> LockHolder | None:
    """The holder recorded in ``folder``'s lock file (None: no file, empty, or unreadable).

    The file is emptied on release, so a record there means a holder that is running or was
    killed; use :func:`held_by_another` to know whether the lock is held now.
    """
    try:
        text = lock_path(folder).read_text(encoding="utf-8")
        raw = json.loads(text)
        return LockHolder(
            int(raw["pid"]), str(raw["host"]), str(raw["started"]), str(raw["command"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def held_by_another(folder: str | os.PathLike) -> bool:
    """Whether a process other than this one holds ``folder``'s lock right now."""
    with _held_guard:
        if os.path.realpath(folder) in _held:
            return False
    try:
        fd = os.open(lock_path(folder), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases a probe that succeeded
    return False


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and has not exited (a zombie, an exited
    process its parent has not reaped yet, counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS: the kill above is the answer), or it exited meanwhile
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _acquire(
    fd: int,
    folder: Path,
    wait: bool,
    timeout: float | None,
    on_wait: Callable[[LockHolder | None], None] | None,
) -> None:
    start = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        holder = read_holder(folder)
        waited = time.monotonic() - start
        if wait and (timeout is None or waited < timeout):
            if not told and on_wait is not None:
                on_wait(holder)
            told = True
        elif (holder is not None and holder.is_alive() is not False) or waited >= GRACE_SECONDS:
            raise LockedError(_locked_message(folder, holder, wait, timeout), holder)
        time.sleep(POLL_SECONDS if wait else 0.05)


def _locked_message(
    folder: Path, holder: LockHolder | None, wait: bool, timeout: float | None
) -> str:
    who = holder.describe() if holder else "a holder that has not recorded itself yet"
    if wait:
        return f"{folder} is still in use after waiting {timeout:g} s: {who}"
    return (
        f"{folder} is in use by another run ({who}); one run writes to a folder at a time. "
        "Wait for it to finish, or rerun with --wait to start as soon as it does."
    )


def _write_holder(fd: int, holder: LockHolder) -> None:
    data = json.dumps(
        {
            "pid": holder.pid,
            "host": holder.host,
            "started": holder.started,
            "command": holder.command,
        }
    ).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data + b"\n", 0)
    os.fsync(fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
