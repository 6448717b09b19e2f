"""A Dask backend for the cohort runner: an existing cluster or a local one.

Install with ``pip install 'radiograph[dask]'``. Workers run the same ``execute_task`` as the
local backends, so outputs are the same files, byte for byte; they write straight to the
output folder, which must be on a path every worker sees (a shared file system on a cluster).

Fault tolerance is Dask's own: when a worker dies while running a task, the scheduler
re-runs the task on another worker, up to ``distributed.scheduler.allowed-failures`` times
(default 3), after which the task fails with ``KilledWorker``. The run record keeps, per
task, how many attempts it took (1 + the number of workers that died running it).

The lock of the output folder (one writer per folder, :mod:`radiograph.lock`) is taken on the
client side, by the command that submits the tasks; workers neither take nor check it. A
worker's temporary files carry its host and pid, and a later run removes those of another
host only while no run holds the folder's lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from radiograph.runner import StageFn, Task, TaskResult, execute_task


class DaskBackend:
    """Run tasks on ``dask.distributed``.

    Args:
        scheduler: address of an existing scheduler (``tcp://HOST:PORT``), e.g. one started by
            dask-jobqueue on SLURM; None starts a ``LocalCluster``.
        workers: worker processes of the local cluster (ignored with ``scheduler``).
        resources: Dask worker resources each task needs, e.g. ``{"GPU": 1}`` so that GPU
            stages run one task per GPU worker.
    """

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int = 2,
        resources: dict[str, float] | None = None,
    ):
        self.scheduler = scheduler
        self.workers = workers
        self.resources = resources

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A connected ``distributed.Client`` (and its local cluster, if one is started)."""
        from distributed import Client, LocalCluster

        if self.scheduler:
            with Client(self.scheduler) as client:
                yield client
        else:
            with (
                LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                ) as cluster,
                Client(cluster) as client,
            ):
                yield client

    def run(self, fn: StageFn, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        from distributed import as_completed

        if not tasks:
            return
        with self.client() as client:
            futures = client.map(
                execute_task,
                [fn] * len(tasks),
                list(tasks),
                key=[f"radiograph-{task.key}-{_token(task)}" for task in tasks],
                pure=False,
                resources=self.resources,
            )
            by_key = {future.key: task for future, task in zip(futures, tasks)}
            for future in as_completed(futures):
                task = by_key[future.key]
                attempts = 1 + _deaths(client, future.key)
                if future.status == "finished":
                    result = future.result()
                    result.attempts = attempts
                else:
                    error = future.exception()
                    result = TaskResult(
                        task.key,
                        "failed",
                        attempts=attempts,
                        error=f"{type(error).__name__}: {error}",
                    )
                yield result


def _deaths(client: Any, key: str) -> int:
    """How many workers died while running ``key`` (the scheduler's 'suspicious' count)."""
    return int(client.run_on_scheduler(_suspicious_count, key=key))


def _suspicious_count(dask_scheduler: Any, key: str) -> int:
    state = dask_scheduler.tasks.get(key)
    return 0 if state is None else state.suspicious


def _token(task: Task) -> str:
    from dask.base import tokenize

    return tokenize(task.key, [str(p) for p in task.outputs])
