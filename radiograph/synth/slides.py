"""Synthetic H&E slides with planted prognostic regions, written as Aperio-style pyramidal TIFFs.

A slide is made in two steps:

1. :func:`slide_layout` draws a label map on a grid of square cells (``CELL_UM`` = 4 um per
   cell, i.e. 8 level-0 pixels at 0.5 um/px): ``BACKGROUND`` (glass), ``TISSUE`` (ordinary
   tissue), ``NUISANCE`` (a vacuolated, pale texture that does not affect risk) and
   ``PLANTED`` (the prognostic pattern: dense, large, dark nuclei in a purple,
   haematoxylin-rich background). Tissue is one or two irregular pieces; planted and nuisance
   regions are compact blobs placed inside the tissue, sized so that their area is the
   requested fraction of the tissue area (exactly, up to one cell). :func:`focal_layout`
   draws the layout of the focal signal instead: ``PLANTED`` is one compact region and
   ``DISTRACTOR`` a second, disjoint one of the same area (a deep pink, eosin-rich background
   under the same nuclei as the planted purple one), beside the nuisance texture.
2. :func:`render_slide` paints the level-0 RGB image of a layout: stain concentrations per
   pixel (eosin texture, haematoxylin nuclei stamped as soft discs, vacuoles as white holes)
   are turned into colour by the Beer-Lambert law with haematoxylin and eosin optical-density
   vectors that vary per centre and per subject (stain nuisance). Optional appearance scores
   per class scale that class's nucleus radius by ``exp(NUCLEUS_LOG_RADIUS_PER_SD * score)``
   (the focal signal's appearance; the centres of the nuclei do not depend on it).

Every level-0 pixel belongs to exactly one layout cell, so the layout map written beside the
slide (downsample = cell size in pixels) is the exact ground truth of which pixels are planted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from radiograph.io.atomic import atomic_path
from radiograph.pathology.slide import write_pyramidal_tiff
from radiograph.synth.regions import blobs, smooth_noise

#: Label values of a slide layout (``DISTRACTOR`` only in the layouts of the focal signal).
BACKGROUND, TISSUE, NUISANCE, PLANTED, DISTRACTOR = 0, 1, 2, 3, 4
#: Side of one layout cell in microns (the ground-truth maps have this resolution).
CELL_UM = 4.0
#: Field of view (width, height) in microns when no slide size is given: 3000 x 2000 px at
#: 0.5 um/px.
DEFAULT_FIELD_UM = (1500.0, 1000.0)
#: Typical radius (um) of one planted blob (about 1.5 patches of 224 px at 0.5 um/px across).
PLANTED_BLOB_UM = 80.0
#: Typical radius (um) of one nuisance blob.
NUISANCE_BLOB_UM = 150.0
#: Nucleus radius of a class with appearance score ``z`` (:func:`render_slide`):
#: ``nucleus_um * exp(NUCLEUS_LOG_RADIUS_PER_SD * z)``, i.e. x 1.22 per standard deviation.
NUCLEUS_LOG_RADIUS_PER_SD = 0.2
#: Tile side of the TIFF pages (pixels).
TILE = 256
#: Compression of the TIFF tiles: deflate, which tifffile writes without extra codecs and
#: OpenSlide's libtiff reads.
COMPRESSION = "zlib"

#: Haematoxylin and eosin optical-density vectors (Ruifrok & Johnston), RGB, unit length.
H_VECTOR = np.array([0.650, 0.704, 0.286])
E_VECTOR = np.array([0.072, 0.990, 0.105])
#: Per-centre stain appearance: (haematoxylin scale, eosin scale, hue shift of H toward blue).
CENTRE_STAINS = {"A": (1.00, 1.00, 0.00), "B": (1.15, 0.85, -0.06), "C": (0.85, 1.15, 0.04)}


@dataclass(frozen=True)
class ClassAppearance:
    """How one layout class is painted.

    Attributes:
        eosin: mean eosin concentration (optical density units) of the background stroma.
        haematoxylin: haematoxylin concentration of the background (purple tinge).
        nuclei_per_mm2: density of nuclei.
        nucleus_um: nucleus radius in microns.
        nucleus_od: haematoxylin optical density at a nucleus' centre.
        vacuoles_per_mm2: density of white round vacuoles.
        vacuole_um: vacuole radius in microns.
    """

    eosin: float
    haematoxylin: float
    nuclei_per_mm2: float
    nucleus_um: float
    nucleus_od: float
    vacuoles_per_mm2: float = 0.0
    vacuole_um: float = 0.0


#: Appearance of each tissue class; the planted class is the one that drives risk. The
#: distractor (focal layouts only) has the planted nuclei on a deep pink instead of a purple
#: background: the two differ in their marker (the background stain), not in their nuclei.
APPEARANCE = {
    TISSUE: ClassAppearance(
        eosin=0.55, haematoxylin=0.08, nuclei_per_mm2=2500.0, nucleus_um=3.0, nucleus_od=0.9
    ),
    NUISANCE: ClassAppearance(
        eosin=0.38,
        haematoxylin=0.05,
        nuclei_per_mm2=1000.0,
        nucleus_um=2.5,
        nucleus_od=0.8,
        vacuoles_per_mm2=2500.0,
        vacuole_um=7.0,
    ),
    PLANTED: ClassAppearance(
        eosin=0.35, haematoxylin=0.45, nuclei_per_mm2=9000.0, nucleus_um=4.0, nucleus_od=1.5
    ),
    DISTRACTOR: ClassAppearance(
        eosin=0.90, haematoxylin=0.03, nuclei_per_mm2=9000.0, nucleus_um=4.0, nucleus_od=1.5
    ),
}
#: Optical density of the glass background (light grey-white).
GLASS_OD = 0.03


@dataclass(frozen=True)
class SlideLayout:
    """The label map of one synthetic slide.

    Attributes:
        labels: uint8 (rows, cols) cell labels (BACKGROUND, TISSUE, NUISANCE, PLANTED and, in
            focal layouts, DISTRACTOR).
        cell_px: level-0 pixels per cell side (the ground-truth downsample).
        mpp: level-0 microns per pixel.
    """

    labels: np.ndarray
    cell_px: int
    mpp: float

    @property
    def size(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        rows, cols = self.labels.shape
        return cols * self.cell_px, rows * self.cell_px

    @property
    def tissue(self) -> np.ndarray:
        """bool (rows, cols): tissue of any kind."""
        return self.labels != BACKGROUND

    def fraction(self, label: int) -> float:
        """Area of ``label`` cells over the tissue area."""
        return float((self.labels == label).sum() / max(int(self.tissue.sum()), 1))


def cell_pixels(mpp: float) -> int:
    """Level-0 pixels per layout cell side at ``mpp`` um/px (``CELL_UM / mpp``, at least 1)."""
    if not mpp > 0:
        raise ValueError(f"mpp must be > 0 um/px; got {mpp}")
    return max(1, int(round(CELL_UM / mpp)))


def default_slide_size(mpp: float) -> tuple[int, int]:
    """Level-0 (width, height) in pixels covering ``DEFAULT_FIELD_UM`` at ``mpp``."""
    return int(round(DEFAULT_FIELD_UM[0] / mpp)), int(round(DEFAULT_FIELD_UM[1] / mpp))


def layout_shape(size: tuple[int, int], mpp: float) -> tuple[int, int]:
    """(rows, cols) of the layout grid of a slide of level-0 (width, height) ``size`` px.

    Raises:
        ValueError: the slide is smaller than 32 cells (128 um) along a side.
    """
    cell_px = cell_pixels(mpp)
    rows, cols = int(size[1]) // cell_px, int(size[0]) // cell_px
    if cols < 32 or rows < 32:
        raise ValueError(
            f"slide size {tuple(size)} px at {mpp} um/px is too small: need at "
            f"least {32 * cell_px} px per side"
        )
    return rows, cols


def slide_layout(
    rng: np.random.Generator,
    size: tuple[int, int],
    mpp: float,
    planted_fraction: float,
    nuisance_fraction: float,
) -> SlideLayout:
    """Draw tissue, nuisance and planted regions of one slide.

    Args:
        rng: random generator (the layout is a pure function of its state and the arguments).
        size: level-0 (width, height) in pixels; rounded down to whole cells.
        mpp: level-0 microns per pixel.
        planted_fraction: planted area over tissue area, in [0, 0.5].
        nuisance_fraction: nuisance area over tissue area, in [0, 0.5].

    Returns:
        The layout; ``layout.fraction(PLANTED)`` equals ``planted_fraction`` up to one cell.
    """
    for name, value in (
        ("planted_fraction", planted_fraction),
        ("nuisance_fraction", nuisance_fraction),
    ):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be in [0, 0.5]; got {value}")
    tissue, cell_px, cell_um = _tissue(rng, size, mpp)
    labels = tissue.astype(np.uint8) * TISSUE
    area = int(tissue.sum())
    planted = blobs(rng, tissue, round(planted_fraction * area), PLANTED_BLOB_UM / cell_um)
    labels[planted] = PLANTED
    nuisance = blobs(
        rng, tissue & ~planted, round(nuisance_fraction * area), NUISANCE_BLOB_UM / cell_um
    )
    labels[nuisance] = NUISANCE
    return SlideLayout(labels=labels, cell_px=cell_px, mpp=float(mpp))


def focal_layout(
    rng: np.random.Generator,
    size: tuple[int, int],
    mpp: float,
    region_fraction: float,
    nuisance_fraction: float,
) -> SlideLayout:
    """Draw tissue, one focal region, a distractor region of the same area, and nuisance.

    The focal region (``PLANTED``) and the distractor (``DISTRACTOR``) are one compact blob
    each (:func:`radiograph.synth.regions.blobs` with the radius of a disc of the target
    area), disjoint and inside the tissue; the nuisance blobs avoid both.

    Args:
        rng: random generator (the layout is a pure function of its state and the arguments).
        size: level-0 (width, height) in pixels; rounded down to whole cells.
        mpp: level-0 microns per pixel.
        region_fraction: area of the region (and of the distractor) over the tissue area, in
            [0, 0.25].
        nuisance_fraction: nuisance area over tissue area, in [0, 0.5].

    Returns:
        The layout; ``fraction(PLANTED)`` equals ``region_fraction`` up to one cell and
        ``(labels == DISTRACTOR).sum() == (labels == PLANTED).sum()``.
    """
    if not 0.0 <= region_fraction <= 0.25:
        raise ValueError(f"region_fraction must be in [0, 0.25]; got {region_fraction}")
    if not 0.0 <= nuisance_fraction <= 0.5:
        raise ValueError(f"nuisance_fraction must be in [0, 0.5]; got {nuisance_fraction}")
    tissue, cell_px, cell_um = _tissue(rng, size, mpp)
    labels = tissue.astype(np.uint8) * TISSUE
    area = int(tissue.sum())
    target = round(region_fraction * area)
    # a typical radius of one disc of the target area makes blobs() draw a single blob
    radius = math.sqrt(target / math.pi)
    region = blobs(rng, tissue, target, radius)
    distractor = blobs(rng, tissue & ~region, target, radius)
    labels[region] = PLANTED
    labels[distractor] = DISTRACTOR
    nuisance = blobs(
        rng,
        tissue & ~region & ~distractor,
        round(nuisance_fraction * area),
        NUISANCE_BLOB_UM / cell_um,
    )
    labels[nuisance] = NUISANCE
    return SlideLayout(labels=labels, cell_px=cell_px, mpp=float(mpp))


def render_slide(
    rng: np.random.Generator,
    layout: SlideLayout,
    centre: str,
    scores: Mapping[int, float] | None = None,
) -> np.ndarray:
    """Paint the level-0 RGB image of a layout.

    Args:
        rng: random generator for textures, nuclei and stain variation.
        layout: the label map.
        centre: acquiring centre (key of ``CENTRE_STAINS``), sets the stain appearance.
        scores: appearance score per label (default: none, i.e. 0); a class with score ``z``
            has nuclei of radius ``nucleus_um * exp(NUCLEUS_LOG_RADIUS_PER_SD * z)``. The
            random stream does not depend on the scores: the same ``rng`` state gives the same
            nuclei centres, textures and stain whatever the scores.

    Returns:
        uint8 (height, width, 3) RGB, ``(height, width) == layout.size[::-1]``.
    """
    if centre not in CENTRE_STAINS:
        raise ValueError(f"unknown centre {centre!r}; expected one of {sorted(CENTRE_STAINS)}")
    g = layout.cell_px
    rows, cols = layout.labels.shape
    height, width = rows * g, cols * g
    um2_per_cell = (g * layout.mpp) ** 2

    scores = {} if scores is None else scores
    eosin_of = np.zeros(max(APPEARANCE) + 1, np.float32)
    haem_of = np.zeros(max(APPEARANCE) + 1, np.float32)
    for label, look in APPEARANCE.items():
        eosin_of[label] = look.eosin
        haem_of[label] = look.haematoxylin
    stroma = 1.0 + 0.25 * smooth_noise(rng, (rows, cols), 6.0)
    eosin = _cells_to_pixels(eosin_of[layout.labels] * stroma, g)
    haem = _cells_to_pixels(haem_of[layout.labels] * stroma, g)

    nuclei: list[tuple[np.ndarray, float, np.ndarray]] = []
    vacuoles: list[tuple[np.ndarray, float, np.ndarray]] = []
    for label, look in APPEARANCE.items():
        cells = np.flatnonzero(layout.labels == label)
        centres = _points_in_cells(rng, cells, cols, g, look.nuclei_per_mm2 * um2_per_cell / 1e6)
        radius_um = look.nucleus_um * math.exp(NUCLEUS_LOG_RADIUS_PER_SD * scores.get(label, 0.0))
        nuclei.append(
            (
                centres,
                radius_um / layout.mpp,
                look.nucleus_od * rng.uniform(0.8, 1.2, len(centres)),
            )
        )
        if look.vacuoles_per_mm2:
            centres = _points_in_cells(
                rng, cells, cols, g, look.vacuoles_per_mm2 * um2_per_cell / 1e6
            )
            vacuoles.append((centres, look.vacuole_um / layout.mpp, np.ones(len(centres))))
    grain = rng.standard_normal((height, width), dtype=np.float32)
    grain *= _cells_to_pixels(layout.labels != BACKGROUND, g)
    haem += np.minimum(_discs((height, width), nuclei), 2.0) * (1.0 + 0.15 * grain)
    if vacuoles:
        clear = 1.0 - np.minimum(_discs((height, width), vacuoles), 1.0)
        haem *= clear
        eosin *= clear
    haem += 0.02 * grain
    eosin += 0.03 * grain
    return _beer_lambert(rng, haem, eosin, centre)


def write_slide(path: str | os.PathLike, rgb: np.ndarray, mpp: float) -> Path:
    """Write a level-0 RGB image as an Aperio-style pyramidal TIFF (atomically).

    Levels have downsamples 1, 4, 16, ... while the smaller side of the level stays at least 64
    pixels; pages are tiled (``TILE``), deflate-compressed, reduced levels marked with
    subfiletype 1, and the first page's ImageDescription carries ``AppMag = 10 / mpp`` and
    ``MPP = mpp`` so OpenSlide reports ``openslide.mpp-x`` and ``openslide.objective-power``.

    Args:
        path: destination ``.tiff``.
        rgb: uint8 (H, W, 3) level-0 image.
        mpp: level-0 microns per pixel.
    """
    return write_pyramidal_tiff(
        path,
        rgb,
        mpp=mpp,
        downsamples=pyramid_downsamples(rgb.shape[:2]),
        tile=TILE,
        compression=COMPRESSION,
    )


def pyramid_downsamples(shape: tuple[int, int]) -> tuple[int, ...]:
    """Downsamples 1, 4, 16, ... of the pyramid of an image of (height, width) ``shape``."""
    downsamples = [1]
    while min(shape) // (downsamples[-1] * 4) >= 64:
        downsamples.append(downsamples[-1] * 4)
    return tuple(downsamples)


def write_layout_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a bool (rows, cols) map as an 8-bit PNG (255 = True, 0 = False), atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(tmp, format="PNG")
    return Path(path)


def _tissue(
    rng: np.random.Generator, size: tuple[int, int], mpp: float
) -> tuple[np.ndarray, int, float]:
    """The tissue of a layout: bool (rows, cols) cells drawn from ``rng`` (the first draw of
    every layout), the cell size in level-0 pixels and in micrometres."""
    cell_px = cell_pixels(mpp)
    rows, cols = layout_shape(size, mpp)
    cell_um = cell_px * mpp
    return _tissue_pieces(rng, rows, cols, cell_um), cell_px, cell_um


def _tissue_pieces(rng: np.random.Generator, rows: int, cols: int, cell_um: float) -> np.ndarray:
    """One or two irregular tissue pieces covering about 70% of the field."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    pieces = int(rng.integers(1, 3))
    field = np.full((rows, cols), -np.inf)
    for k in range(pieces):
        width = cols / pieces
        cx = width * (k + 0.5) + rng.uniform(-0.04, 0.04) * cols
        cy = rows * (0.5 + rng.uniform(-0.04, 0.04))
        ax = width * rng.uniform(0.44, 0.49)
        ay = rows * rng.uniform(0.44, 0.49)
        angle = rng.uniform(-0.3, 0.3)
        u = ((x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)) / ax
        v = (-(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)) / ay
        field = np.maximum(field, 1.0 - (np.abs(u) ** 3 + np.abs(v) ** 3) ** (1 / 3))
    field += 0.35 * smooth_noise(rng, (rows, cols), 60.0 / cell_um)
    tissue = ndimage.binary_fill_holes(field > 0.0)
    components, count = ndimage.label(tissue)
    if count > 1:
        sizes = ndimage.sum(tissue, components, index=np.arange(1, count + 1))
        tissue = np.isin(components, 1 + np.argsort(sizes)[::-1][:pieces])
    return tissue


def _cells_to_pixels(values: np.ndarray, cell_px: int) -> np.ndarray:
    """Repeat each cell value over its ``cell_px`` x ``cell_px`` level-0 pixels."""
    return np.repeat(np.repeat(values, cell_px, axis=0), cell_px, axis=1)


def _points_in_cells(
    rng: np.random.Generator, cells: np.ndarray, cols: int, cell_px: int, rate: float
) -> np.ndarray:
    """Poisson points in the given flat cell indices; returns int (N, 2) level-0 (row, col)."""
    counts = rng.poisson(rate, size=len(cells))
    owner = np.repeat(cells, counts)
    offsets = rng.integers(0, cell_px, size=(len(owner), 2))
    return np.stack([owner // cols * cell_px, owner % cols * cell_px], axis=1) + offsets


def _discs(
    shape: tuple[int, int], groups: list[tuple[np.ndarray, float, np.ndarray]]
) -> np.ndarray:
    """Sum of anti-aliased discs on a (height, width) float32 canvas.

    Args:
        shape: (height, width) of the canvas.
        groups: (centres int (N, 2) row/col, radius in px, amplitude (N,)) per disc size.
    """
    flat_parts, weight_parts = [], []
    for centres, radius, amplitude in groups:
        reach = int(math.ceil(radius + 1))
        dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
        kernel = np.clip(radius + 0.5 - np.hypot(dy, dx), 0.0, 1.0)
        keep = kernel > 0
        rows = centres[:, :1] + dy[keep][None, :]
        cols = centres[:, 1:] + dx[keep][None, :]
        inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        flat_parts.append((rows * shape[1] + cols)[inside])
        weight_parts.append((amplitude[:, None] * kernel[keep][None, :])[inside])
    canvas = np.bincount(
        np.concatenate(flat_parts),
        weights=np.concatenate(weight_parts),
        minlength=shape[0] * shape[1],
    )
    return canvas.astype(np.float32).reshape(shape)


def _beer_lambert(
    rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray, centre: str
) -> np.ndarray:
    """RGB = 255 exp(-(glass + H h + E e)) through a quantised lookup table (uint8 output)."""
    h_scale, e_scale, hue = CENTRE_STAINS[centre]
    h_vec = H_VECTOR + np.array([-hue, -hue, 2 * hue]) + rng.normal(0, 0.02, 3)
    e_vec = E_VECTOR + rng.normal(0, 0.02, 3)
    h_vec = np.clip(h_vec, 0.01, None) * h_scale * rng.uniform(0.9, 1.1)
    e_vec = np.clip(e_vec, 0.01, None) * e_scale * rng.uniform(0.9, 1.1)
    levels, h_max, e_max = 256, 3.0, 1.5
    h_axis = np.linspace(0.0, h_max, levels)
    e_axis = np.linspace(0.0, e_max, levels)
    od = GLASS_OD + h_axis[:, None, None] * h_vec + e_axis[None, :, None] * e_vec
    lut = np.clip(np.round(255.0 * np.exp(-od)), 0, 255).astype(np.uint8)
    lut = lut.reshape(levels * levels, 3)
    index = np.clip(haem * ((levels - 1) / h_max) + 0.5, 0, levels - 1).astype(np.int32)
    index *= levels
    index += np.clip(eosin * ((levels - 1) / e_max) + 0.5, 0, levels - 1).astype(np.int32)
    return lut[index]
