"""What the ``radiograph`` command writes to a log: warnings as one line each (also from the
runner's worker processes), progress bars only on a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import warnings

import rg_test_stages as stages

from radiograph.cli import main, one_line_warning, one_line_warnings
from radiograph.runner import ProcessPoolBackend, Task, run_cohort


def test_a_warning_is_one_line_without_source():
    expected = "UserWarning: first line second line (study.py:12)\n"
    assert (
        one_line_warning(
            "first line\n  second line\n",
            UserWarning,
            "/a/b/study.py",
            12,
            line="    warnings.warn(...)",
        )
        == expected
    )


def test_warnings_print_one_line_inside_the_block_only():
    """In a fresh interpreter (pytest records warnings instead of printing them)."""
    code = textwrap.dedent("""
        import warnings
        from radiograph.cli import one_line_warnings
        with one_line_warnings():
            warnings.warn("two\\nlines", RuntimeWarning)
        warnings.warn("again", RuntimeWarning)
        """)
    err = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stderr.splitlines()
    assert err[0] == "RuntimeWarning: two lines (<string>:5)"
    assert err[1:] == ["<string>:6: RuntimeWarning: again"]  # Python's format after the block


def test_command_restores_the_warning_format(tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("subject_id,patient_id,centre,time,time_unit,event\nS1,P1,A,9,days,1\n")
    before = warnings.formatwarning
    assert main(["validate", str(manifest)]) == 0
    assert warnings.formatwarning is before


def test_worker_processes_format_warnings_as_the_command(tmp_path):
    tasks = [Task(f"S{i}", (tmp_path / f"S{i}.txt",)) for i in range(2)]
    with one_line_warnings():
        run_cohort(
            tasks,
            stages.write_warning_format,
            record_path=tmp_path / "r.json",
            backend=ProcessPoolBackend(2),
            progress=False,
        )
    written = {(tmp_path / f"S{i}.txt").read_text() for i in range(2)}
    assert written == {"UserWarning: rg-test noise (stage.py:7)\n"}
    run_cohort(
        tasks,
        stages.write_warning_format,
        record_path=tmp_path / "r2.json",
        backend=ProcessPoolBackend(2),
        progress=False,
        overwrite=True,
    )
    written = {(tmp_path / f"S{i}.txt").read_text() for i in range(2)}
    assert written == {"/x/stage.py:7: UserWarning: rg-test noise\n"}  # Python's format


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cohort_progress_bar_only_on_a_terminal(tmp_path, monkeypatch):
    tasks = [Task(f"S{i}", (tmp_path / f"S{i}.txt",), i) for i in range(3)]
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    run_cohort(
        tasks, stages.write_square, record_path=tmp_path / "r.json", workers=1, stage="squares"
    )
    assert log.getvalue() == ""
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    run_cohort(
        tasks,
        stages.write_square,
        record_path=tmp_path / "r.json",
        workers=1,
        stage="squares",
        overwrite=True,
    )
    assert "squares: 100%" in terminal.getvalue() and "\r" in terminal.getvalue()
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    run_cohort(
        tasks,
        stages.write_square,
        record_path=tmp_path / "r.json",
        workers=1,
        stage="squares",
        overwrite=True,
        progress=False,
    )
    assert quiet.getvalue() == ""
