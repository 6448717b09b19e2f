"""ROI tiling of a 100,000 x 80,000-pixel slide with a 500-vertex polygon (and a hole).

Ours: :func:`radiograph.pathology.roi.restrict_to_roi` (PIL scan-line fill on the tissue-mask
grid, 16 mask pixels per 224-px patch) then :func:`tile_grid`'s integral-image fraction.
Peer: matplotlib ``Path.contains_points`` on 4 x 4 sample points per patch of the same grid
(vectorised point-in-polygon). Target: < 2 s. ``python benchmarks/roi_tiling.py``
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath

from radiograph.pathology.roi import Polygon, Roi, restrict_to_roi
from radiograph.pathology.tiling import tile_grid
from radiograph.pathology.tissue import TissueMask

WIDTH, HEIGHT, MPP, PATCH = 100_000, 80_000, 0.5, 224
DOWNSAMPLE = PATCH / 16


class _Slide:
    path, mpp, level_downsamples, dimensions = Path("bench"), MPP, (1.0,), (WIDTH, HEIGHT)

    def level_mpp(self, level: int) -> float:
        return MPP


def _ring(cx: float, cy: float, r: float, n: int) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = r * (1 + 0.2 * np.sin(9 * a))
    return np.stack([cx + radius * np.cos(a), cy + radius * np.sin(a)], 1)


def main() -> None:
    roi = Roi((Polygon(_ring(50_000, 40_000, 35_000, 500), (_ring(50_000, 40_000, 8_000, 100),)),),
              Path("bench.geojson"))
    shape = (int(HEIGHT / DOWNSAMPLE), int(WIDTH / DOWNSAMPLE))
    tissue = TissueMask(np.ones(shape, bool), np.zeros((1, 1, 3), np.uint8),
                        (DOWNSAMPLE, DOWNSAMPLE), DOWNSAMPLE * MPP, 0.1)
    start = time.perf_counter()
    restricted = restrict_to_roi(tissue, roi)
    roi_only = time.perf_counter() - start
    grid = tile_grid(_Slide(), restricted, target_mpp=MPP, patch_size=PATCH)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    full = tile_grid(_Slide(), tissue, target_mpp=MPP, patch_size=PATCH)
    offsets = (np.arange(4) + 0.5) * PATCH / 4
    ox, oy = np.meshgrid(offsets, offsets)
    points = (full.coords[:, None, :] + np.stack([ox.ravel(), oy.ravel()], 1)).reshape(-1, 2)
    polygon = roi.polygons[0]
    inside = (MplPath(polygon.exterior).contains_points(points)
              & ~MplPath(polygon.holes[0]).contains_points(points))
    peer_kept = int((inside.reshape(len(full), -1).mean(1) >= 0.5).sum())
    peer = time.perf_counter() - start
    print(f"slide {WIDTH} x {HEIGHT} px, {len(full)} grid patches, 500+100-vertex polygon")
    print(f"{'method':<40} {'seconds':>8} {'kept':>8}")
    print(f"{'ROI raster + mask AND only (ours)':<40} {roi_only:>8.2f} {'':>8}")
    print(f"{'PIL raster + integral (ours)':<40} {ours:>8.2f} {len(grid):>8}")
    print(f"{'matplotlib contains_points 4x4 (peer)':<40} {peer:>8.2f} {peer_kept:>8}")


if __name__ == "__main__":
    main()
