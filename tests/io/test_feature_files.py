"""h5 feature files: round trip, and files in the CLAM / TRIDENT layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from radiograph import __version__
from radiograph.io.features import FeatureSet, read_features, write_features


def test_round_trip_keeps_arrays_and_attrs(tmp_path):
    rng = np.random.default_rng(0)
    fs = FeatureSet(
        rng.normal(size=(7, 5)).astype(np.float32),
        rng.integers(0, 10_000, size=(7, 2)),
        {
            "subject_id": "S1",
            "encoder": "uni",
            "patch_size": 224,
            "mpp": 0.5,
            "random_weights": False,
            "feature_names": ["a", "b", "c", "d", "e"],
        },
    )
    path = write_features(tmp_path / "S1" / "slide.h5", fs)
    back = read_features(path)
    np.testing.assert_array_equal(back.features, fs.features)
    np.testing.assert_array_equal(back.coords, fs.coords)
    assert back.features.dtype == np.float32 and back.coords.shape == (7, 2)
    assert back.attrs["subject_id"] == "S1" and back.attrs["patch_size"] == 224
    assert back.attrs["feature_names"] == ["a", "b", "c", "d", "e"]
    assert back.attrs["random_weights"] is False
    assert back.attrs["code_version"] == __version__


def test_reads_clam_layout_with_attrs_on_coords(tmp_path):
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=np.ones((1, 3, 4), np.float32))  # (1, N, D)
        coords = h5.create_dataset("coords", data=np.array([[0, 0], [256, 0], [0, 256]]))
        coords.attrs["patch_size"] = 256
        coords.attrs["patch_level"] = 0
    fs = read_features(path)
    assert fs.features.shape == (3, 4) and fs.attrs == {"patch_size": 256, "patch_level": 0}


def test_3d_coords_and_errors(tmp_path):
    fs = FeatureSet(np.zeros((2, 3)), np.zeros((2, 3)))
    assert read_features(write_features(tmp_path / "r.h5", fs)).coords.shape == (2, 3)
    with pytest.raises(ValueError, match="features has 2 rows but coords has 3"):
        FeatureSet(np.zeros((2, 3)), np.zeros((3, 2)))
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as h5:
        h5.create_dataset("features", data=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"bad\.h5: missing dataset\(s\) \['coords'\]"):
        read_features(bad)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="garbage.h5: not a readable HDF5"):
        read_features(garbage)
