"""Grid and habitat units: coverage, the tumour-fraction rule, components, centroids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from radiology_synth import ball
from scipy import ndimage

from radiograph.radiology.units import NoUnitsError, grid_units, habitat_units


def blob_mask(shape=(30, 34, 38), seed=0) -> np.ndarray:
    """An irregular tumour: the union of a few random balls."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(4):
        centre = rng.uniform(8, np.array(shape) - 8)
        mask |= ball(shape, centre, rng.uniform(4, 8))
    return mask


def test_grid_units_with_no_fraction_cover_the_mask_exactly():
    mask = blob_mask()
    units = grid_units(mask, 1.0, size_mm=8.0, min_fraction=0.0)
    np.testing.assert_array_equal(units.labels > 0, mask)
    # each unit lies inside one 8-voxel cube of the lattice anchored at the tumour's box
    start = np.argwhere(mask).min(axis=0)
    for i, (lo, hi) in enumerate(units.boxes()):
        cube = (lo - start) // 8
        assert np.all((hi - 1 - start) // 8 == cube), f"unit {i} spans several cubes"
    assert units.voxels.sum() == mask.sum()


def test_grid_keeps_exactly_the_cubes_filled_enough():
    """Independent brute force over every cube of the lattice."""
    mask = blob_mask(seed=1)
    side, fraction = 6, 0.4
    units = grid_units(mask, 2.0, size_mm=12.0, min_fraction=fraction)  # 12 mm / 2 mm = 6 voxels
    assert units.size_mm == 12.0
    start = np.argwhere(mask).min(axis=0)
    stop = np.argwhere(mask).max(axis=0) + 1
    kept = 0
    for corner in itertools.product(*(range(a, b, side) for a, b in zip(start, stop))):
        cube = tuple(slice(c, c + side) for c in corner)
        tumour = mask[cube]
        labels = np.unique(units.labels[cube][tumour])
        if tumour.sum() >= fraction * side**3:
            kept += 1
            assert len(labels) == 1 and labels[0] > 0  # the cube's tumour voxels are one unit
            assert units.voxels[labels[0] - 1] == tumour.sum()
        else:
            assert np.all(labels == 0)
    assert kept == len(units)


def test_unit_centroids_are_centres_of_mass():
    mask = blob_mask(seed=2)
    units = grid_units(mask, 1.0, size_mm=5.0, min_fraction=0.2)
    expected = ndimage.center_of_mass(np.ones_like(mask), units.labels, range(1, len(units) + 1))
    np.testing.assert_allclose(units.centroids, np.array(expected), atol=1e-9)


def test_tumour_smaller_than_a_unit_has_no_units():
    mask = np.zeros((20, 20, 20), dtype=bool)
    mask[5:8, 5:8, 5:8] = True  # 27 voxels, an 8^3 cube needs 256 for half
    with pytest.raises(NoUnitsError, match="smaller unit size"):
        grid_units(mask, 1.0, size_mm=8.0, min_fraction=0.5)


def test_habitat_units_are_connected_components():
    labels = np.zeros((20, 20, 20), dtype=np.int16)
    labels[2:6, 2:6, 2:6] = 1  # habitat 1, component a (64 voxels)
    labels[10:14, 10:14, 10:14] = 1  # habitat 1, component b (64 voxels)
    labels[14, 14, 14] = 1  # touches b by a corner: joins it (26-connectivity)
    labels[2:6, 10:16, 2:6] = 2  # habitat 2 (96 voxels)
    labels[18, 1, 1] = 2  # a 1-voxel speck: dropped
    units = habitat_units(labels, min_voxels=27)
    assert len(units) == 3
    assert sorted(units.voxels.tolist()) == [64, 65, 96]
    assert sorted(units.habitat.tolist()) == [1, 1, 2]
    for i in range(len(units)):
        assert np.all(labels[units.labels == i + 1] == units.habitat[i])
    assert units.labels[18, 1, 1] == 0


def test_habitat_units_need_one_big_enough_component():
    labels = np.zeros((10, 10, 10), dtype=np.int16)
    labels[1:3, 1:3, 1:3] = 1
    with pytest.raises(NoUnitsError):
        habitat_units(labels, min_voxels=27)
