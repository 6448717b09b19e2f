"""pyradiomics features of units equal a direct pyradiomics call on the same unit mask."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiology_synth import ball, write_image
from radiomics import featureextractor

from radiograph.radiology.radiomics_features import DEFAULT_PARAMS, RadiomicsExtractor
from radiograph.radiology.units import grid_units
from radiograph.radiology.volume import load_volume

CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


@pytest.fixture
def ct_volume(tmp_path):
    rng = np.random.default_rng(0)
    shape = (24, 26, 28)
    hu = rng.normal(40, 30, shape) + 60 * (np.indices(shape)[2] > 14)
    mask = ball(shape, (12, 13, 14), 9).astype(np.uint8)
    geometry = dict(spacing=(1.0, 1.0, 1.0), origin=(-20.0, 15.0, 100.0))
    img = write_image(tmp_path / "ct.nii.gz", hu.astype(np.float32), **geometry)
    t2 = write_image(tmp_path / "t2.nii.gz", (hu * 0.5 + 300).astype(np.float32), **geometry)
    msk = write_image(tmp_path / "mask.nii.gz", mask, **geometry)
    return img, t2, msk


def test_unit_features_equal_direct_pyradiomics_call(ct_volume):
    img, _, msk = ct_volume
    vol = load_volume("S1", [img], msk, modality="CT")
    units = grid_units(vol.mask, 1.0, size_mm=8.0, min_fraction=0.3)
    features, names = RadiomicsExtractor(modality="CT").extract(vol, units)
    assert features.shape == (len(units), len(names))
    assert all(f"original_{c}_" in " ".join(names) for c in CLASSES)

    direct = featureextractor.RadiomicsFeatureExtractor(str(DEFAULT_PARAMS["CT"]))
    image = sitk.ReadImage(str(img))  # the whole, uncropped volume
    for i in (0, len(units) // 2, len(units) - 1):
        unit_mask = sitk.GetImageFromArray((units.labels == i + 1).astype(np.uint8))
        unit_mask.CopyInformation(image)
        result = direct.execute(image, unit_mask, label=1)
        expected = {
            f"ch0_{k}": float(v) for k, v in result.items() if not k.startswith("diagnostics_")
        }
        assert list(expected) == names
        np.testing.assert_allclose(
            features[i],
            np.array(list(expected.values())),
            rtol=1e-4,
            atol=1e-5,
            err_msg=f"unit {i}",
        )


def test_shape_features_once_for_multichannel(ct_volume):
    img, t2, msk = ct_volume
    vol = load_volume("S1", [img, t2], msk, modality="MR")
    units = grid_units(vol.mask, 1.0, size_mm=8.0, min_fraction=0.5)
    features, names = RadiomicsExtractor(modality="MR").extract(vol, units)
    ch0 = [n for n in names if n.startswith("ch0_")]
    ch1 = [n for n in names if n.startswith("ch1_")]
    assert any("_shape_" in n for n in ch0) and not any("_shape_" in n for n in ch1)
    assert [n[4:] for n in ch1] == [n[4:] for n in ch0 if "_shape_" not in n]
    assert np.isfinite(features).all()
