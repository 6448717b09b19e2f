"""Stage functions and drivers of the process-safety tests (tests/integrity/test_process_*).

Top-level, so that spawned worker processes can unpickle them. Run as a script it is a driver:

    python rg_process_stages.py pool FOLDER N          N tasks of mark_and_sleep on 2 workers
    python rg_process_stages.py gated-cli GATE ARGS    ``radiograph ARGS`` with each synth
                                                       subject waiting for the file GATE
    python rg_process_stages.py hold-temp PATH GATE    an atomic write of PATH in flight until
                                                       the file GATE exists
    python rg_process_stages.py hold-lock FOLDER       the lock of FOLDER held
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from radiograph.io.atomic import atomic_open, atomic_path
from radiograph.runner import Task


def exit_when_told(task: Task) -> None:
    """Payload ``("exit", code)`` ends the process with ``os._exit(code)``, ``("kill", _)``
    SIGKILLs it; anything else writes the output after a short pause."""
    action, value = task.payload
    if action == "exit":
        os._exit(value)
    if action == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(value)
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write(f"{task.key} pid={os.getpid()}\n")


def mark_and_sleep(task: Task) -> None:
    """Write ``<payload>/started-<pid>`` then sleep ``RG_TEST_SLEEP`` seconds (default 60)
    before writing the output: a worker that is busy for long."""
    Path(task.payload, f"started-{os.getpid()}").write_text(task.key)
    time.sleep(float(os.environ.get("RG_TEST_SLEEP", "60")))
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write("late\n")


def _pool(folder: str, n: str) -> None:
    import rg_process_stages as stages  # by module name (not __main__) for the workers

    from radiograph.runner import ProcessPoolBackend, run_cohort

    out = Path(folder)
    tasks = [Task(f"S{i}", (out / f"S{i}.txt",), str(out)) for i in range(int(n))]
    run_cohort(
        tasks,
        stages.mark_and_sleep,
        record_path=out / "run.json",
        backend=ProcessPoolBackend(2),
        progress=False,
    )


def _gated_cli(gate: str, *argv: str) -> int:
    import radiograph.synth.cohort as cohort
    from radiograph.cli import main

    write_subject = cohort.write_subject

    def gated_write_subject(task: Task) -> None:
        _wait_for(gate)
        write_subject(task)

    cohort.write_subject = gated_write_subject  # runs in this process with --workers 1
    return main(list(argv))


def _hold_temp(path: str, gate: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("in flight")
        print(tmp, flush=True)
        _wait_for(gate)


def _wait_for(gate: str) -> None:
    deadline = time.monotonic() + 300
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)


def _hold_lock(folder: str) -> None:
    from radiograph.lock import folder_lock

    with folder_lock(folder, what="rg-test holder"):
        print("locked", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    drivers = {
        "pool": _pool,
        "gated-cli": _gated_cli,
        "hold-temp": _hold_temp,
        "hold-lock": _hold_lock,
    }
    sys.exit(drivers[command](*rest) or 0)
