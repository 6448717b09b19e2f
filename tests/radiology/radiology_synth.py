"""Synthetic volumes for the radiology tests (imported by the test modules of this folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk


def make_image(
    array_zyx: np.ndarray, *, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None
) -> sitk.Image:
    """A SimpleITK image from a (z, y, x) array with the given geometry (x, y, z order)."""
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    if direction is not None:
        image.SetDirection([float(d) for d in np.asarray(direction).ravel()])
    return image


def write_image(path: Path, array_zyx: np.ndarray, **geometry) -> Path:
    """Write a NIfTI file (geometry as in :func:`make_image`); returns the path."""
    sitk.WriteImage(make_image(array_zyx, **geometry), str(path))
    return path


def ball(shape: tuple[int, int, int], centre, radius: float) -> np.ndarray:
    """bool (z, y, x) ball of ``radius`` voxels around ``centre`` (z, y, x)."""
    grid = np.indices(shape, dtype=np.float64)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, centre))
    return d2 <= radius**2


def planted_habitats(
    shape=(40, 40, 40), *, k: int = 3, channels: int = 2, noise: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ball tumour split into ``k`` slabs along x with distinct mean intensities per channel.

    Returns:
        image float32 (C, D, H, W), mask bool (D, H, W), truth int (D, H, W): 0 outside,
        1..k the planted sub-region.
    """
    rng = np.random.default_rng(seed)
    centre = np.array(shape) / 2.0 - 0.5
    mask = ball(shape, centre, radius=min(shape) / 2.0 - 3)
    xs = np.nonzero(mask)[2]
    edges = np.quantile(xs, np.linspace(0, 1, k + 1))
    truth = np.zeros(shape, dtype=np.int64)
    x = np.indices(shape)[2]
    truth[mask] = np.clip(np.searchsorted(edges[1:-1], x[mask], side="right") + 1, 1, k)
    means = np.stack([np.arange(k) * 1.0, (np.arange(k) * 7 % k) * 1.0])[:channels].T
    image = rng.normal(0.0, noise, size=(channels, *shape))
    for h in range(1, k + 1):
        image[:, truth == h] += means[h - 1][:, None]
    return image.astype(np.float32), mask, truth


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    """A manifest CSV with the required clinical columns filled in for each row."""
    base = {"patient_id": None, "centre": "A", "time": 12.0, "time_unit": "months", "event": 1}
    table = pd.DataFrame([{**base, **row, "patient_id": row["subject_id"]} for row in rows])
    path = folder / "manifest.csv"
    table.to_csv(path, index=False)
    return path
