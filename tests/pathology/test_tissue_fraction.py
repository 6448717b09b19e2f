"""TissueMask.tissue_fraction (edge-only integral image) against a float64 hand count.

The reference rounds each patch to whole mask pixels exactly as the docstring states and
counts the tissue pixels of ``mask[y0:y1, x0:x1]`` one patch at a time in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from radiograph.pathology.tissue import TissueMask


def _hand_fraction(
    mask: np.ndarray, coords: np.ndarray, size: float, downsample: tuple[float, float]
) -> np.ndarray:
    height, width = mask.shape
    out = np.zeros(len(coords))
    for k, (x, y) in enumerate(np.asarray(coords, dtype=np.float64)):
        x0, x1 = (int(np.clip(np.round(v / downsample[0]), 0, width)) for v in (x, x + size))
        y0, y1 = (int(np.clip(np.round(v / downsample[1]), 0, height)) for v in (y, y + size))
        area = (x1 - x0) * (y1 - y0)
        out[k] = mask[y0:y1, x0:x1].astype(np.float64).sum() / area if area > 0 else 0.0
    return out


def _mask(
    shape: tuple[int, int],
    downsample: tuple[float, float],
    rng: np.random.Generator,
) -> TissueMask:
    mask = rng.random(shape) < rng.uniform(0.2, 0.8)
    return TissueMask(mask, np.zeros((*shape, 3), np.uint8), downsample, 8.0, 0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fraction_equals_the_hand_count_on_any_patches(seed: int) -> None:
    """Arbitrary corners (overlapping, off the grid, partly or wholly outside the mask) and a
    non-integer, anisotropic downsample."""
    rng = np.random.default_rng(seed)
    tissue = _mask((37, 53), (15.7, 16.3), rng)
    coords = rng.uniform(-100, 900, (400, 2))
    size = float(rng.uniform(20, 120))
    np.testing.assert_array_equal(
        tissue.tissue_fraction(coords, size),
        _hand_fraction(tissue.mask, coords, size, (15.7, 16.3)),
    )


def test_fraction_equals_the_hand_count_on_a_regular_patch_grid() -> None:
    rng = np.random.default_rng(3)
    tissue = _mask((64, 80), (14.0, 14.0), rng)
    gx, gy = np.meshgrid(np.arange(0, 80 * 14 - 223, 224), np.arange(0, 64 * 14 - 223, 224))
    coords = np.stack([gx.ravel(), gy.ravel()], 1)
    fraction = tissue.tissue_fraction(coords, 224.0)
    np.testing.assert_array_equal(
        fraction, _hand_fraction(tissue.mask, coords, 224.0, (14.0, 14.0))
    )
    blocks = tissue.mask[: len(np.unique(gy)) * 16, : len(np.unique(gx)) * 16]
    reshaped = blocks.reshape(len(np.unique(gy)), 16, -1, 16).mean(axis=(1, 3)).ravel()
    np.testing.assert_allclose(fraction, reshaped, rtol=0, atol=1e-15)


def test_no_patches_and_empty_patches_give_zeros() -> None:
    tissue = _mask((10, 10), (4.0, 4.0), np.random.default_rng(4))
    assert tissue.tissue_fraction(np.zeros((0, 2)), 8.0).shape == (0,)
    np.testing.assert_array_equal(
        tissue.tissue_fraction([[500.0, 500.0], [0.0, 0.0]], 1.0), [0.0, 0.0]
    )
