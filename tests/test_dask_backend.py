"""The Dask backend: same outputs as the local backends, failures isolated, deaths retried."""

from __future__ import annotations

import pytest
import rg_test_stages as stages

pytest.importorskip("distributed")

from radiograph.dask_backend import DaskBackend  # noqa: E402
from radiograph.runner import InProcessBackend, Task, run_cohort  # noqa: E402


def tasks_in(folder, payloads):
    return [Task(f"S{i}", (folder / f"S{i}.txt",), p) for i, p in enumerate(payloads)]


def test_local_cluster_matches_in_process_outputs(tmp_path):
    payloads = [1, 2, "fail", 4, 5]
    local = run_cohort(
        tasks_in(tmp_path / "local", payloads),
        stages.write_slowly,
        record_path=tmp_path / "local.json",
        backend=InProcessBackend(),
        progress=False,
    )
    dask = run_cohort(
        tasks_in(tmp_path / "dask", payloads),
        stages.write_slowly,
        record_path=tmp_path / "dask.json",
        backend=DaskBackend(workers=2),
        progress=False,
    )
    assert local.done == dask.done
    for key in local.done:
        assert (tmp_path / "local" / f"{key}.txt").read_bytes() == (
            tmp_path / "dask" / f"{key}.txt"
        ).read_bytes()
    failing = run_cohort(
        tasks_in(tmp_path / "f", payloads),
        stages.write_square,
        record_path=tmp_path / "f.json",
        backend=DaskBackend(workers=2),
        progress=False,
    )
    assert failing.failed == [("S2", "ValueError: subject S2: broken input")]
    assert sorted(failing.done) == ["S0", "S1", "S3", "S4"]


def test_worker_death_is_retried_and_recorded(tmp_path):
    marker = tmp_path / "died-once"
    tasks = [
        Task("victim", (tmp_path / "victim.txt",), str(marker)),
        Task("other", (tmp_path / "other.txt",), ""),
    ]
    record = run_cohort(
        tasks,
        stages.die_first_time,
        record_path=tmp_path / "r.json",
        backend=DaskBackend(workers=2),
        progress=False,
    )
    assert record.failed == [] and sorted(record.done) == ["other", "victim"]
    attempts = {r.key: r.attempts for r in record.results}
    assert attempts == {"victim": 2, "other": 1}
    assert marker.exists() and (tmp_path / "victim.txt").read_text() == "0\n"
