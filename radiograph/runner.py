"""Run one per-subject stage over a cohort: resume, failure isolation, a run record.

A stage is a top-level function ``fn(task) -> None`` that writes ``task.outputs`` (atomically,
through :mod:`radiograph.io.atomic`). The runner

* skips a task whose outputs all exist (an output exists only once it is complete, because
  every writer renames a finished temporary file into place), unless ``overwrite``;
* runs the rest on a backend (in-process, or a pool of local worker processes);
* records every task's status, seconds, outputs and error in a JSON run record, rewritten
  atomically after each task, so a killed run leaves an accurate record of what finished;
* never lets one task's exception stop the others.

Backends are small objects with one method, ``run(fn, tasks)``, that yields a
:class:`TaskResult` per task as it finishes; add a backend by writing that method.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from tqdm.auto import tqdm

from radiograph import __version__
from radiograph.io.atomic import stale_temporaries, write_json

StageFn = Callable[["Task"], Any]


@dataclass(frozen=True)
class Task:
    """One unit of per-subject work.

    Attributes:
        key: unique name in the run (a subject id, or ``subject/slide``).
        outputs: files the task writes; the task is complete when all exist.
        payload: whatever the stage function needs (must be picklable).
    """

    key: str
    outputs: tuple[Path, ...]
    payload: Any = None

    def is_complete(self) -> bool:
        return bool(self.outputs) and all(Path(p).exists() for p in self.outputs)


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

    A worker that dies (killed, out of memory) fails the tasks it and the pool had in flight;
    they are recorded as failed and a rerun redoes them. Workers start with this process's
    warning filters (a spawned process would otherwise start from Python's defaults).
    """

    name = "process-pool"

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))

    def run(self, fn: StageFn, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(self.workers, mp_context=context,
                                    initializer=_set_warning_filters,
                                    initargs=(_warning_filters(),)) as pool:
            futures = {pool.submit(execute_task, fn, task): task for task in tasks}
            for future in cf.as_completed(futures):
                task = futures[future]
                try:
                    yield future.result()
                except Exception as err:  # noqa: BLE001 - the worker itself died
                    yield TaskResult(task.key, "failed", error=f"worker process died: {err!r}")


WarningFilter = tuple[str, str, type, str, int]


def _warning_filters() -> list[WarningFilter]:
    """This process's ``warnings.filters`` as plain (action, message, category, module, lineno)."""
    def text(pattern: Any) -> str:  # a compiled regex, a plain string (Python's defaults), None
        return getattr(pattern, "pattern", pattern) or ""

    return [(action, text(message), category, text(module), lineno)
            for action, message, category, module, lineno in warnings.filters]


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
        return TaskResult(task.key, "failed", seconds,
                          error=f"stage finished without writing {missing}")
    return TaskResult(task.key, "done", seconds, [str(p) for p in task.outputs])


def terminal_only(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar over the parts of one item (a slide's patches, a volume's
    units, a model's epochs): None when ``progress`` (tqdm then shows it only on a terminal, so
    a redirected log keeps the cohort-level bars), True otherwise."""
    return None if progress else True


def default_backend(workers: int | None) -> Backend:
    """In-process for one worker, else a local process pool (default: number of cores)."""
    if workers is None:
        workers = os.cpu_count() or 1
    return InProcessBackend() if workers <= 1 else ProcessPoolBackend(workers)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every cohort command shares: where tasks run, and --overwrite."""
    group = parser.add_argument_group("where the per-subject work runs")
    group.add_argument("--workers", type=int, default=None,
                       help="local worker processes (default: number of cores; 1: in this process)")
    group.add_argument("--dask-workers", type=int, default=None, metavar="N",
                       help="run on a local Dask cluster of N worker processes")
    group.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run on an existing dask.distributed cluster")
    group.add_argument("--overwrite", action="store_true",
                       help="redo subjects whose outputs already exist")


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
        progress: show a tqdm progress bar.

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
            _remove_stale_temporaries(task)
            todo.append(task)
    record.save(record_path)
    bar = tqdm(total=len(todo), desc=stage or "cohort", unit="task", disable=not progress,
               file=sys.stderr)
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


def finish(record: RunRecord) -> int:
    """Print the record's report; return the command's exit status (1 if any task failed)."""
    print(record.report(), file=sys.stderr if record.failed else sys.stdout)
    return 1 if record.failed else 0


def _remove_stale_temporaries(task: Task) -> None:
    """Delete temporary files a killed earlier attempt of ``task`` left beside its outputs."""
    for output in task.outputs:
        for stale in stale_temporaries(output):
            stale.unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
