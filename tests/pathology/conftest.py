"""Fixtures of the pathology tests; helpers live in rg_slides (importable by the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rg_slides import PATCH_UM, render_layout  # noqa: E402

from radiograph.pathology.slide import write_pyramidal_tiff  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every pathology test runs on one torch thread (see ``tests/conftest.py``)."""


@pytest.fixture
def make_slide(tmp_path):
    """Factory: write a layout as a slide; returns its path."""
    counter = iter(range(10_000))

    def make(
        *,
        mpp=0.5,
        write_mpp="same",
        width_um=8 * PATCH_UM,
        height_um=6 * PATCH_UM,
        rects=((1.25 * PATCH_UM, 0.75 * PATCH_UM, 6.75 * PATCH_UM, 5.25 * PATCH_UM),),
        disks=(),
        downsamples=(1, 4, 16),
        name=None,
        seed=0,
    ):
        rgb, _ = render_layout(mpp, width_um, height_um, rects=rects, disks=disks, seed=seed)
        path = tmp_path / (name or f"slide{next(counter)}.svs")
        write_pyramidal_tiff(
            path, rgb, mpp=mpp if write_mpp == "same" else write_mpp, downsamples=downsamples
        )
        return path

    return make
