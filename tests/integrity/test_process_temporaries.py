"""Temporary-file clean-up removes only the files of dead writers (issue 15, point 6): one
run's clean-up deleted another live run's in-flight file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import rg_test_stages as stages

from radiograph.io.atomic import atomic_path, stale_temporaries
from radiograph.lock import folder_lock, pid_alive
from radiograph.runner import Task, run_cohort

SUPPORT = Path(__file__).resolve().parents[1] / "support"
DRIVER = [sys.executable, str(SUPPORT / "rg_process_stages.py")]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def host_token() -> str:
    return "".join(
        c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in socket.gethostname()
    )


def test_temporary_names_carry_the_writers_host_and_pid(tmp_path):
    host = host_token()
    with atomic_path(tmp_path / "S1.nii.gz") as tmp:
        assert tmp.name.startswith(f".tmp-S1-{host}-{os.getpid()}-")
        assert tmp.name.endswith(".nii.gz") and len(tmp.name) == len(
            f".tmp-S1-{host}-{os.getpid()}-"
        ) + 12 + len(".nii.gz")
        assert stale_temporaries(tmp_path / "S1.nii.gz") == []  # this process is alive


def test_cleanup_keeps_a_live_writers_file_and_removes_a_killed_ones(tmp_path):
    out = tmp_path / "S0.txt"
    live = start(*DRIVER, "hold-temp", str(out), str(tmp_path / "gate"))
    killed = start(*DRIVER, "hold-temp", str(out), str(tmp_path / "never"))
    try:
        live_tmp = Path(live.stdout.readline().strip())
        killed_tmp = Path(killed.stdout.readline().strip())
        assert f"-{live.pid}-" in live_tmp.name and f"-{killed.pid}-" in killed_tmp.name
        killed.kill()
        killed.wait()
        assert stale_temporaries(out) == [killed_tmp]
        record = run_cohort(
            [Task("S0", (out,), 3)],
            stages.write_square,
            record_path=tmp_path / "r.json",
            workers=1,
            progress=False,
        )
        assert record.done == ["S0"] and out.read_text().startswith("9 ")
        assert not killed_tmp.exists()
        assert live_tmp.read_text() == "in flight"  # the live writer's file survived ...
        (tmp_path / "gate").touch()
        _, err = live.communicate(timeout=60)
        assert live.returncode == 0, err  # ... so its rename succeeds
    finally:
        for proc in (live, killed):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert out.read_text() == "in flight" and not live_tmp.exists()


def test_another_hosts_temporary_is_kept_while_another_run_holds_the_lock(tmp_path):
    run = tmp_path / "run"
    out = run / "features" / "S1.h5"
    out.parent.mkdir(parents=True)
    foreign = out.parent / ".tmp-S1-node17_cluster-4242-0123456789ab.h5"
    legacy = out.parent / ".tmp-S1-abc123.h5"
    sibling = out.parent / ".tmp-S1-x-node17-4242-0123456789ab.h5"  # of output S1-x.h5
    for path in (foreign, legacy, sibling):
        path.write_text("half")
    holder = start(*DRIVER, "hold-lock", str(run))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert stale_temporaries(out) == [legacy]
    finally:
        holder.kill()
        holder.wait()
    assert stale_temporaries(out) == sorted([foreign, legacy])
    with folder_lock(run):  # this process is the run folder's one writer
        assert stale_temporaries(out) == sorted([foreign, legacy])
    assert stale_temporaries(out.parent / "S1-x.h5") == [sibling]  # its own output's list


def test_a_zombie_counts_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pid_alive(proc.pid)
    proc.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[-1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not pid_alive(proc.pid)  # exited, not reaped yet
    proc.wait()
    assert not pid_alive(proc.pid)


def test_run_cohort_removes_the_record_temporary_of_a_killed_run(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    assert not pid_alive(pid)
    left = tmp_path / f".tmp-run-{host_token()}-{pid}-0123456789ab.json"
    left.write_text('{"half": ')
    run_cohort(
        [Task("S0", (tmp_path / "S0.txt",), 2)],
        stages.write_square,
        record_path=tmp_path / "run.json",
        workers=1,
        progress=False,
    )
    assert not left.exists() and (tmp_path / "run.json").exists()
