"""One writer per folder (issue 15, point 6): a second run on a locked output folder stops at
once naming the holder, or waits with --wait; a killed holder leaves the folder free."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radiograph.cli import build_parser, main
from radiograph.lock import (
    EXIT_LOCKED,
    LOCK_NAME,
    LockedError,
    folder_lock,
    held_by_another,
    read_holder,
)

SUPPORT = Path(__file__).resolve().parents[1] / "support"
DRIVER = [sys.executable, str(SUPPORT / "rg_process_stages.py")]


def start(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [*args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture()
def holder(tmp_path):
    """A process holding the lock of tmp_path / 'run' (command 'rg-test holder')."""
    folder = tmp_path / "run"
    proc = start(*DRIVER, "hold-lock", str(folder))
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        yield folder, proc
    finally:
        proc.kill()
        proc.wait()


def test_second_run_stops_at_once_naming_the_holder_then_runs_after_it_with_wait(tmp_path, capsys):
    out, gate = tmp_path / "cohort", tmp_path / "gate"
    synth = [
        "synth",
        str(out),
        "--subjects",
        "2",
        "--seed",
        "3",
        "--slide-size",
        "1344",
        "896",
        "--workers",
        "1",
    ]
    build_parser()  # imports every command's module, so that the timing below is the lock's
    first = start(*DRIVER, "gated-cli", str(gate), *synth)  # its subjects wait for the gate
    waiter = None
    try:
        wait_until(
            lambda: getattr(read_holder(out), "pid", None) == first.pid,
            120,
            "the first run to lock",
        )
        waiter = start(sys.executable, "-m", "radiograph.cli", *synth, "--wait")
        began = time.monotonic()
        status = main(synth)
        seconds = time.monotonic() - began
        err = capsys.readouterr().err
        assert status == EXIT_LOCKED and seconds < 3, (status, seconds, err)
        for fragment in (
            f"{out} is in use",
            f"pid {first.pid}",
            f"host {socket.gethostname()}",
            "started 20",
            "command: radiograph synth",
            "--wait",
        ):
            assert fragment in err, err
        waiting = next((line for line in waiter.stderr if "waiting for" in line), "")
        assert f"waiting for pid {first.pid} on host" in waiting, waiting
        assert not (out / "manifest.csv").exists()
        gate.touch()
        first_out, first_err = first.communicate(timeout=300)
        waiter_out, waiter_err = waiter.communicate(timeout=300)
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, first_err
    assert waiter.returncode == 0, waiter_err
    assert "wrote" in first_out and "wrote" in waiter_out
    # the waiter ran after the first run: it found everything done and redid nothing
    record = json.loads((out / "synth_record.json").read_text())
    assert [r["status"] for r in record["results"]] == ["skipped", "skipped"]
    assert read_holder(out) is None and not held_by_another(out)


def test_every_cohort_command_takes_the_lock_of_its_output_folder(holder, tmp_path, capsys):
    folder, proc = holder
    config = tmp_path / "train.yaml"
    config.write_text(
        f"graphs_dir: {tmp_path}\nmanifest: {tmp_path / 'm.csv'}\n"
        f"out_dir: {folder}\nmodalities: [pathology]\naggregator: mean\n"
    )
    commands = {
        "extract-pathology": ["--manifest", "absent.csv", "--out", str(folder)],
        "extract-radiology": ["--manifest", "absent.csv", "--out", str(folder)],
        "build-graphs": ["--features", str(tmp_path), "--out", str(folder)],
        "synth": [str(folder)],
        "train": ["--config", str(config)],
    }
    for command, arguments in commands.items():
        assert main([command, *arguments]) == EXIT_LOCKED, command
        err = capsys.readouterr().err
        assert f"radiograph {command}: {folder} is in use" in err, err
        assert f"pid {proc.pid}" in err and "command: rg-test holder" in err, err


def test_lock_of_a_killed_holder_is_free_and_a_timed_wait_gives_up(holder):
    folder, proc = holder
    assert held_by_another(folder)
    told = []
    began = time.monotonic()
    with pytest.raises(LockedError, match="still in use after waiting 0.5 s"):
        with folder_lock(folder, wait=True, timeout=0.5, on_wait=told.append):
            pass
    assert 0.5 <= time.monotonic() - began < 3
    assert [h.pid for h in told] == [proc.pid]

    proc.kill()
    proc.wait()
    assert not held_by_another(folder)
    assert read_holder(folder).pid == proc.pid  # the killed holder's record stays ...
    with folder_lock(folder, what="next run") as mine:  # ... and does not block
        assert read_holder(folder) == mine and mine.pid != proc.pid
    assert read_holder(folder) is None


def test_lock_is_reentrant_in_one_process_and_released_on_error(tmp_path):
    with folder_lock(tmp_path, what="outer") as outer:
        with folder_lock(tmp_path, what="inner") as inner:
            assert inner == outer
        assert read_holder(tmp_path) == outer  # leaving the inner block keeps the lock
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from radiograph.lock import held_by_another; "
                "sys.exit(0 if held_by_another(sys.argv[1]) else 1)",
                str(tmp_path),
            ]
        )
        assert probe.returncode == 0
    with pytest.raises(KeyError):
        with folder_lock(tmp_path):
            raise KeyError("boom")
    assert read_holder(tmp_path) is None and (tmp_path / LOCK_NAME).exists()
    with folder_lock(tmp_path):  # free again
        pass
