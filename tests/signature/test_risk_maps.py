"""Risk maps: the patch grid aligned to level-0 pixels, drawn over the slide thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from radiograph.pathology.slide import write_pyramidal_tiff
from radiograph.signature.report import RiskMapSlide, risk_map_array, risk_maps


def _patches(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(2, 9), np.arange(1, 6))
    keep = rng.random(cols.size) < 0.7
    coords = np.stack([cols.ravel(), rows.ravel()], 1)[keep] * 64
    return coords.astype(np.int64), rng.random(len(coords))


def test_grid_cells_hold_each_patch_at_its_level0_position() -> None:
    coords, prob = _patches(np.random.default_rng(0))
    grid, origin = risk_map_array(prob, coords, 64.0)
    assert grid.dtype == np.float32 and tuple(origin) == (128, 64)
    for (x, y), p in zip(coords, prob):  # hand mapping: cell = (corner - origin) / size
        assert grid[(y - 64) // 64, (x - 128) // 64] == np.float32(p)
    assert np.isnan(grid).sum() == grid.size - len(coords)


def test_map_is_drawn_over_the_thumbnail_and_saved_aligned(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = np.full((512, 640, 3), 240, np.uint8)
    rgb[100:400, 150:550] = (180, 90, 160)
    slide = write_pyramidal_tiff(tmp_path / "s.tiff", rgb, mpp=0.5, downsamples=(1, 4))
    coords, prob = _patches(rng)
    table = risk_maps(
        tmp_path / "maps",
        {
            "with": RiskMapSlide(prob, coords, 64.0, 0.5, slide),
            "without": RiskMapSlide(prob, coords, 64.0, 0.5, None),
        },
    )
    assert isinstance(table, pd.DataFrame)
    notes = table.set_index("subject_id")["thumbnail"]
    assert notes["with"] == str(slide) and notes["without"].startswith("none")
    saved = np.load(tmp_path / "maps" / "with.npz")
    grid, origin = risk_map_array(prob, coords, 64.0)
    np.testing.assert_array_equal(saved["grid"], grid)
    np.testing.assert_array_equal(saved["origin"], origin)
    assert float(saved["patch_size"]) == 64.0 and float(saved["level0_mpp"]) == 0.5
    with_thumb = np.asarray(Image.open(tmp_path / "maps" / "with.png").convert("RGB"))
    without = np.asarray(Image.open(tmp_path / "maps" / "without.png").convert("RGB"))
    assert with_thumb.shape == without.shape and not np.array_equal(with_thumb, without)
