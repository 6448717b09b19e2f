"""Spatial units inside the tumour: the radiology graph's future nodes.

Units are disjoint sets of tumour voxels, held as one label volume (0 = not in a unit,
1..N = unit id), so radiomics and encoder features of unit ``i`` are computed on exactly the
voxels ``labels == i``:

* **grid**: a regular lattice of cubes of ``size_mm`` side, aligned with the tumour's bounding
  box; a cube becomes a unit (its voxels inside the tumour) when the tumour fills at least
  ``min_fraction`` of it.
* **habitat**: each habitat of :class:`radiograph.radiology.habitats.HabitatModel` split into
  connected components (26-connectivity); components smaller than ``min_voxels`` are dropped
  (they stay counted in the per-habitat volume and proportion).

A unit's position is the centroid of its voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: 26-connectivity: voxels touching by a face, an edge or a corner are connected.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


class NoUnitsError(ValueError):
    """No unit fits in the tumour (volume too small for the unit size)."""


@dataclass
class Units:
    """Disjoint spatial units of one volume.

    Attributes:
        labels: int32 (D, H, W): 0 outside every unit, ``i + 1`` for unit ``i``.
        kind: "grid" or "habitat".
        size_mm: grid cube side in mm (0.0 for habitats).
        voxels: int64 (N,) voxel count of each unit.
        centroids: float64 (N, 3) centroid of each unit in continuous voxel index (z, y, x).
        habitat: int64 (N,) habitat id (1..K) of each unit; 0 for grid units.
    """

    labels: np.ndarray
    kind: str
    size_mm: float
    voxels: np.ndarray
    centroids: np.ndarray
    habitat: np.ndarray

    def __len__(self) -> int:
        return int(len(self.voxels))

    def boxes(self) -> np.ndarray:
        """int64 (N, 2, 3): each unit's bounding box, [start, stop) voxel index in (z, y, x)."""
        slices = ndimage.find_objects(self.labels, max_label=len(self))
        return np.array(
            [[[s.start for s in box], [s.stop for s in box]] for box in slices], dtype=np.int64
        ).reshape(len(self), 2, 3)


def grid_units(
    mask: np.ndarray, spacing_mm: float, *, size_mm: float = 8.0, min_fraction: float = 0.5
) -> Units:
    """Cubes of ``size_mm`` tiling the tumour's bounding box; keep those the tumour fills enough.

    Args:
        mask: bool (D, H, W) tumour mask on an isotropic grid.
        spacing_mm: the isotropic voxel spacing in mm.
        size_mm: cube side in mm (rounded to whole voxels, at least 1).
        min_fraction: keep a cube when at least this fraction of its voxels (of a full cube)
            is tumour; 0 keeps every cube touching the tumour.

    Raises:
        NoUnitsError: no cube reaches ``min_fraction``.
    """
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1]; got {min_fraction}")
    side = max(1, int(round(size_mm / spacing_mm)))
    zyx = np.nonzero(mask)
    start = np.array([c.min() for c in zyx])
    cells = (np.array([c.max() for c in zyx]) - start) // side + 1
    cz, cy, cx = ((c - s0) // side for c, s0 in zip(zyx, start))
    cube_of_voxel = (cz * cells[1] + cy) * cells[2] + cx
    counts = np.bincount(cube_of_voxel, minlength=int(np.prod(cells)))
    keep = np.flatnonzero((counts > 0) & (counts >= min_fraction * side**3))
    if keep.size == 0:
        raise NoUnitsError(
            f"no {side}-voxel ({side * spacing_mm:g} mm) cube is at least "
            f"{min_fraction:.0%} tumour (tumour has {int(mask.sum())} voxels); "
            "use a smaller unit size or a lower minimum fraction"
        )
    lookup = np.zeros(int(np.prod(cells)), dtype=np.int32)
    lookup[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    labels = np.zeros(mask.shape, dtype=np.int32)
    labels[zyx] = lookup[cube_of_voxel]
    return _make_units(labels, "grid", float(side * spacing_mm), np.zeros(keep.size, np.int64))


def habitat_units(habitat_labels: np.ndarray, *, min_voxels: int = 27) -> Units:
    """Split each habitat into connected components (26-connectivity); each is a unit.

    Args:
        habitat_labels: int (D, H, W): 0 outside the tumour, 1..K the habitat of each voxel.
        min_voxels: drop components with fewer voxels than this.

    Raises:
        NoUnitsError: no component has ``min_voxels`` voxels.
    """
    labels = np.zeros(habitat_labels.shape, dtype=np.int32)
    habitat_of_unit: list[int] = []
    for habitat in np.unique(habitat_labels[habitat_labels > 0]).tolist():
        components, n = ndimage.label(habitat_labels == habitat, structure=CONNECTIVITY_26)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel(), minlength=n + 1)
        kept = np.flatnonzero(sizes[1:] >= min_voxels) + 1
        lookup = np.zeros(n + 1, dtype=np.int32)
        lookup[kept] = len(habitat_of_unit) + np.arange(1, kept.size + 1, dtype=np.int32)
        inside = components > 0
        labels[inside] = lookup[components[inside]]
        habitat_of_unit += [int(habitat)] * kept.size
    if not habitat_of_unit:
        raise NoUnitsError(
            f"no habitat component has at least {min_voxels} voxels; lower the minimum unit size"
        )
    return _make_units(labels, "habitat", 0.0, np.array(habitat_of_unit, dtype=np.int64))


def _make_units(labels: np.ndarray, kind: str, size_mm: float, habitat: np.ndarray) -> Units:
    n = len(habitat)
    voxels = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
    zyx = np.nonzero(labels)
    ids = labels[zyx]
    sums = np.stack([np.bincount(ids, weights=c, minlength=n + 1)[1:] for c in zyx], axis=1)
    return Units(
        labels=labels,
        kind=kind,
        size_mm=size_mm,
        voxels=voxels,
        centroids=sums / voxels[:, None],
        habitat=habitat,
    )
