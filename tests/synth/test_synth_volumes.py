"""Synthetic CT volumes: geometry of CT, mask and ground truth agree; planted sub-regions are
exact fractions of the tumour and really enhance (measured on the written NIfTI files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from radiograph.synth import volumes


def _geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def test_ct_mask_and_truth_share_geometry(small_cohort):
    manifest = pd.read_csv(small_cohort / "manifest.csv", keep_default_na=False)
    truth = pd.read_csv(small_cohort / "ground_truth.csv", keep_default_na=False)
    origins = []
    for (_, row), (_, gt) in zip(manifest.iterrows(), truth.iterrows()):
        if not row["volume_paths"]:
            assert not gt["has_ct"] and row["mask_path"] == "" and gt["ct_planted_path"] == ""
            continue
        ct = sitk.ReadImage(str(small_cohort / row["volume_paths"]))
        mask = sitk.ReadImage(str(small_cohort / row["mask_path"]))
        planted = sitk.ReadImage(str(small_cohort / gt["ct_planted_path"]))
        necrosis = sitk.ReadImage(str(small_cohort / gt["ct_nuisance_path"]))
        assert ct.GetPixelID() == sitk.sitkInt16
        assert mask.GetPixelID() == planted.GetPixelID() == sitk.sitkUInt8
        assert ct.GetSize() == (64, 64, 32)
        assert ct.GetSpacing() == pytest.approx((1.0, 1.0, 2.0))
        assert ct.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
        for other in (mask, planted, necrosis):
            size, spacing, origin, direction = _geometry(other)
            assert size == ct.GetSize()
            assert spacing == pytest.approx(ct.GetSpacing())
            assert origin == pytest.approx(ct.GetOrigin())
            assert direction == pytest.approx(ct.GetDirection())
        m = sitk.GetArrayFromImage(mask).astype(bool)
        p = sitk.GetArrayFromImage(planted).astype(bool)
        n = sitk.GetArrayFromImage(necrosis).astype(bool)
        assert set(np.unique(sitk.GetArrayFromImage(mask))) <= {0, 1}
        assert not (p & ~m).any() and not (n & ~m).any() and not (p & n).any()
        assert p.sum() / m.sum() == pytest.approx(gt["rad_planted_fraction"], abs=1.0 / m.sum())
        assert n.sum() / m.sum() == pytest.approx(gt["rad_nuisance_fraction"], abs=1.0 / m.sum())
        # the tumour is one piece, its volume that of an ellipsoid with semi-axes 15-22 mm
        volume_mm3 = m.sum() * np.prod(ct.GetSpacing())
        assert 4 / 3 * np.pi * 13**3 < volume_mm3 < 4 / 3 * np.pi * 24**3
        assert ndimage.label(m)[1] == 1
        origins.append(ct.GetOrigin())
    assert len(origins) >= 4
    assert all(np.abs(o).max() > 1.0 for o in origins)  # a non-trivial origin
    assert len({tuple(np.round(o, 3)) for o in origins}) == len(origins)


def test_planted_subregions_enhance_in_the_written_files(small_cohort):
    """Planted voxels are about 120 HU against 30-60 HU for the rest of the tumour; pooled over
    subjects and centres (scanner noise and offsets included), HU separates them."""
    truth = pd.read_csv(small_cohort / "ground_truth.csv", keep_default_na=False)
    manifest = pd.read_csv(small_cohort / "manifest.csv", keep_default_na=False)
    planted_hu, tumour_hu = [], []
    for (_, row), (_, gt) in zip(manifest.iterrows(), truth.iterrows()):
        if not row["volume_paths"]:
            continue
        hu = sitk.GetArrayFromImage(sitk.ReadImage(str(small_cohort / row["volume_paths"])))
        m = sitk.GetArrayFromImage(sitk.ReadImage(str(small_cohort / row["mask_path"]))) > 0
        p = sitk.GetArrayFromImage(sitk.ReadImage(str(small_cohort / gt["ct_planted_path"]))) > 0
        core = ndimage.binary_erosion(p)  # away from the blur at blob borders
        planted_hu.append(hu[core])
        tumour_hu.append(hu[m & ~ndimage.binary_dilation(p, iterations=2)])
    planted_hu, tumour_hu = np.concatenate(planted_hu), np.concatenate(tumour_hu)
    assert len(planted_hu) > 500
    assert 95 < planted_hu.mean() < 145
    assert 15 < tumour_hu.mean() < 65
    auc = roc_auc_score(
        np.r_[np.ones(len(planted_hu)), np.zeros(len(tumour_hu))], np.r_[planted_hu, tumour_hu]
    )
    assert auc > 0.97


def test_layout_fractions_exact_and_refuses_small_field():
    rng = np.random.default_rng(4)
    layout = volumes.ct_layout(rng, 0.12, 0.1)
    tumour = layout.tumour.sum()
    assert abs(layout.fraction(volumes.PLANTED) - 0.12) <= 0.5 / tumour
    assert abs(layout.fraction(volumes.NECROSIS) - 0.1) <= 0.5 / tumour
    hu = volumes.render_ct(rng, layout, "C")
    assert hu.shape == layout.labels.shape == (48, 96, 96) and hu.dtype == np.int16
    with pytest.raises(ValueError, match="too small"):
        volumes.ct_layout(rng, 0.1, 0.1, size=(32, 32, 16))
    with pytest.raises(ValueError, match="planted_fraction"):
        volumes.ct_layout(rng, 0.9, 0.1)
