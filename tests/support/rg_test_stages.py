"""Stage functions for runner tests (top-level, so worker processes can unpickle them)."""

from __future__ import annotations

import os
import time

from radiograph.io.atomic import atomic_open
from radiograph.runner import Task


def write_square(task: Task) -> None:
    """Writes payload**2 to the task's single output; payload 'fail' raises."""
    if task.payload == "fail":
        raise ValueError(f"subject {task.key}: broken input")
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write(f"{task.payload**2} pid={os.getpid()}\n")


def write_slowly(task: Task) -> None:
    """Writes its output after a pause (for kill / resume tests)."""
    time.sleep(float(os.environ.get("RG_TEST_DELAY", "0.3")))
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write(f"{task.payload}\n")


def forget_output(task: Task) -> None:
    """Returns without writing anything."""


def die_first_time(task: Task) -> None:
    """Kills its own worker process on the first attempt (payload: a marker file path)."""
    if task.payload and not os.path.exists(task.payload):
        open(task.payload, "w").close()
        os._exit(1)
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write("0\n")


def warn_and_record(task: Task) -> None:
    """Issues a UserWarning 'rg-test noise' and writes whether a filter ignored it."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("rg-test noise", UserWarning)
    with atomic_open(task.outputs[0], "w") as fh:
        fh.write("shown\n" if caught else "ignored\n")


def write_warning_format(task: Task) -> None:
    """Writes how this process formats a warning (``warnings.formatwarning``)."""
    import warnings

    with atomic_open(task.outputs[0], "w") as fh:
        fh.write(warnings.formatwarning("rg-test noise", UserWarning, "/x/stage.py", 7))
