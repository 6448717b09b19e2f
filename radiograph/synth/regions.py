"""Random regions shared by the synthetic slides and volumes: smooth noise and compact blobs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def blobs(
    rng: np.random.Generator,
    region: np.ndarray,
    target: int,
    radius: float,
    *,
    spacing: Sequence[float] | None = None,
    central: bool = False,
) -> np.ndarray:
    """Compact irregular blobs covering exactly ``target`` elements of ``region``.

    The target area (or volume) is split over ``n = round(target / typical blob)`` blobs of
    equal size; blob centres are drawn inside ``region`` at least one blob radius from its
    border where possible (preferring deep points when ``central``) and about two radii apart;
    then the ``target`` elements of ``region`` with the largest "potential" (the maximum over
    blobs of a Gaussian bump of the blob's radius, times smooth multiplicative noise for
    irregular borders) are taken. The covered count is therefore exact, whatever the shapes.

    Args:
        rng: random generator.
        region: bool array (2D or 3D, numpy axis order) where blobs may lie.
        target: number of elements to cover, in [0, ``region.sum()``].
        radius: typical blob radius, in the unit of ``spacing``.
        spacing: physical size of an element along each numpy axis (default 1 per axis).
        central: prefer centres far from the region's border (e.g. necrosis).

    Returns:
        bool array shaped like ``region``, True on exactly ``target`` elements of ``region``.
    """
    target = int(target)
    available = int(region.sum())
    if not 0 <= target <= available:
        raise ValueError(f"cannot cover {target} elements of a region of {available}")
    out = np.zeros(region.shape, bool)
    if target == 0:
        return out
    box = ndimage.find_objects(region.astype(np.int8))[0]
    inner = region[box]
    step = np.ones(region.ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    unit = float(np.prod(step))
    ball = math.pi * radius**2 if region.ndim == 2 else 4.0 / 3.0 * math.pi * radius**3
    count = max(1, int(round(target * unit / ball)))
    blob_radius = (target * unit / count / ball) ** (1.0 / region.ndim) * radius
    depth = ndimage.distance_transform_edt(np.pad(inner, 1), sampling=step)[
        (slice(1, -1),) * region.ndim
    ]
    candidates = np.flatnonzero(depth >= min(blob_radius, float(depth.max())))
    weights = depth.ravel()[candidates] ** (4 if central else 0)
    draws = rng.choice(
        candidates, size=min(len(candidates), 50 * count), replace=False, p=weights / weights.sum()
    )
    centres: list[np.ndarray] = []
    for index in draws:
        point = np.array(np.unravel_index(index, inner.shape), dtype=np.float64) * step
        if all(np.linalg.norm(point - c) > 2.2 * blob_radius for c in centres):
            centres.append(point)
        if len(centres) == count:
            break
    axes = [np.arange(n, dtype=np.float64) * s for n, s in zip(inner.shape, step)]
    potential = np.zeros(inner.shape)
    for centre in centres:
        d2 = sum(
            ((axis - c) ** 2).reshape([-1 if i == k else 1 for i in range(region.ndim)])
            for k, (axis, c) in enumerate(zip(axes, centre))
        )
        potential = np.maximum(potential, np.exp(-d2 / (2.0 * blob_radius**2)))
    roughness = smooth_noise(rng, inner.shape, [max(blob_radius / 3.0 / s, 1.0) for s in step])
    potential *= np.exp(0.3 * roughness)
    potential[~inner] = -np.inf
    chosen = np.argpartition(potential.ravel(), -target)[-target:]
    inside = np.zeros(inner.shape, bool)
    inside.flat[chosen] = True
    out[box] = inside
    return out


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | Sequence[float]
) -> np.ndarray:
    """Gaussian-smoothed white noise of ``shape``, rescaled to zero mean and unit std (float32).

    Args:
        rng: random generator.
        shape: array shape.
        sigma: smoothing standard deviation in elements (one value or one per axis).
    """
    noise = ndimage.gaussian_filter(
        rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap"
    )
    noise -= noise.mean()
    return (noise / max(float(noise.std()), 1e-12)).astype(np.float32)
