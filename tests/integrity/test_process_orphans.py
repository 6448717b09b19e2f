"""Workers die with their parent (issue 15, point 7): SIGKILL of a parent running a pool of
2 workers used to orphan them (they kept running and writing). Checked by pid after 5 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            new = {int(c) for c in children.read_text().split()} - found
            found |= new
            todo += new
    return found


def test_sigkill_of_the_parent_ends_its_busy_workers(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, str(SUPPORT / "rg_process_stages.py"), "pool", str(tmp_path), "4"],
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while len(workers) < 2:  # both workers are inside a 60-s task
            assert time.monotonic() < deadline and parent.poll() is None, "workers never started"
            workers = {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}
            time.sleep(0.05)
        family = descendants(parent.pid)
        assert workers <= family
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        time.sleep(5)
        alive = sorted(pid for pid in family if running(pid))
        assert alive == [], f"processes of the killed parent still running: {alive}"
        assert not list(tmp_path.glob("S*.txt"))
    finally:
        for pid in workers | descendants(parent.pid):
            if running(pid):
                os.kill(pid, signal.SIGKILL)
