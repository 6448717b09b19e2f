"""ROI tiling of a 100,000 x 80,000-pixel slide with a 500-vertex polygon (and a hole).

Ours: :func:`radiograph.pathology.roi.restrict_to_roi` (PIL scan-line fill on the tissue-mask
grid, 16 mask pixels per 224-px patch) then :func:`tile_grid`'s tissue fraction (an integral
image evaluated at the patch edges only, :meth:`TissueMask.tissue_fraction`).
Old path, side by side: the full-size int64 integral image of the mask that
``tissue_fraction`` used before (``_full_integral_fraction`` below, its code verbatim); both
must keep the same patches with identical fractions.
Peer: matplotlib ``Path.contains_points`` on 4 x 4 sample points per patch of the same grid
(vectorised point-in-polygon). Target: < 2 s. ``python benchmarks/roi_tiling.py``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from matplotlib.path import Path as MplPath

from radiograph.pathology.roi import Polygon, Roi, restrict_to_roi
from radiograph.pathology.tiling import tile_grid
from radiograph.pathology.tissue import TissueMask

WIDTH, HEIGHT, MPP, PATCH = 100_000, 80_000, 0.5, 224
DOWNSAMPLE = PATCH / 16
REPEATS = 3
T = TypeVar("T")


class _Slide:
    path, mpp, level_downsamples, dimensions = Path("bench"), MPP, (1.0,), (WIDTH, HEIGHT)

    def level_mpp(self, level: int) -> float:
        return MPP


def _ring(cx: float, cy: float, r: float, n: int) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = r * (1 + 0.2 * np.sin(9 * a))
    return np.stack([cx + radius * np.cos(a), cy + radius * np.sin(a)], 1)


def _full_integral_fraction(tissue: TissueMask, coords: np.ndarray, size: float) -> np.ndarray:
    """The tissue fraction as computed before issue 19's speed-up: a full-size int64
    integral image of the mask, then four look-ups per patch."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    height, width = tissue.mask.shape
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = tissue.mask.astype(np.int64).cumsum(0).cumsum(1)
    dx, dy = tissue.downsample
    x0 = np.clip(np.round(coords[:, 0] / dx), 0, width).astype(np.int64)
    x1 = np.clip(np.round((coords[:, 0] + size) / dx), 0, width).astype(np.int64)
    y0 = np.clip(np.round(coords[:, 1] / dy), 0, height).astype(np.int64)
    y1 = np.clip(np.round((coords[:, 1] + size) / dy), 0, height).astype(np.int64)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = (x1 - x0) * (y1 - y0)
    return np.where(area > 0, inside / np.maximum(area, 1), 0.0)


def _timed(fn: Callable[[], T], repeats: int = REPEATS) -> tuple[float, float, T]:
    """(fastest, slowest) wall seconds of ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - begin)
    return min(times), max(times), result


def _peer(roi: Roi, coords: np.ndarray) -> int:
    """Patches with at least half of 4 x 4 sample points inside the polygon, off the hole."""
    offsets = (np.arange(4) + 0.5) * PATCH / 4
    ox, oy = np.meshgrid(offsets, offsets)
    points = (coords[:, None, :] + np.stack([ox.ravel(), oy.ravel()], 1)).reshape(-1, 2)
    polygon = roi.polygons[0]
    inside = MplPath(polygon.exterior).contains_points(points) & ~MplPath(
        polygon.holes[0]
    ).contains_points(points)
    return int((inside.reshape(len(coords), -1).mean(1) >= 0.5).sum())


def main() -> None:
    roi = Roi(
        (Polygon(_ring(50_000, 40_000, 35_000, 500), (_ring(50_000, 40_000, 8_000, 100),)),),
        Path("bench.geojson"),
    )
    shape = (int(HEIGHT / DOWNSAMPLE), int(WIDTH / DOWNSAMPLE))
    tissue = TissueMask(
        np.ones(shape, bool),
        np.zeros((1, 1, 3), np.uint8),
        (DOWNSAMPLE, DOWNSAMPLE),
        DOWNSAMPLE * MPP,
        0.1,
    )
    all_coords = tile_grid(
        _Slide(), tissue, target_mpp=MPP, patch_size=PATCH, min_tissue=0.0
    ).coords
    restricted = restrict_to_roi(tissue, roi)
    rows = [
        ("ROI raster + mask AND only (ours)", _timed(lambda: restrict_to_roi(tissue, roi)), ""),
        (
            "tissue fraction, edge integral (ours)",
            _timed(lambda: restricted.tissue_fraction(all_coords, PATCH)),
            "",
        ),
        (
            "tissue fraction, full integral (old)",
            _timed(lambda: _full_integral_fraction(restricted, all_coords, PATCH)),
            "",
        ),
    ]
    new_fraction, old_fraction = rows[1][1][2], rows[2][1][2]
    ours = _timed(
        lambda: len(
            tile_grid(_Slide(), restrict_to_roi(tissue, roi), target_mpp=MPP, patch_size=PATCH)
        )
    )
    old = _timed(
        lambda: int(
            (_full_integral_fraction(restrict_to_roi(tissue, roi), all_coords, PATCH) >= 0.5).sum()
        )
    )
    peer = _timed(lambda: _peer(roi, all_coords))
    rows += [
        ("whole ROI tiling (ours)", ours, ours[2]),
        ("whole ROI tiling, old full integral", old, old[2]),
        ("matplotlib contains_points 4x4 (peer)", peer, peer[2]),
    ]
    print(
        f"slide {WIDTH} x {HEIGHT} px, {len(all_coords)} grid patches, 500+100-vertex polygon,"
        f" best / worst of {REPEATS}"
    )
    print(f"{'method':<40} {'best s':>8} {'worst s':>8} {'kept':>8}")
    for name, (best, worst, _), kept in rows:
        print(f"{name:<40} {best:>8.2f} {worst:>8.2f} {kept!s:>8}")
    same = np.array_equal(new_fraction, old_fraction)
    print(f"fractions identical to the old path on all {len(all_coords)} patches: {same}")


if __name__ == "__main__":
    main()
