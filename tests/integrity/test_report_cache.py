"""The report's cache (:mod:`radiograph.report.cache`): a group of outputs is made again exactly
when a part it is made from changed or one of its outputs was removed or rewritten."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiograph.report.cache import frame_digest, record_path, reuse_or_make


def _risks() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "subject_id": [f"S{i}" for i in range(50)],
            "risk": rng.normal(size=50),
            "split": ["test", "train"] * 25,
        }
    )


def test_frame_digest_sees_one_value_one_ulp_and_row_order():
    frame = _risks()
    digest = frame_digest(frame)
    assert frame_digest(frame.copy()) == digest
    assert frame_digest(frame.set_axis(range(100, 150))) == digest  # the index is not content
    nudged = frame.copy()
    nudged.loc[17, "risk"] = np.nextafter(nudged.loc[17, "risk"], np.inf)
    assert frame_digest(nudged) != digest
    assert frame_digest(frame.iloc[::-1]) != digest
    assert frame_digest(frame.rename(columns={"risk": "score"})) != digest
    assert frame_digest(frame.astype({"risk": np.float32})) != digest


class Maker:
    """Writes ``stat.csv`` (the sum of the risks) and ``fig.png``; counts its calls."""

    def __init__(self, folder: Path, frame: pd.DataFrame):
        self.folder, self.frame, self.calls = folder, frame, 0

    def __call__(self) -> list[Path]:
        self.calls += 1
        (self.folder / "stat.csv").write_text(f"sum\n{float(self.frame['risk'].sum()):+.12e}\n")
        (self.folder / "fig.png").write_bytes(b"png" * self.calls)
        return [self.folder / "stat.csv", self.folder / "fig.png"]


def test_reuse_or_make_redoes_exactly_on_a_changed_part_or_output(tmp_path):
    frame = _risks()
    make = Maker(tmp_path, frame)
    parts = {"risks": frame_digest(frame), "settings": {"n_boot": 1000, "level": 0.95}}
    assert reuse_or_make(tmp_path, "stats", parts, make) == (True, "no record")
    assert reuse_or_make(tmp_path, "stats", dict(parts), make) == (False, "unchanged")
    assert make.calls == 1

    changed = frame.copy()
    changed.loc[3, "risk"] += 1e-9
    assert reuse_or_make(tmp_path, "stats", {**parts, "risks": frame_digest(changed)}, make) == (
        True,
        "changed: risks",
    )
    assert reuse_or_make(
        tmp_path, "stats", {**parts, "settings": {"n_boot": 1000, "level": 0.9}}, make
    ) == (True, "changed: risks, settings")
    assert make.calls == 3

    (tmp_path / "fig.png").unlink()
    assert reuse_or_make(
        tmp_path, "stats", {**parts, "settings": {"n_boot": 1000, "level": 0.9}}, make
    ) == (True, "output missing: fig.png")
    stat = tmp_path / "stat.csv"
    stamp = stat.stat().st_mtime_ns
    stat.write_text(stat.read_text().replace("sum", "SUM"))
    os.utime(stat, ns=(stamp, stamp))  # same size and mtime: the content hash still differs
    assert reuse_or_make(
        tmp_path, "stats", {**parts, "settings": {"n_boot": 1000, "level": 0.9}}, make
    ) == (True, "output rewritten: stat.csv")
    assert float(stat.read_text().split()[1]) == pytest.approx(frame["risk"].sum())
    assert make.calls == 5


def test_a_make_that_fails_leaves_no_record_and_is_redone(tmp_path):
    frame = _risks()
    parts = {"risks": frame_digest(frame)}
    reuse_or_make(tmp_path, "stats", parts, Maker(tmp_path, frame))

    def fail() -> list[Path]:
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        reuse_or_make(tmp_path, "stats", {"risks": "another"}, fail)
    assert not record_path(tmp_path, "stats").exists()
    assert reuse_or_make(tmp_path, "stats", parts, Maker(tmp_path, frame)) == (True, "no record")


def test_outputs_outside_the_report_folder_are_refused(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("x\n")
    (tmp_path / "report").mkdir()
    with pytest.raises(ValueError, match="not under the report folder"):
        reuse_or_make(tmp_path / "report", "stats", {"a": 1}, lambda: [outside])
