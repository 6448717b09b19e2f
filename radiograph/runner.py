"""Run one per-subject stage over a cohort: resume, failure isolation, a run record.

A stage is a top-level function ``fn(task) -> None`` that writes ``task.outputs`` (atomically,
through :mod:`radiograph.io.atomic`). The runner

* skips a task whose outputs all exist (an output exists only once it is complete, because
  every writer renames a finished temporary file into place), unless ``overwrite``;
* runs the rest on a backend (in-process, or a pool of local worker processes);
* records every task's status, seconds, outputs and error in a JSON run record, rewritten
  atomically after each task, so a killed run leaves an accurate record of what finished;
* never lets one task's exception, or the death of the worker process running it, stop the
  others (:class:`ProcessPoolBackend`), whose workers exit when the process running the
  cohort dies.

Backends are small objects with one method, ``run(fn, tasks)``, that yields a
:class:`TaskResult` per task as it finishes; add a backend by writing that method.

Commands built on the runner share their options (:func:`add_backend_arguments`): where tasks
run, ``--overwrite``, ``--wait`` (the output folder's lock, :mod:`radiograph.lock`) and
``--allow-failures``; :func:`finish` turns a run record into the exit status.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import ctypes
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from radiograph import __version__
from radiograph.io.atomic import stale_temporaries, write_json
from radiograph.lock import LockHolder, folder_lock
from radiograph.provenance import Provenance, outputs_current

StageFn = Callable[["Task"], Any]


@dataclass(frozen=True)
class Task:
    """One unit of per-subject work.

    Attributes:
        key: unique name in the run (a subject id, or ``subject/slide``).
        outputs: files the task writes; the task is complete when all exist (and are
            current, see ``provenance``).
        payload: whatever the stage function needs (must be picklable).
        provenance: what the outputs must have been made from (inputs' fingerprints, settings
            digest), computed when the tasks are built; None: existence is enough.
    """

    key: str
    outputs: tuple[Path, ...]
    payload: Any = None
    provenance: Provenance | None = None

    def is_complete(self) -> bool:
        """All outputs exist and, when the task carries a ``provenance``, each output's record
        (``<output>.prov.json``) equals it (:func:`radiograph.provenance.is_current`)."""
        if not self.outputs or not all(Path(p).exists() for p in self.outputs):
            return False
        return self.provenance is None or outputs_current(self.outputs, self.provenance)[0]


@dataclass
class TaskResult:
    """What happened to one task: status is 'done', 'skipped' or 'failed'."""

    key: str
    status: str
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    attempts: int = 1


@dataclass
class RunRecord:
    """The record of one run of a stage over a cohort (written as JSON)."""

    stage: str
    started: str
    backend: str
    code_version: str = __version__
    finished: str | None = None
    results: list[TaskResult] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.key, r.error or "") for r in self.results if r.status == "failed"]

    @property
    def done(self) -> list[str]:
        return [r.key for r in self.results if r.status == "done"]

    @property
    def skipped(self) -> list[str]:
        return [r.key for r in self.results if r.status == "skipped"]

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, asdict(self))

    def report(self) -> str:
        """Summary line plus one line per failure (key: error)."""
        lines = [
            f"{self.stage}: {len(self.done)} done, {len(self.skipped)} skipped (already complete), "
            f"{len(self.failed)} failed"
        ]
        lines += [f"  FAILED {key}: {error}" for key, error in self.failed]
        return "\n".join(lines)


class Backend(Protocol):
    """Runs tasks and yields their results as they finish (any order)."""

    name: str

    def run(self, fn: StageFn, tasks: Sequence[Task]) -> Iterator[TaskResult]: ...


class InProcessBackend:
    """Runs tasks one after another in this process (debugging, tests, GPU stages)."""

    name = "in-process"

    def run(self, fn: StageFn, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        for task in tasks:
            yield execute_task(fn, task)


class ProcessPoolBackend:
    """Runs tasks on a pool of local worker processes (spawned, so safe with torch/OpenSlide).

    Workers exit when this process dies, even by SIGKILL (:func:`die_with_parent`), and start
    with this process's warning filters and format (a spawned process would otherwise start
    from Python's defaults).

    A dead worker (killed, out of memory, ``os._exit``) fails only its own task. At most
    ``workers`` tasks are in flight, so when a worker dies and the pool breaks, only the tasks
    in flight are suspects: the tasks not started yet go on on a fresh pool, and each suspect
    runs once more, alone in a fresh process. A suspect whose process dies again fails with
    an error saying so and how the process ended (exit code or signal); the others are
    recorded with ``attempts=2``. So a task runs at most twice.
    """

    name = "process-pool"

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))

    def run(self, fn: StageFn, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        waiting = collections.deque(tasks)
        while waiting:
            suspects = yield from self._run_pool(fn, waiting)
            for task in suspects:
                yield run_alone(fn, task)

    def _run_pool(
        self, fn: StageFn, waiting: collections.deque[Task]
    ) -> Generator[TaskResult, None, list[Task]]:
        """Run tasks taken from the left of ``waiting`` on one pool until none is left or a
        worker dies; returns the tasks that were in flight when the pool broke."""
        context = multiprocessing.get_context("spawn")
        running: dict[cf.Future, Task] = {}
        suspects: list[Task] = []
        broken = False
        with cf.ProcessPoolExecutor(
            min(self.workers, len(waiting)),
            mp_context=context,
            initializer=start_worker,
            initargs=(_warning_filters(), os.getpid(), warnings.formatwarning),
        ) as pool:
            while running or (waiting and not broken):
                while waiting and not broken and len(running) < self.workers:
                    try:
                        running[pool.submit(execute_task, fn, waiting[0])] = waiting[0]
                    except BrokenProcessPool:
                        broken = True
                    else:
                        waiting.popleft()
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.append(task)
                        continue
                    except Exception as err:  # noqa: BLE001 - e.g. the task does not pickle
                        result = TaskResult(
                            task.key,
                            "failed",
                            error=f"could not run in a worker process: {type(err).__name__}: {err}",
                        )
                    yield result
        return suspects


def run_alone(fn: StageFn, task: Task) -> TaskResult:
    """Run ``task`` in a fresh worker process of its own (the second attempt of a task whose
    pool worker died); a failed result names how the process ended if it dies too."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_execute_and_send,
        name=f"radiograph {task.key}",
        args=(fn, task, sender, _warning_filters(), os.getpid(), warnings.formatwarning),
    )
    process.start()
    sender.close()
    try:
        result: TaskResult | None = receiver.recv()
    except EOFError:  # the process ended without sending a result
        result = None
    finally:
        receiver.close()
        process.join()
    if result is None:
        return TaskResult(
            task.key,
            "failed",
            attempts=2,
            error=(
                "its worker process died while running it, and again when it ran alone "
                f"({_ending(process.exitcode)}); the other tasks were not affected"
            ),
        )
    result.attempts = 2
    return result


def _execute_and_send(
    fn: StageFn,
    task: Task,
    sender: Any,
    filters: list[WarningFilter],
    parent_pid: int,
    formatwarning: Callable[..., str],
) -> None:
    start_worker(filters, parent_pid, formatwarning)
    sender.send(execute_task(fn, task))
    sender.close()


def _ending(exitcode: int | None) -> str:
    """How a process ended, from its ``multiprocessing`` exit code."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = ", e.g. by the out-of-memory killer" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


def start_worker(
    filters: list[WarningFilter], parent_pid: int, formatwarning: Callable[..., str] | None = None
) -> None:
    """Initialiser of every worker process: exit with the parent, take over its warning
    filters and its warning format (``warnings.formatwarning``; the ``radiograph`` command's
    prints one line per warning)."""
    die_with_parent(parent_pid)
    _set_warning_filters(filters)
    if formatwarning is not None:
        warnings.formatwarning = formatwarning


#: ``prctl`` option: the signal this process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, *, poll_seconds: float = 1.0) -> None:
    """Make this process exit when its parent ``parent_pid`` dies, even by SIGKILL.

    On Linux the kernel sends this process SIGTERM when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``, via ctypes). On every platform, and in case a SIGTERM
    handler keeps the process alive, a daemon thread checks every ``poll_seconds`` whether
    the process was re-parented (``os.getppid()`` changed) and then exits with status 1.
    Children of this process (e.g. a DataLoader's workers) watch this process in turn.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no libc or no prctl in it
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(
        target=_watch_parent,
        args=(parent_pid, poll_seconds),
        daemon=True,
        name="radiograph-parent-watchdog",
    ).start()


def _watch_parent(parent_pid: int, poll_seconds: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


WarningFilter = tuple[str, str, type, str, int]


def _warning_filters() -> list[WarningFilter]:
    """This process's ``warnings.filters`` as plain (action, message, category, module, lineno)."""

    def text(pattern: Any) -> str:  # a compiled regex, a plain string (Python's defaults), None
        return getattr(pattern, "pattern", pattern) or ""

    return [
        (action, text(message), category, text(module), lineno)
        for action, message, category, module, lineno in warnings.filters
    ]


def _set_warning_filters(filters: list[WarningFilter]) -> None:
    """Replace this process's warning filters by ``filters`` (first one wins, as in warnings)."""
    warnings.resetwarnings()
    for action, message, category, module, lineno in reversed(filters):
        warnings.filterwarnings(action, message, category, module, lineno)


def execute_task(fn: StageFn, task: Task) -> TaskResult:
    """Run ``fn(task)``, timing it and turning any exception into a failed result."""
    start = time.perf_counter()
    try:
        fn(task)
    except Exception as err:  # noqa: BLE001 - isolate every failure to its task
        message = f"{type(err).__name__}: {err}".strip()
        if os.environ.get("RADIOGRAPH_TRACEBACKS"):
            message += "\n" + traceback.format_exc()
        return TaskResult(task.key, "failed", time.perf_counter() - start, error=message)
    seconds = time.perf_counter() - start
    missing = [str(p) for p in task.outputs if not Path(p).exists()]
    if missing:
        return TaskResult(
            task.key, "failed", seconds, error=f"stage finished without writing {missing}"
        )
    return TaskResult(task.key, "done", seconds, [str(p) for p in task.outputs])


def terminal_only(progress: bool) -> bool | None:
    """tqdm's ``disable`` of every progress bar (a cohort's tasks, a slide's patches, a
    model's epochs): None when ``progress`` (tqdm then shows it only on a terminal, so a
    redirected log holds no carriage-return updates; a stage prints its summary line
    instead), True otherwise."""
    return None if progress else True


def default_backend(workers: int | None) -> Backend:
    """In-process for one worker, else a local process pool (default: number of cores)."""
    if workers is None:
        workers = os.cpu_count() or 1
    return InProcessBackend() if workers <= 1 else ProcessPoolBackend(workers)


def add_backend_arguments(
    parser: argparse.ArgumentParser, *, output: str | None = "out", failures: bool = True
) -> None:
    """Add the options every cohort command shares: where tasks run, --overwrite, --wait
    (:func:`add_lock_arguments`, locking the folder in argument ``output``) and, with
    ``failures``, --allow-failures (:func:`add_failure_arguments`)."""
    add_lock_arguments(parser, output)
    if failures:
        add_failure_arguments(parser)
    group = add_where_arguments(parser)
    group.add_argument(
        "--overwrite", action="store_true", help="redo subjects whose outputs already exist"
    )
    add_progress_argument(parser)


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-progress``, the one name of the progress option of every command: progress
    bars are drawn only on a terminal (:func:`terminal_only`), and not at all with it."""
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are shown only on a terminal)",
    )


def add_where_arguments(
    parser: argparse.ArgumentParser, workers_default: str = "number of cores"
) -> argparse._ArgumentGroup:
    """Add where the per-subject tasks run (:func:`backend_from_args`): ``--workers``,
    ``--dask-workers``, ``--scheduler``; returns their argument group. ``workers_default``
    says in the help what no ``--workers`` means."""
    group = parser.add_argument_group("where the per-subject work runs")
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"local worker processes (default: {workers_default}; 1: in this process)",
    )
    group.add_argument(
        "--dask-workers",
        type=int,
        default=None,
        metavar="N",
        help="run on a local Dask cluster of N worker processes",
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run on an existing dask.distributed cluster",
    )
    return group


def add_lock_arguments(parser: argparse.ArgumentParser, output: str | None = "out") -> None:
    """Add ``--wait``. ``output`` names the argument that holds the command's output folder:
    ``radiograph`` (:func:`radiograph.cli.main`) locks that folder for the command's run
    (:mod:`radiograph.lock`); None: the command locks its folder itself
    (:func:`lock_from_args`)."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another run is writing to the output folder, wait for it to "
        "finish (default: stop at once, naming that run)",
    )
    parser.set_defaults(lock_folder_arg=output)


def lock_from_args(
    args: argparse.Namespace, folder: str | os.PathLike, name: str
) -> contextlib.AbstractContextManager[LockHolder]:
    """The lock of ``folder`` for command ``name``, waiting if ``args.wait``
    (:func:`add_lock_arguments`); the holder's command is ``args.command_line`` when set (by
    :func:`radiograph.cli.main`), else this process's command line. A wait is announced on
    stderr."""
    return folder_lock(
        folder,
        wait=getattr(args, "wait", False),
        what=getattr(args, "command_line", None),
        on_wait=functools.partial(announce_wait, name),
    )


def announce_wait(name: str, holder: LockHolder | None) -> None:
    """Tell stderr that command ``name`` waits for ``holder`` (a ``folder_lock`` on_wait)."""
    who = holder.describe() if holder else "another run"
    print(f"{name}: waiting for {who} (--wait)", file=sys.stderr, flush=True)


def add_failure_arguments(parser: argparse.ArgumentParser, unit: str = "tasks") -> None:
    """Add ``--allow-failures N|FRACTION`` (:func:`parse_allow_failures`, :func:`finish`);
    ``unit`` names what is counted in the help."""
    parser.add_argument(
        "--allow-failures",
        type=_allow_failures_argument,
        default=0,
        metavar="N|FRACTION",
        help=f"exit 0 when at most N {unit} (an integer) or this fraction of "
        "them (a number in [0, 1], e.g. 0.1) failed; the failures are "
        "still listed (default 0: any failure gives exit status 1)",
    )


def parse_allow_failures(value: str | int | float) -> int | float:
    """An allowance of failures: an int >= 0 is a count of tasks, a float in [0, 1] a
    fraction of them (so ``1`` allows one failure and ``1.0`` allows all).

    Raises:
        ValueError: anything else (a negative count, a fraction above 1, a boolean, text).
    """
    number: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
    if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
        return number
    if isinstance(number, float) and 0.0 <= number <= 1.0:
        return number
    raise ValueError(
        f"allow_failures must be a count of tasks (an integer >= 0) or a fraction "
        f"of them (a number in [0, 1]); got {value!r}"
    )


def allowed_failures(allow: int | float | None, total: int) -> int:
    """How many of ``total`` tasks may fail: ``allow`` itself for a count, ``floor(allow *
    total)`` for a fraction, 0 for None."""
    if allow is None:
        return 0
    if isinstance(allow, float):
        return math.floor(allow * total + 1e-9)
    return int(allow)


def _allow_failures_argument(text: str) -> int | float:
    try:
        return parse_allow_failures(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def backend_from_args(args: argparse.Namespace) -> Backend:
    """The backend chosen by :func:`add_backend_arguments`' options."""
    if args.scheduler or args.dask_workers:
        from radiograph.dask_backend import DaskBackend

        return DaskBackend(scheduler=args.scheduler, workers=args.dask_workers or 2)
    return default_backend(args.workers)


def run_cohort(
    tasks: Sequence[Task],
    fn: StageFn,
    *,
    record_path: str | os.PathLike,
    stage: str = "",
    workers: int | None = None,
    backend: Backend | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunRecord:
    """Run ``fn`` over ``tasks`` with resume and failure isolation.

    Args:
        tasks: the units of work; keys must be unique.
        fn: a picklable top-level function writing ``task.outputs``.
        record_path: where the JSON run record is written (rewritten after every task).
        stage: name of the stage, for the record and the progress bar.
        workers: local worker processes when no backend is given (None: number of cores;
            1: run in this process).
        backend: an explicit backend (overrides ``workers``).
        overwrite: redo tasks whose outputs already exist.
        progress: show a tqdm progress bar (on a terminal only, :func:`terminal_only`).

    Returns:
        The run record; ``record.failed`` lists (key, error) of the failed tasks.
    """
    keys = [t.key for t in tasks]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"duplicate task keys: {duplicates}")
    backend = backend or default_backend(workers)
    record = RunRecord(stage=stage, started=_now(), backend=backend.name)
    todo = []
    for task in tasks:
        if not overwrite and task.is_complete():
            record.results.append(
                TaskResult(task.key, "skipped", outputs=[str(p) for p in task.outputs], attempts=0)
            )
        else:
            _remove_stale_temporaries(task.outputs)
            todo.append(task)
    _remove_stale_temporaries([Path(record_path)])
    record.save(record_path)
    bar = tqdm(
        total=len(todo),
        desc=stage or "cohort",
        unit="task",
        disable=terminal_only(progress),
        file=sys.stderr,
    )
    for result in backend.run(fn, todo):
        record.results.append(result)
        record.save(record_path)
        bar.update(1)
        if result.status == "failed":
            bar.set_postfix(failed=len(record.failed))
    bar.close()
    order = {key: i for i, key in enumerate(keys)}
    record.results.sort(key=lambda r: order[r.key])
    record.finished = _now()
    record.save(record_path)
    return record


def finish(record: RunRecord, allow_failures: int | float | None = None) -> int:
    """Print the record's report; return the command's exit status: 1 if more tasks failed
    than ``allow_failures`` allows (a count or a fraction of the tasks, see
    :func:`allowed_failures`; None: none may fail), else 0. The failures are listed either way.
    """
    failed, total = len(record.failed), len(record.results)
    allowed = allowed_failures(allow_failures, total)
    lines = [record.report()]
    stage = record.stage or "run"
    if failed and failed <= allowed:
        lines.append(
            f"{stage}: {failed} failure(s) accepted by --allow-failures "
            f"{allow_failures} (at most {allowed} of {total} tasks); exit status 0"
        )
    elif failed:
        lines.append(
            f"{stage}: {failed} of {total} tasks failed (at most {allowed} allowed); "
            "exit status 1. A rerun retries them and keeps the finished ones; "
            f"--allow-failures {failed} accepts these failures."
        )
    print("\n".join(lines), file=sys.stderr if failed else sys.stdout)
    return 1 if failed > allowed else 0


def _remove_stale_temporaries(outputs: Sequence[str | os.PathLike]) -> None:
    """Delete temporary files that killed writers of ``outputs`` (a task's, or the run record
    of a killed run) left beside them: only those whose writer is dead
    (:func:`radiograph.io.atomic.stale_temporaries`)."""
    for output in outputs:
        for stale in stale_temporaries(output):
            stale.unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
