"""Encoder features of units: token tiling, overlap-weighted averaging, the 2D fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from radiology_synth import ball

from radiograph.encoders import build_encoder
from radiograph.encoders.vit3d import build_volume_encoder
from radiograph.radiology.deep_features import (
    Tokens,
    encode_slices,
    encode_volume,
    to_uint8,
    unit_features,
    window_starts,
)
from radiograph.radiology.units import grid_units

pytestmark = pytest.mark.filterwarnings("ignore::radiograph.encoders.base.RandomWeightsWarning")


def brute_force_unit_features(tokens: Tokens, labels: np.ndarray, n: int) -> np.ndarray:
    """Per voxel, the feature of the token whose box holds it; averaged over each unit."""
    per_voxel = {}
    for t, (start, stop) in enumerate(tokens.boxes):
        for z in range(max(start[0], 0), min(stop[0], labels.shape[0])):
            for y in range(max(start[1], 0), min(stop[1], labels.shape[1])):
                for x in range(max(start[2], 0), min(stop[2], labels.shape[2])):
                    per_voxel[(z, y, x)] = tokens.features[t]
    out = np.zeros((n, tokens.features.shape[1]))
    for i in range(n):
        voxels = np.argwhere(labels == i + 1)
        out[i] = np.mean([per_voxel[tuple(v)] for v in voxels], axis=0)
    return out


def test_unit_features_are_voxel_means_of_token_features():
    rng = np.random.default_rng(0)
    mask = ball((14, 15, 16), (7, 7, 8), 6)
    units = grid_units(mask, 1.0, size_mm=4.0, min_fraction=0.2)
    starts = window_starts(units.labels > 0, (3, 5, 4))
    boxes = np.stack([np.stack([s, s + (3, 5, 4)]) for s in starts])
    tokens = Tokens(rng.normal(size=(len(boxes), 6)).astype(np.float32), boxes)
    got = unit_features(tokens, units)
    np.testing.assert_allclose(
        got, brute_force_unit_features(tokens, units.labels, len(units)), rtol=1e-5, atol=1e-6
    )


def test_windows_cover_the_region_and_only_touch_it():
    rng = np.random.default_rng(1)
    region = np.zeros((30, 40, 50), dtype=bool)
    region[tuple(rng.integers(0, (30, 40, 50), size=(40, 3)).T)] = True
    size = np.array([8, 16, 16])
    starts = window_starts(region, size)
    covered = np.zeros_like(region)
    for s in starts:
        lo, hi = np.maximum(s, 0), np.minimum(s + size, region.shape)
        assert region[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].any()
        assert not covered[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].any()  # no overlap
        covered[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    assert covered[region].all()


def test_3d_encoder_tokens_of_a_unit_come_from_its_place():
    """A unit's feature equals the encoder's output for the window holding it, at its tokens."""
    torch.manual_seed(0)
    encoder = build_volume_encoder("vit3d-tiny", random_weights=True)
    rng = np.random.default_rng(2)
    image = rng.uniform(size=(1, 40, 70, 70)).astype(np.float32)
    mask = np.zeros((40, 70, 70), dtype=bool)
    mask[10:26, 20:36, 30:46] = True
    units = grid_units(mask, 1.0, size_mm=8.0, min_fraction=0.9)
    tokens = encode_volume(encoder, image, units.labels > 0, batch_size=1)
    feats = unit_features(tokens, units)
    # the tiling is centred on the 16^3 box: one window starting at (10-8, 20-24, 30-24)
    start = np.array([2, -4, 6])
    np.testing.assert_array_equal(window_starts(mask, encoder.img_size), [start])
    window = np.zeros((1, 1, *encoder.img_size), np.float32)
    window[0, 0, :, 4:, :] = image[0, 2:34, 0:60, 6:70]
    window[0, 0, :, :4, :] = image.min()
    with torch.no_grad():
        direct = encoder(torch.from_numpy(window))[0].numpy()
    boxes = encoder.token_boxes(start)
    for i in range(len(units)):
        lo = np.argwhere(units.labels == i + 1).min(axis=0)
        token = np.flatnonzero(np.all((boxes[:, 0] <= lo) & (lo < boxes[:, 1]), axis=1))[0]
        np.testing.assert_allclose(feats[i], direct[token], rtol=1e-4, atol=1e-5)


def test_2d_fallback_runs_a_registry_encoder_slice_by_slice():
    encoder = build_encoder("timm:test_resnet", random_weights=True)
    image = np.random.default_rng(3).uniform(size=(1, 6, 40, 40)).astype(np.float32)
    mask = np.zeros((6, 40, 40), dtype=bool)
    mask[2:4, 8:24, 8:24] = True
    units = grid_units(mask, 1.0, size_mm=16.0, min_fraction=0.0)
    tokens = encode_slices(encoder, image, units.labels > 0, modality="CT", tile=16)
    assert tokens.features.shape == (2, encoder.dim)  # two slices x one 16 x 16 tile
    np.testing.assert_array_equal(tokens.boxes[:, 0], [[2, 8, 8], [3, 8, 8]])
    feats = unit_features(tokens, units)
    tile = to_uint8(image[0, 2, 8:24, 8:24], "CT")
    with torch.no_grad():
        direct = encoder(encoder.preprocess(np.repeat(tile[None, ..., None], 3, axis=-1)))[0]
    assert len(units) == 1
    np.testing.assert_allclose(tokens.features[0], direct.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats[0], tokens.features.mean(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "modality,values,expected",
    [
        ("CT", [-0.5, 0.0, 0.5, 1.0, 2.0], [0, 0, 128, 255, 255]),
        ("MR", [-4.0, -3.0, 0.0, 3.0], [0, 0, 128, 255]),
    ],
)
def test_to_uint8(modality, values, expected):
    np.testing.assert_array_equal(to_uint8(np.array(values), modality), expected)
