"""Synthetic slides with a known physical tissue layout (helpers for the pathology tests)."""

from __future__ import annotations

import numpy as np

PATCH_UM = 112.0  # a 224-pixel patch at 0.5 um/px
BACKGROUND = 240


def render_layout(
    mpp: float, width_um: float, height_um: float, *, rects=(), disks=(), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Render tissue shapes defined in microns at ``mpp`` um/px.

    Args:
        rects: (x0, y0, x1, y1) in um.
        disks: (cx, cy, r) in um.

    Returns:
        (rgb uint8 (H, W, 3), tissue bool (H, W)). Tissue is pink with a smooth purple
        texture (period 40 um, so it survives resampling); background is light grey with +-2
        noise.
    """
    width, height = round(width_um / mpp), round(height_um / mpp)
    x = (np.arange(width) + 0.5) * mpp
    y = (np.arange(height) + 0.5) * mpp
    xx, yy = np.meshgrid(x, y)
    tissue = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in rects:
        tissue |= (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    for cx, cy, r in disks:
        tissue |= (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * xx / 40.0) * np.cos(2 * np.pi * yy / 40.0)
    pink = np.array([225.0, 130.0, 180.0])
    purple = np.array([120.0, 70.0, 160.0])
    tissue_rgb = pink + wave[..., None] * (purple - pink)
    rng = np.random.default_rng(seed)
    background = BACKGROUND + rng.integers(-2, 3, size=(height, width, 1))
    rgb = np.where(tissue[..., None], tissue_rgb, background)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8), tissue
