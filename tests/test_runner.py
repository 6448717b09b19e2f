"""Cohort runner: resume, failure isolation, run record, process pool, stale temporaries."""

from __future__ import annotations

import json
import warnings

import pytest
import rg_test_stages as stages

from radiograph.runner import InProcessBackend, ProcessPoolBackend, Task, finish, run_cohort


def make_tasks(out, payloads):
    return [Task(f"S{i}", (out / f"S{i}.txt",), p) for i, p in enumerate(payloads)]


@pytest.mark.parametrize(
    "backend", [InProcessBackend(), ProcessPoolBackend(2)], ids=["inproc", "pool"]
)
def test_failures_isolated_and_recorded(tmp_path, backend):
    tasks = make_tasks(tmp_path, [1, 2, "fail", 4])
    record = run_cohort(
        tasks,
        stages.write_square,
        record_path=tmp_path / "run.json",
        stage="square",
        backend=backend,
        progress=False,
    )
    assert sorted(record.done) == ["S0", "S1", "S3"]
    assert record.failed == [("S2", "ValueError: subject S2: broken input")]
    assert (tmp_path / "S3.txt").read_text().startswith("16 ")
    saved = json.loads((tmp_path / "run.json").read_text())
    assert [r["key"] for r in saved["results"]] == ["S0", "S1", "S2", "S3"]
    assert saved["results"][2]["status"] == "failed" and saved["finished"]
    assert finish(record) == 1


def test_resume_skips_complete_and_redoes_deleted(tmp_path):
    tasks = make_tasks(tmp_path, [1, 2, 3])
    run_cohort(
        tasks, stages.write_square, record_path=tmp_path / "r1.json", workers=1, progress=False
    )
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("S*.txt")}
    (tmp_path / "S1.txt").unlink()
    record = run_cohort(
        tasks, stages.write_square, record_path=tmp_path / "r2.json", workers=1, progress=False
    )
    assert record.skipped == ["S0", "S2"] and record.done == ["S1"]
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("S*.txt")}
    assert after["S0.txt"] == before["S0.txt"] and after["S2.txt"] == before["S2.txt"]
    again = run_cohort(
        tasks,
        stages.write_square,
        record_path=tmp_path / "r3.json",
        workers=1,
        overwrite=True,
        progress=False,
    )
    assert again.done == ["S0", "S1", "S2"] and finish(again) == 0


def test_stage_that_writes_nothing_fails(tmp_path):
    record = run_cohort(
        make_tasks(tmp_path, [1]),
        stages.forget_output,
        record_path=tmp_path / "r.json",
        workers=1,
        progress=False,
    )
    assert record.failed and "without writing" in record.failed[0][1]


def test_stale_temporary_of_unfinished_task_is_removed(tmp_path):
    stale = tmp_path / ".tmp-S0-abc123.txt"
    stale.write_text("half")
    other = tmp_path / ".tmp-unrelated-x.txt"
    other.write_text("keep")
    run_cohort(
        make_tasks(tmp_path, [5]),
        stages.write_square,
        record_path=tmp_path / "r.json",
        workers=1,
        progress=False,
    )
    assert not stale.exists() and other.exists()


def test_duplicate_keys_rejected(tmp_path):
    tasks = [Task("A", (tmp_path / "a",)), Task("A", (tmp_path / "b",))]
    with pytest.raises(ValueError, match="duplicate task keys"):
        run_cohort(tasks, stages.write_square, record_path=tmp_path / "r.json", progress=False)


def test_pool_workers_start_with_the_parents_warning_filters(tmp_path):
    """A filter set in the parent (e.g. by a command's entry point) holds in spawned workers."""
    tasks = make_tasks(tmp_path, [0, 1])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="rg-test noise", category=UserWarning)
        record = run_cohort(
            tasks,
            stages.warn_and_record,
            record_path=tmp_path / "r.json",
            backend=ProcessPoolBackend(2),
            progress=False,
        )
    assert sorted(record.done) == ["S0", "S1"]
    assert {(tmp_path / f"S{i}.txt").read_text() for i in range(2)} == {"ignored\n"}
    again = run_cohort(
        tasks,
        stages.warn_and_record,
        record_path=tmp_path / "r2.json",
        backend=ProcessPoolBackend(2),
        overwrite=True,
        progress=False,
    )
    assert sorted(again.done) == ["S0", "S1"]
    assert {(tmp_path / f"S{i}.txt").read_text() for i in range(2)} == {"shown\n"}
