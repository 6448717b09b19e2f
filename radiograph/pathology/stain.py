"""Macenko stain normalisation (Macenko et al., ISBI 2009).

Beer-Lambert: the optical density of a pixel, ``OD = -log(I / I0)`` per RGB channel, is a
non-negative mix of the stains' OD vectors, ``OD = S c`` with S (3, 2) the unit OD vectors of
haematoxylin and eosin (columns) and c (2,) their concentrations. Macenko estimates S from the
plane of the two main principal directions of the stained pixels' OD, taking the directions at
the ``alpha`` and ``100 - alpha`` percentiles of the angle in that plane. A source image is
normalised to a target by solving for c with the source's S, rescaling each stain's
concentrations by target / source 99th percentile, and recomposing with the target's S.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Reference H&E OD vectors (columns H, E) and 99th-percentile concentrations of the widely
#: used Macenko implementation (github.com/schaugf/HEnorm_python); the default target.
REFERENCE_STAINS = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]])
REFERENCE_MAX_CONCENTRATION = np.array([1.9705, 1.0308])


class StainError(ValueError):
    """Stains cannot be estimated (too few stained pixels)."""


@dataclass(frozen=True)
class StainParams:
    """Stains of one image.

    Attributes:
        stain_matrix: (3, 2) unit optical-density vectors of haematoxylin and eosin (columns).
        max_concentration: (2,) 99th percentile of each stain's concentration.
    """

    stain_matrix: np.ndarray
    max_concentration: np.ndarray


DEFAULT_TARGET = StainParams(
    REFERENCE_STAINS / np.linalg.norm(REFERENCE_STAINS, axis=0), REFERENCE_MAX_CONCENTRATION
)


def optical_density(rgb: np.ndarray, io: float = 240.0) -> np.ndarray:
    """Optical density ``-log((I + 1) / io)`` of uint8 RGB, as float64 of the same shape."""
    return -np.log((rgb.astype(np.float64) + 1.0) / io)


def fit_macenko(
    rgb: np.ndarray,
    *,
    io: float = 240.0,
    alpha: float = 1.0,
    beta: float = 0.15,
    min_pixels: int = 100,
) -> StainParams:
    """Estimate the H&E stain matrix and maximum concentrations of an image.

    Args:
        rgb: uint8 (..., 3) pixels (an image or a stack of tiles).
        io: transmitted light intensity (background brightness).
        alpha: percentile of the angle giving the extreme stain directions.
        beta: pixels with an OD below ``beta`` in any channel are background and ignored.
        min_pixels: fewest stained pixels needed.

    Returns:
        The stains; the H column is the vector with the larger red-channel OD.

    Raises:
        StainError: fewer than ``min_pixels`` stained pixels.
    """
    od = optical_density(np.asarray(rgb).reshape(-1, 3), io)
    od = od[(od > beta).all(axis=1)]
    if len(od) < min_pixels:
        raise StainError(f"only {len(od)} stained pixels (need {min_pixels}) to estimate stains")
    _, vectors = np.linalg.eigh(np.cov(od.T))
    plane = vectors[:, 1:3]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)
    projected = od @ plane
    phi = np.arctan2(projected[:, 1], projected[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    v_lo = plane @ np.array([np.cos(lo), np.sin(lo)])
    v_hi = plane @ np.array([np.cos(hi), np.sin(hi)])
    he = np.stack([v_lo, v_hi] if v_lo[0] > v_hi[0] else [v_hi, v_lo], axis=1)
    he = he * np.where(he.sum(axis=0) < 0, -1.0, 1.0)
    he = he / np.linalg.norm(he, axis=0)
    concentrations = np.linalg.lstsq(he, od.T, rcond=None)[0]
    return StainParams(he, np.percentile(concentrations, 99, axis=1))


def load_stain_target(reference: str | os.PathLike | None) -> StainParams:
    """Target stains fitted on a reference image file, or :data:`DEFAULT_TARGET` for None."""
    if reference is None:
        return DEFAULT_TARGET
    path = Path(reference)
    if not path.is_file():
        raise StainError(f"stain reference image not found: {path} (fix --stain-reference)")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    try:
        return fit_macenko(rgb)
    except StainError as err:
        raise StainError(f"stain reference {path}: {err}; choose an H&E image with tissue") from err


class MacenkoNormalizer:
    """Maps RGB images stained like ``source`` to the stains of ``target``."""

    def __init__(self, source: StainParams, target: StainParams, *, io: float = 240.0):
        self.source = source
        self.target = target
        self.io = io
        self._unmix = np.linalg.pinv(source.stain_matrix)
        self._scale = target.max_concentration / source.max_concentration

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 (..., 3) -> uint8 (..., 3) with the target's stains."""
        shape = rgb.shape
        od = optical_density(rgb.reshape(-1, 3), self.io)
        concentrations = (od @ self._unmix.T) * self._scale
        out = self.io * np.exp(-concentrations @ self.target.stain_matrix.T)
        return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(shape)
