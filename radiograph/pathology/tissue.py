"""Tissue detection on a low-resolution view of a slide.

The method is CLAM's: HSV saturation, median blur, Otsu's threshold, morphological clean-up,
then small regions removed and small holes filled. Two guards keep Otsu honest when the image
is not bimodal: a floor on the threshold (``min_saturation``) keeps a blank slide (background
noise only) from being split into "tissue" and background, and when even Otsu's lower class
is clearly stained (mean saturation at least twice the floor) the view is all tissue and the
floor alone is the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from radiograph.pathology.config import TissueParams
from radiograph.pathology.slide import Slide


@dataclass(frozen=True)
class TissueMask:
    """A tissue mask of a slide at low resolution.

    Attributes:
        mask: bool (h, w), True on tissue.
        image: uint8 (h, w, 3) RGB view of the slide the mask was computed on.
        downsample: (x, y) level-0 pixels per mask pixel.
        mpp: microns per mask pixel (mean of x and y).
        threshold: saturation threshold used, in [0, 1].
    """

    mask: np.ndarray
    image: np.ndarray
    downsample: tuple[float, float]
    mpp: float
    threshold: float

    def tissue_fraction(self, coords: np.ndarray, size: float) -> np.ndarray:
        """Fraction of each square patch covered by tissue.

        Each patch is rounded to whole mask pixels, ``[x0, x1) x [y0, y1)`` with
        ``x0 = round(x / dx)``, ``x1 = round((x + size) / dx)`` (likewise y, clipped to the
        mask), and its fraction is ``sum(mask[y0:y1, x0:x1]) / ((x1 - x0) (y1 - y0))``.
        The sums come from the integral image evaluated only at the patch edges: one
        ``np.add.reduceat`` pass along each mask row between consecutive distinct x edges
        (int32 partial sums, (height, edges_x)), one down the columns of that table between
        distinct y edges, then cumulative sums of the small (edges_y, edges_x) table.
        O(mask pixels) with no full-size integral image, and exactly the counts of one.

        Args:
            coords: (N, 2) level-0 (x, y) of the patches' top-left corners.
            size: patch side in level-0 pixels.

        Returns:
            (N,) float64 in [0, 1]: mask pixels on tissue over mask pixels in the patch (0 for
            a patch that covers no mask pixel).
        """
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        height, width = self.mask.shape
        if len(coords) == 0 or height == 0 or width == 0:
            return np.zeros(len(coords), dtype=np.float64)
        dx, dy = self.downsample
        x0, x1 = (
            np.clip(np.round(v / dx), 0, width).astype(np.int64)
            for v in (coords[:, 0], coords[:, 0] + size)
        )
        y0, y1 = (
            np.clip(np.round(v / dy), 0, height).astype(np.int64)
            for v in (coords[:, 1], coords[:, 1] + size)
        )
        edges_x = np.unique(np.concatenate([[0], x0, x1]))
        edges_y = np.unique(np.concatenate([[0], y0, y1]))
        starts_x, starts_y = edges_x[edges_x < width], edges_y[edges_y < height]
        mask = np.ascontiguousarray(self.mask, dtype=bool).view(np.uint8)
        bands = np.add.reduceat(mask, starts_x, axis=1, dtype=np.int32)  # along rows: fast
        blocks = np.add.reduceat(bands, starts_y, axis=0, dtype=np.int64)
        integral = np.zeros((len(starts_y) + 1, len(starts_x) + 1), dtype=np.int64)
        integral[1:, 1:] = blocks.cumsum(0).cumsum(1)
        ix0, ix1 = np.searchsorted(edges_x, x0), np.searchsorted(edges_x, x1)
        iy0, iy1 = np.searchsorted(edges_y, y0), np.searchsorted(edges_y, y1)
        inside = integral[iy1, ix1] - integral[iy0, ix1] - integral[iy1, ix0] + integral[iy0, ix0]
        area = (x1 - x0) * (y1 - y0)
        return np.where(area > 0, inside / np.maximum(area, 1), 0.0)


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of uint8 (H, W, 3) RGB, as uint8 (H, W) in 0..255."""
    rgb = rgb.astype(np.int32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return np.where(high > 0, (255 * (high - low) + high // 2) // np.maximum(high, 1), 0).astype(
        np.uint8
    )


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold of uint8 values: the t maximising the between-class variance of the
    classes ``values <= t`` and ``values > t`` (the smallest such t on ties)."""
    hist = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    p = hist / max(hist.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between = np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)
    return int(np.argmax(between))


def tissue_mask(
    rgb: np.ndarray, *, pixel_um: float, params: TissueParams = TissueParams()
) -> tuple[np.ndarray, float]:
    """Tissue mask of a low-resolution RGB image.

    Args:
        rgb: uint8 (H, W, 3).
        pixel_um: side of one pixel in microns (converts the area parameters to pixels).
        params: thresholds and clean-up sizes.

    Returns:
        (mask, threshold): bool (H, W) True on tissue, and the saturation threshold in [0, 1].
    """
    sat = saturation(rgb)
    if params.median_size > 1:
        sat = ndimage.median_filter(sat, size=params.median_size, mode="nearest")
    floor = math.ceil(255 * params.min_saturation)
    otsu = otsu_threshold(sat)
    below = sat[sat <= otsu]
    all_stained = below.size == 0 or below.mean() >= 2 * floor
    threshold = floor if all_stained else max(otsu, floor)
    mask = sat > threshold
    if params.close_iterations > 0:
        pad = params.close_iterations
        padded = np.pad(mask, pad, mode="edge")
        mask = ndimage.binary_closing(padded, iterations=params.close_iterations)[
            pad:-pad, pad:-pad
        ]
    pixel_area = pixel_um * pixel_um
    holes = ndimage.binary_fill_holes(mask) & ~mask
    mask = mask | _components_smaller_than(holes, params.max_hole_um2 / pixel_area)
    mask = mask & ~_components_smaller_than(mask, params.min_region_um2 / pixel_area)
    return mask, threshold / 255.0


def compute_tissue_mask(
    slide: Slide, *, mask_mpp: float, params: TissueParams = TissueParams()
) -> TissueMask:
    """Read a low-resolution view of ``slide`` (about ``mask_mpp`` um/px) and mask its tissue.

    The view is read from the coarsest pyramid level at least as fine as ``mask_mpp`` and
    reduced by box filtering to the requested resolution.
    """
    downsample = max(mask_mpp / slide.mpp, 1.0)
    level = slide.best_level_for_downsample(downsample)
    image = slide.read_level(level)
    width0, height0 = slide.dimensions
    size = (max(1, round(width0 / downsample)), max(1, round(height0 / downsample)))
    if (image.shape[1], image.shape[0]) != size:
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    dx, dy = width0 / size[0], height0 / size[1]
    mpp = slide.mpp * 0.5 * (dx + dy)
    mask, threshold = tissue_mask(image, pixel_um=mpp, params=params)
    return TissueMask(mask=mask, image=image, downsample=(dx, dy), mpp=mpp, threshold=threshold)


def _components_smaller_than(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    """The connected components (8-connectivity) of ``mask`` with fewer than min_pixels pixels."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_pixels
    small[0] = False
    return small[labels]
