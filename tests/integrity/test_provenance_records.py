"""Provenance records: fingerprints against a hand computation, settings digests, the reasons
an output is out of date, and what a rerun removes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from radiograph.io.atomic import write_json
from radiograph.provenance import (
    BLOCK_BYTES,
    MISSING,
    NO_RECORD,
    begin_outputs,
    file_fingerprint,
    is_current,
    make_provenance,
    prepare_rerun,
    read_provenance,
    record_outputs,
    settings_digest,
    sidecar_path,
)
from radiograph.runner import Task

KIB = 1024


def _hand_fingerprint(path: Path, offsets: list[int]) -> str:
    """The documented recipe, written out: BLAKE2b-128 of the size and the blocks."""
    data = path.read_bytes()
    stat = path.stat()
    h = hashlib.blake2b(str(len(data)).encode(), digest_size=16)
    for offset in offsets:
        h.update(data[offset : offset + 64 * KIB])
    return f"{len(data)}-{stat.st_mtime_ns}-{h.hexdigest()}"


def _rewrite_keeping_mtime(path: Path, offset: int, payload: bytes) -> None:
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(payload)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_small_file_fingerprint_hashes_the_whole_file(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(300 * KIB))
    assert file_fingerprint(path) == _hand_fingerprint(path, list(range(0, 300 * KIB, 64 * KIB)))


def test_large_file_fingerprint_samples_18_blocks_at_fixed_offsets(tmp_path):
    path = tmp_path / "large.bin"
    size = 5 * 1024 * KIB + 123
    path.write_bytes(os.urandom(size))
    last = size - 64 * KIB
    offsets = [0] + [last * i // 17 for i in range(1, 17)] + [last]
    assert file_fingerprint(path) == _hand_fingerprint(path, offsets)


def test_fingerprint_sees_size_mtime_and_sampled_content_but_not_unsampled_bytes(tmp_path):
    path = tmp_path / "slide.bin"
    size = 4 * 1024 * KIB
    path.write_bytes(bytes(size))
    before = file_fingerprint(path)
    _rewrite_keeping_mtime(path, 10, b"x")  # inside the first block
    assert file_fingerprint(path) != before
    sampled = file_fingerprint(path)
    unsampled = 64 * KIB + 100  # after the first block, before the first sampled middle one
    assert unsampled + 1 < (size - BLOCK_BYTES) // 17
    _rewrite_keeping_mtime(path, unsampled, b"y")
    assert file_fingerprint(path) == sampled  # the documented blind spot
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    assert file_fingerprint(path) != sampled  # a normal write moves the mtime
    with open(path, "ab") as fh:
        fh.write(b"z")
    assert file_fingerprint(path).startswith(f"{size + 1}-")


@dataclass(frozen=True)
class Settings:
    target_mpp: float = 0.5
    patch_size: int = 224
    reference: Path | None = None
    device: str = "cpu"


def test_settings_digest_is_canonical(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = settings_digest({"a": 1.0, "b": [0.5, "x"]})
    assert settings_digest({"b": (0.5, "x"), "a": 1}) == base  # key order, tuple, 1.0 == 1
    assert settings_digest({"a": 1.0, "b": [0.25, "x"]}) != base
    assert settings_digest({"a": True, "b": [0.5, "x"]}) != base  # True is not 1
    as_dataclass = settings_digest(Settings(reference=Path("ref.png")), exclude=("device",))
    as_dict = {"target_mpp": 0.5, "patch_size": 224, "reference": str(tmp_path / "ref.png")}
    assert as_dataclass == settings_digest(as_dict)
    assert settings_digest(Settings(device="cuda"), exclude=("device",)) == settings_digest(
        Settings(), exclude=("device",)
    )
    assert settings_digest({"x": float("nan")}) == settings_digest({"x": float("nan")})
    with pytest.raises(TypeError, match="object"):
        settings_digest({"x": object()})


def _output(tmp_path: Path, name: str = "S1.h5", text: str = "features") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_is_current_names_what_changed(tmp_path):
    slide = _output(tmp_path, "S1.svs", "pixels")
    output = _output(tmp_path)
    expected = make_provenance({"target_mpp": 0.5, "patch_size": 224}, files={"slide": slide})
    assert is_current(tmp_path / "absent.h5", expected) == (False, "output missing")
    current, reason = is_current(output, expected)
    assert not current and reason.startswith(NO_RECORD)
    record_outputs([output], expected)
    assert sidecar_path(output) == tmp_path / "S1.h5.prov.json"
    assert read_provenance(output)["digest"] == expected.digest
    assert is_current(output, expected) == (True, "current")

    other_mpp = make_provenance({"target_mpp": 1.0, "patch_size": 224}, files={"slide": slide})
    assert is_current(output, other_mpp) == (False, "settings changed (target_mpp: 0.5 -> 1)")
    nested = make_provenance(
        {"target_mpp": 0.5, "patch_size": 224, "tissue": {"median": 5}}, files={"slide": slide}
    )
    assert is_current(output, nested) == (False, "settings changed (tissue.median: (none) -> 5)")
    slide.write_text("other pixels")
    new_slide = make_provenance({"target_mpp": 0.5, "patch_size": 224}, files={"slide": slide})
    assert is_current(output, new_slide) == (False, "input changed: slide")
    with_upstream = make_provenance(
        {"target_mpp": 0.5, "patch_size": 224},
        fingerprints=dict(expected.inputs),
        upstream={"fold": "f1"},
    )
    assert is_current(output, with_upstream) == (False, "upstream changed: fold")

    output.write_text("features made later")  # rewritten after its record
    assert is_current(output, expected) == (False, "output rewritten after its provenance record")
    sidecar_path(output).write_text("{not json")
    assert is_current(output, expected) == (False, "unreadable provenance record")


def test_missing_input_gets_the_missing_fingerprint(tmp_path):
    expected = make_provenance({}, files={"slide": tmp_path / "gone.svs"})
    assert expected.inputs == {"slide": MISSING} and expected.missing_inputs == ["slide"]


def _task(tmp_path: Path, key: str, settings: dict, *, outputs: int = 2) -> Task:
    paths = tuple(tmp_path / f"{key}_{i}.out" for i in range(outputs))
    return Task(key, paths, None, make_provenance(settings, files={"input": tmp_path / "input"}))


def test_prepare_rerun_removes_exactly_the_stale_outputs(tmp_path):
    (tmp_path / "input").write_text("data")
    made = [_task(tmp_path, k, {"mpp": 0.5}) for k in ("S1", "S2", "S3", "S4")]
    for task in made:
        for path in task.outputs:
            path.write_text(task.key)
        record_outputs(task.outputs, task.provenance)
    assert all(t.is_complete() for t in made)
    sidecar_path(made[3].outputs[0]).unlink()  # S4: made by an older version
    rerun = [
        _task(tmp_path, "S1", {"mpp": 1.0}),
        _task(tmp_path, "S2", {"mpp": 0.5}),
        _task(tmp_path, "S3", {"mpp": 0.5}),
        _task(tmp_path, "S4", {"mpp": 0.5}),
        _task(tmp_path, "S5", {"mpp": 0.5}),
    ]  # S5: new, nothing to remove
    message = prepare_rerun("stage", rerun, noun="slides")
    assert message.splitlines() == [
        "stage: 1 of 5 slides changed since the last run (settings or inputs): redoing them",
        "  S1: S1_0.out: settings changed (mpp: 0.5 -> 1)",
        "stage: 1 of 5 slides have outputs without a provenance record (made by an older "
        "version of radiograph): redoing them",
    ]
    assert [p.exists() for t in rerun for p in t.outputs] == [False] * 2 + [True] * 4 + [False] * 4
    assert not sidecar_path(made[0].outputs[1]).exists()
    assert [t.is_complete() for t in rerun] == [False, True, True, False, False]
    assert prepare_rerun("stage", rerun[1:3]) == ""


def test_prepare_rerun_keeps_outputs_whose_input_is_missing(tmp_path):
    (tmp_path / "input").write_text("data")
    task = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    task.outputs[0].write_text("made")
    record_outputs(task.outputs, task.provenance)
    (tmp_path / "input").unlink()  # e.g. an unmounted share: not a changed input
    again = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    assert prepare_rerun("stage", [again]) == ""
    assert task.outputs[0].exists() and not again.is_complete()


def test_task_without_provenance_is_complete_when_its_outputs_exist(tmp_path):
    output = _output(tmp_path)
    assert Task("S1", (output,)).is_complete()
    assert not Task("S1", ()).is_complete()


def test_sidecar_is_written_atomically_as_json(tmp_path):
    output = _output(tmp_path)
    expected = make_provenance({"k": 3}, files={})
    record_outputs([output], expected)
    record = read_provenance(output)
    assert record["format"] == 1 and record["settings_summary"] == {"k": 3}
    assert record["output_fingerprint"] == file_fingerprint(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1.h5", "S1.h5.prov.json"]
    write_json(sidecar_path(output), [1, 2])
    with pytest.raises(ValueError, match="not a JSON object"):
        read_provenance(output)


def test_pending_record_covers_a_kill_between_output_and_final_record(tmp_path):
    (tmp_path / "input").write_text("data")
    old = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    output = old.outputs[0]
    output.write_text("made with mpp 0.5")
    record_outputs(old.outputs, old.provenance)
    new = _task(tmp_path, "S1", {"mpp": 1.0}, outputs=1)
    begin_outputs(new.outputs, new.provenance)  # the stale output goes, a pending record comes
    assert not output.exists() and read_provenance(output)["output_fingerprint"] is None
    assert not new.is_complete()
    output.write_text("made with mpp 1.0")  # killed here, before record_outputs
    assert new.is_complete() and not old.is_complete()
    record_outputs(new.outputs, new.provenance)
    assert read_provenance(output)["output_fingerprint"] == file_fingerprint(output)
    assert new.is_complete()


def test_begin_outputs_leaves_outputs_alone_when_an_input_is_missing(tmp_path):
    (tmp_path / "input").write_text("data")
    old = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    old.outputs[0].write_text("made")
    record_outputs(old.outputs, old.provenance)
    (tmp_path / "input").unlink()
    again = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    begin_outputs(again.outputs, again.provenance)
    assert read_provenance(old.outputs[0])["digest"] == old.provenance.digest
    assert not again.is_complete()


def test_prepare_rerun_removes_record_temporaries_of_dead_writers(tmp_path):
    (tmp_path / "input").write_text("data")
    task = _task(tmp_path, "S1", {"mpp": 0.5}, outputs=1)
    stale = tmp_path / ".tmp-S1_0-0123abcd.out.prov.json"  # a killed writer's half record
    other = tmp_path / ".tmp-S10_0-0123abcd.out.prov.json"  # another output's
    stale.write_text("{")
    other.write_text("{")
    prepare_rerun("stage", [task])
    assert not stale.exists() and other.exists()
