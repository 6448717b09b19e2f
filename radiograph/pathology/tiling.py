"""The patch grid of a slide at a target resolution, tile reading, and the QC thumbnail.

Patches are squares of ``patch_size`` pixels at ``target_mpp`` microns per pixel (default
224 px at 0.5 um/px, i.e. 20x), laid on a non-overlapping grid from the level-0 origin. Each
is read from the coarsest pyramid level at least as fine as the target (within 5%) and resized
when that level's resolution does not give exactly ``patch_size`` pixels. Coordinates are
level-0 pixels of the patch's top-left corner, as in CLAM and TRIDENT.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from radiograph.io.atomic import atomic_path
from radiograph.pathology.slide import Slide, SlideError
from radiograph.pathology.tissue import TissueMask

#: A level up to this much coarser than the target still counts as fine enough.
LEVEL_TOLERANCE = 0.05


@dataclass(frozen=True)
class TileGrid:
    """The kept patches of one slide and how to read them.

    Attributes:
        coords: int64 (N, 2) level-0 (x, y) of each patch's top-left corner.
        tissue_fraction: float64 (N,) tissue fraction of each patch.
        level: pyramid level the patches are read from.
        read_size: side in pixels of the region read at ``level``.
        patch_size: side in pixels of the patches after resizing.
        size_level0: side of a patch in level-0 pixels (float).
        mpp: microns per pixel of the patches (the target).
        level0_mpp: microns per pixel of level 0.
    """

    coords: np.ndarray
    tissue_fraction: np.ndarray
    level: int
    read_size: int
    patch_size: int
    size_level0: float
    mpp: float
    level0_mpp: float

    def __len__(self) -> int:
        return int(len(self.coords))


def read_plan(slide: Slide, *, target_mpp: float, patch_size: int) -> tuple[int, int]:
    """Pyramid level to read patches from, and the side in pixels to read there.

    Returns:
        (level, read_size): the coarsest level whose resolution is at most
        ``target_mpp * 1.05`` um/px, and ``round(patch_size * target_mpp / level_mpp)``.

    Raises:
        SlideError: every level is coarser than the target (patches would be upsampled).
    """
    fine_enough = [
        i
        for i in range(len(slide.level_downsamples))
        if slide.level_mpp(i) <= target_mpp * (1 + LEVEL_TOLERANCE)
    ]
    if not fine_enough:
        raise SlideError(
            f"slide {slide.path}: its finest level is {slide.mpp:.4g} um/px, coarser "
            f"than the target {target_mpp:g} um/px; pass --target-mpp "
            f"{slide.mpp:.4g} or larger (or check the slide's mpp)"
        )
    level = max(fine_enough, key=slide.level_mpp)
    return level, max(1, round(patch_size * target_mpp / slide.level_mpp(level)))


def tile_grid(
    slide: Slide,
    tissue: TissueMask,
    *,
    target_mpp: float = 0.5,
    patch_size: int = 224,
    min_tissue: float = 0.5,
) -> TileGrid:
    """All grid patches whose tissue fraction is at least ``min_tissue``.

    The grid starts at level-0 (0, 0) with a step of one patch (``patch_size * target_mpp /
    level0_mpp`` level-0 pixels, rounded per patch), and holds every patch whose read region
    lies inside the slide.

    Raises:
        SlideError: the slide is narrower or shorter than one patch (no grid position fits),
            or every level is coarser than the target (:func:`read_plan`).
    """
    if patch_size <= 0 or target_mpp <= 0:
        raise ValueError(f"patch_size and target_mpp must be > 0; got {patch_size}, {target_mpp}")
    level, read_size = read_plan(slide, target_mpp=target_mpp, patch_size=patch_size)
    step = patch_size * target_mpp / slide.mpp
    extent = max(step, read_size * slide.level_downsamples[level])
    width, height = slide.dimensions
    nx = max(0, math.floor((width - extent) / step + 1e-9) + 1)
    ny = max(0, math.floor((height - extent) / step + 1e-9) + 1)
    if nx == 0 or ny == 0:
        raise SlideError(
            f"slide {slide.path}: {width} x {height} level-0 pixels "
            f"({width * slide.mpp:.0f} x {height * slide.mpp:.0f} um) is smaller "
            f"than one patch ({patch_size} px at {target_mpp:g} um/px = "
            f"{patch_size * target_mpp:g} um, {math.ceil(extent)} level-0 pixels); "
            "pass a smaller --patch-size or check the slide's mpp"
        )
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny))
    coords = np.stack([np.round(gx.ravel() * step), np.round(gy.ravel() * step)], axis=1)
    coords = coords.astype(np.int64)
    fraction = tissue.tissue_fraction(coords, step)
    keep = fraction >= min_tissue
    return TileGrid(
        coords=coords[keep],
        tissue_fraction=fraction[keep],
        level=level,
        read_size=read_size,
        patch_size=patch_size,
        size_level0=step,
        mpp=target_mpp,
        level0_mpp=slide.mpp,
    )


def read_tile(slide: Slide, grid: TileGrid, index: int) -> np.ndarray:
    """Patch ``index`` of ``grid`` as uint8 (patch_size, patch_size, 3) RGB."""
    x, y = grid.coords[index]
    tile = slide.read_region(int(x), int(y), grid.level, grid.read_size, grid.read_size)
    if grid.read_size != grid.patch_size:
        tile = np.array(
            Image.fromarray(tile).resize(
                (grid.patch_size, grid.patch_size), Image.Resampling.BICUBIC
            )
        )
    return tile


def render_thumbnail(
    tissue: TissueMask,
    grid: TileGrid,
    *,
    max_side: int = 1024,
    max_upscale: float = 4.0,
    outlines: Sequence[np.ndarray] = (),
) -> Image.Image:
    """The low-resolution view with the tissue mask tinted green, kept patches outlined blue
    and ``outlines`` (level-0 (V, 2) rings, e.g. ROI polygons and holes) drawn red.

    The view is scaled so that its long side is ``max_side`` pixels, enlarging small views by
    at most ``max_upscale``.
    """
    image = tissue.image.astype(np.float32)
    green = np.array([0.0, 160.0, 0.0], dtype=np.float32)
    image[tissue.mask] = 0.7 * image[tissue.mask] + 0.3 * green
    thumb = Image.fromarray(image.round().astype(np.uint8))
    scale = min(max_upscale, max_side / max(thumb.size))
    if scale != 1.0:
        thumb = thumb.resize(
            (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
            Image.Resampling.BILINEAR,
        )
    sx = thumb.width / (tissue.mask.shape[1] * tissue.downsample[0])
    sy = thumb.height / (tissue.mask.shape[0] * tissue.downsample[1])
    draw = ImageDraw.Draw(thumb)
    for x, y in grid.coords:
        draw.rectangle(
            [x * sx, y * sy, (x + grid.size_level0) * sx - 1, (y + grid.size_level0) * sy - 1],
            outline=(30, 60, 220),
        )
    for ring in outlines:
        points = [(float(x) * sx, float(y) * sy) for x, y in ring]
        draw.line([*points, points[0]], fill=(220, 30, 30), width=2)
    return thumb


def save_thumbnail(
    path: str | os.PathLike,
    tissue: TissueMask,
    grid: TileGrid,
    *,
    max_side: int = 1024,
    max_upscale: float = 4.0,
    outlines: Sequence[np.ndarray] = (),
) -> Path:
    """Write :func:`render_thumbnail` as a PNG, atomically."""
    with atomic_path(path) as tmp:
        render_thumbnail(
            tissue, grid, max_side=max_side, max_upscale=max_upscale, outlines=outlines
        ).save(tmp, format="PNG")
    return Path(path)
