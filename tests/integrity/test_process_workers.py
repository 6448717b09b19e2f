"""A dead pool worker fails only its own task (issue 15, point 8): the others are resubmitted
on a fresh pool, and the run record names the task that killed its worker."""

from __future__ import annotations

import json

import rg_process_stages as process_stages
import rg_test_stages as stages

from radiograph.runner import ProcessPoolBackend, Task, run_cohort


def test_task_that_kills_its_worker_fails_alone(tmp_path):
    payloads = {
        "A": ("sleep", 0.3),
        "B": ("exit", 3),
        "C": ("sleep", 0.3),
        "D": ("kill", 0),
        "E": ("sleep", 0.0),
        "F": ("sleep", 0.0),
    }
    tasks = [Task(key, (tmp_path / f"{key}.txt",), payload) for key, payload in payloads.items()]
    record = run_cohort(
        tasks,
        process_stages.exit_when_told,
        record_path=tmp_path / "run.json",
        stage="dying",
        backend=ProcessPoolBackend(2),
        progress=False,
    )
    assert sorted(record.done) == ["A", "C", "E", "F"]
    failed = dict(record.failed)
    assert sorted(failed) == ["B", "D"]
    assert (
        "worker process died while running it, and again when it ran alone (exit code 3)"
        in failed["B"]
    )
    assert "(killed by SIGKILL" in failed["D"]
    for key in "ACEF":
        assert (tmp_path / f"{key}.txt").read_text().startswith(f"{key} pid=")
    saved = json.loads((tmp_path / "run.json").read_text())
    attempts = {r["key"]: r["attempts"] for r in saved["results"]}
    assert attempts["B"] == attempts["D"] == 2 and set(attempts.values()) <= {1, 2}
    assert [r["key"] for r in saved["results"]] == list(payloads)


def test_worker_that_dies_once_is_retried_alone_and_succeeds(tmp_path):
    marker = tmp_path / "died-once"
    tasks = [
        Task("victim", (tmp_path / "victim.txt",), str(marker)),
        Task("other", (tmp_path / "other.txt",), ""),
    ]
    record = run_cohort(
        tasks,
        stages.die_first_time,
        record_path=tmp_path / "r.json",
        backend=ProcessPoolBackend(2),
        progress=False,
    )
    assert record.failed == [] and sorted(record.done) == ["other", "victim"]
    assert {r.key: r.attempts for r in record.results}["victim"] == 2
    assert marker.exists() and (tmp_path / "victim.txt").read_text() == "0\n"
