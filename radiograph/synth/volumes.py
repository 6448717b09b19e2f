"""Synthetic contrast CT volumes of a kidney tumour with planted enhancing sub-regions.

Like the slides, a volume is made in two steps:

1. :func:`ct_layout` draws the tumour (a lobulated ellipsoid, semi-axes 15-22 mm) and, inside
   it, two kinds of compact sub-regions sized to exact fractions of the tumour volume:
   ``PLANTED`` enhancing blobs (the prognostic pattern, about 120 HU, mottled) and ``NECROSIS``
   (a central, hypodense, smooth nuisance that does not affect risk). Labels are
   ``OUTSIDE``, ``TUMOUR``, ``NECROSIS`` and ``PLANTED``.
2. :func:`render_ct` paints Hounsfield units: surrounding fat, soft tissue and an enhancing
   kidney around the tumour, a heterogeneous tumour (30-60 HU), the sub-regions, then a
   centre-specific scanner blur, noise level and HU offset (scanner nuisance).

Arrays are in SimpleITK's numpy order ``(z, y, x)``; spacing and origin are in SimpleITK's
``(x, y, z)`` order and millimetres; the direction is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radiograph.io.atomic import atomic_path
from radiograph.synth.regions import blobs, smooth_noise

#: Label values of a CT layout.
OUTSIDE, TUMOUR, NECROSIS, PLANTED = 0, 1, 2, 3
#: Default volume size in voxels, (x, y, z).
DEFAULT_CT_SIZE = (96, 96, 48)
#: Default voxel spacing in mm, (x, y, z).
DEFAULT_CT_SPACING = (0.8, 0.8, 2.0)
#: Range of the tumour's semi-axes in mm.
TUMOUR_SEMI_AXES_MM = (15.0, 22.0)
#: Typical radius (mm) of one planted (enhancing) blob and of one necrotic blob.
PLANTED_BLOB_MM = 6.0
NECROSIS_BLOB_MM = 8.0
#: Mean Hounsfield units and texture amplitude (HU) of each tissue.
HU = {
    "fat": (-100.0, 10.0),
    "soft_tissue": (40.0, 5.0),
    "kidney": (150.0, 10.0),
    "tumour": (45.0, 8.0),
    "necrosis": (12.0, 4.0),
    "planted": (120.0, 15.0),
}
#: Per-centre scanner: (blur sigma in mm, noise standard deviation in HU, HU offset).
CENTRE_SCANNERS = {"A": (0.6, 10.0, 0.0), "B": (0.9, 14.0, 5.0), "C": (0.75, 12.0, -4.0)}


@dataclass(frozen=True)
class CtLayout:
    """The label volume of one synthetic CT and its geometry.

    Attributes:
        labels: uint8 (z, y, x): OUTSIDE, TUMOUR, NECROSIS, PLANTED.
        spacing: (x, y, z) voxel spacing in mm.
        origin: (x, y, z) physical position in mm of voxel (0, 0, 0)'s centre.
        centre_mm: (x, y, z) tumour centre relative to the volume's centre, mm.
    """

    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    centre_mm: tuple[float, float, float]

    @property
    def tumour(self) -> np.ndarray:
        """bool (z, y, x): the tumour mask (all sub-regions included)."""
        return self.labels != OUTSIDE

    def fraction(self, label: int) -> float:
        """Volume of ``label`` voxels over the tumour volume."""
        return float((self.labels == label).sum() / max(int(self.tumour.sum()), 1))


def field_of_view(size: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """(x, y, z) extent in mm of a CT of ``size`` voxels and ``spacing`` mm.

    Raises:
        ValueError: the field of view cannot hold the largest tumour with a margin (2.5 times
            the largest semi-axis along every axis).
    """
    extent = np.asarray(size, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    if len(extent) != 3 or extent.min() < 2.5 * TUMOUR_SEMI_AXES_MM[1]:
        raise ValueError(
            f"CT field of view {extent.tolist()} mm (size {tuple(size)} x spacing "
            f"{tuple(spacing)}) is too small for a tumour of semi-axis up to "
            f"{TUMOUR_SEMI_AXES_MM[1]} mm: need {2.5 * TUMOUR_SEMI_AXES_MM[1]} mm "
            "along every axis"
        )
    return extent


def ct_layout(
    rng: np.random.Generator,
    planted_fraction: float,
    necrosis_fraction: float,
    *,
    size: tuple[int, int, int] = DEFAULT_CT_SIZE,
    spacing: tuple[float, float, float] = DEFAULT_CT_SPACING,
) -> CtLayout:
    """Draw the tumour and its planted and necrotic sub-regions.

    Args:
        rng: random generator.
        planted_fraction: planted volume over tumour volume, in [0, 0.5].
        necrosis_fraction: necrotic volume over tumour volume, in [0, 0.5].
        size: (x, y, z) voxels; the field of view must hold a 22 mm semi-axis tumour.
        spacing: (x, y, z) mm.

    Returns:
        The layout; ``fraction(PLANTED)`` equals ``planted_fraction`` up to one voxel.
    """
    for name, value in (
        ("planted_fraction", planted_fraction),
        ("necrosis_fraction", necrosis_fraction),
    ):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"{name} must be in [0, 0.5]; got {value}")
    extent = field_of_view(size, spacing)
    zyx_spacing = tuple(float(s) for s in spacing[::-1])
    centre = rng.uniform(-4.0, 4.0, 3)
    semi = rng.uniform(*TUMOUR_SEMI_AXES_MM, 3)
    x, y, z = _physical_grid(size, spacing)
    radius = np.sqrt(
        ((x - centre[0]) / semi[0]) ** 2
        + ((y - centre[1]) / semi[1]) ** 2
        + ((z - centre[2]) / semi[2]) ** 2
    )
    lobes = smooth_noise(rng, radius.shape, [6.0 / s for s in zyx_spacing])
    tumour = ndimage.binary_fill_holes(radius < 1.0 + 0.12 * lobes)
    components, count = ndimage.label(tumour)
    if count > 1:
        sizes = ndimage.sum(tumour, components, index=np.arange(1, count + 1))
        tumour = components == 1 + int(np.argmax(sizes))
    labels = tumour.astype(np.uint8) * TUMOUR
    volume = int(tumour.sum())
    planted = blobs(
        rng, tumour, round(planted_fraction * volume), PLANTED_BLOB_MM, spacing=zyx_spacing
    )
    labels[planted] = PLANTED
    necrosis = blobs(
        rng,
        tumour & ~planted,
        round(necrosis_fraction * volume),
        NECROSIS_BLOB_MM,
        spacing=zyx_spacing,
        central=True,
    )
    labels[necrosis] = NECROSIS
    origin = -0.5 * (extent - np.asarray(spacing)) + rng.uniform(-30.0, 30.0, 3)
    return CtLayout(
        labels=labels,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in np.round(origin, 1)),
        centre_mm=tuple(float(c) for c in centre),
    )


def render_ct(rng: np.random.Generator, layout: CtLayout, centre: str) -> np.ndarray:
    """Paint a CT in Hounsfield units.

    Args:
        rng: random generator for textures and noise.
        layout: the label volume.
        centre: acquiring centre (key of ``CENTRE_SCANNERS``): blur, noise and HU offset.

    Returns:
        int16 (z, y, x) HU.
    """
    if centre not in CENTRE_SCANNERS:
        raise ValueError(f"unknown centre {centre!r}; expected one of {sorted(CENTRE_SCANNERS)}")
    labels = layout.labels
    zyx_spacing = np.asarray(layout.spacing[::-1])
    size = tuple(reversed(labels.shape))
    x, y, z = _physical_grid(size, layout.spacing)
    cx, cy, cz = layout.centre_mm
    side = rng.choice([-1.0, 1.0])
    kidney = (
        ((x - cx - side * 12.0) / 24.0) ** 2 + ((y - cy) / 20.0) ** 2 + ((z - cz) / 45.0) ** 2
    ) < 1.0
    body = (
        (x / (0.48 * size[0] * layout.spacing[0])) ** 2
        + (y / (0.48 * size[1] * layout.spacing[1])) ** 2
    ) < 1.0

    def tissue(name: str, sigma_mm: float) -> np.ndarray:
        mean, amplitude = HU[name]
        return mean + amplitude * smooth_noise(rng, labels.shape, sigma_mm / zyx_spacing)

    hu = np.where(body, tissue("soft_tissue", 4.0), tissue("fat", 4.0))
    hu = np.where(kidney, tissue("kidney", 3.0), hu)
    hu = np.where(labels == TUMOUR, tissue("tumour", 3.0), hu)
    hu = np.where(labels == NECROSIS, tissue("necrosis", 4.0), hu)
    hu = np.where(labels == PLANTED, tissue("planted", 1.0), hu)
    blur_mm, noise_hu, offset_hu = CENTRE_SCANNERS[centre]
    hu = ndimage.gaussian_filter(hu, blur_mm / zyx_spacing)
    hu += rng.normal(offset_hu, 2.0) + noise_hu * rng.uniform(0.9, 1.1) * rng.standard_normal(
        labels.shape
    )
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16)


def write_nifti(path: str | os.PathLike, array: np.ndarray, layout: CtLayout) -> Path:
    """Write a (z, y, x) array as a compressed NIfTI with the layout's geometry, atomically."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(layout.spacing)
    image.SetOrigin(layout.origin)
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
    return Path(path)


def _physical_grid(
    size: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, z) mm of every voxel relative to the volume's centre, each shaped (z, y, x)."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(size, spacing)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z
