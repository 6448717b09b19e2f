"""Atomic writes: an interrupted writer never leaves a file at the destination."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from radiograph.io.atomic import atomic_open, atomic_path, partial_files, read_json, write_json


def test_exception_inside_block_leaves_nothing(tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_open(dest, "wb") as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_failed_rewrite(tmp_path):
    dest = tmp_path / "record.json"
    write_json(dest, {"a": 1})
    with pytest.raises(KeyError):
        with atomic_path(dest) as tmp:
            tmp.write_text("{broken")
            raise KeyError("x")
    assert read_json(dest) == {"a": 1}


def test_sigkill_mid_write_leaves_no_destination(tmp_path):
    dest = tmp_path / "big.bin"
    script = textwrap.dedent(
        f"""
        import sys, time
        from radiograph.io.atomic import atomic_open
        with atomic_open({str(dest)!r}, "wb") as fh:
            fh.write(b"x" * 1_000_000)
            fh.flush()
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not dest.exists()
    # the killed writer's temporary file is recognisable as partial
    assert [p.name.startswith(".tmp-big-") for p in partial_files(tmp_path)] == [True]


def test_tmp_keeps_suffix_for_libraries_that_dispatch_on_it(tmp_path):
    with atomic_path(tmp_path / "vol.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(".tmp-vol-")
        tmp.write_bytes(b"1")
    assert (tmp_path / "vol.nii.gz").read_bytes() == b"1"


def test_atomic_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
