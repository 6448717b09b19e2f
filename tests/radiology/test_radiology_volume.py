"""Volume loading: geometry checks, isotropic resampling, mask handling, intensity handling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiology_synth import write_image

from radiograph.radiology.volume import VolumeError, load_volume

ROTATION_Z30 = np.array(
    [
        [np.cos(np.pi / 6), -np.sin(np.pi / 6), 0.0],
        [np.sin(np.pi / 6), np.cos(np.pi / 6), 0.0],
        [0.0, 0.0, 1.0],
    ]
)
GEOMETRY = dict(spacing=(0.5, 1.0, 2.0), origin=(10.0, -5.0, 3.0), direction=ROTATION_Z30)


def linear_field(shape_zyx, spacing, origin, direction, coef=(2.0, -3.0, 5.0), offset=7.0):
    """Intensity = coef . p + offset at each voxel's physical point p (float64)."""
    idx = np.indices(shape_zyx, dtype=np.float64).reshape(3, -1).T[:, ::-1]  # (x, y, z)
    points = np.asarray(origin) + (idx * np.asarray(spacing)) @ np.asarray(direction).T
    return (points @ np.asarray(coef) + offset).reshape(shape_zyx)


def box_mask(shape, lo, hi):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return mask


def physical_centroid(image: sitk.Image) -> np.ndarray:
    array = sitk.GetArrayFromImage(image)
    idx = np.argwhere(array > 0)[:, ::-1].astype(float)
    return np.mean([image.TransformContinuousIndexToPhysicalPoint(i.tolist()) for i in idx], axis=0)


def test_resampling_to_isotropic_keeps_physical_positions(tmp_path):
    shape = (5, 10, 20)  # z, y, x: physical extent 10 x 10 x 10 mm
    field = linear_field(shape, **GEOMETRY)
    img = write_image(tmp_path / "ct.nii.gz", field.astype(np.float32), **GEOMETRY)
    mask_zyx = box_mask(shape, (1, 2, 4), (4, 8, 16))
    msk = write_image(tmp_path / "mask.nii.gz", mask_zyx, **GEOMETRY)

    vol = load_volume("S1", [img], msk, modality="CT", spacing_mm=1.0)

    assert vol.shape == (10, 10, 10)
    np.testing.assert_allclose(vol.spacing, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(vol.origin, GEOMETRY["origin"])
    np.testing.assert_allclose(vol.direction, ROTATION_Z30, atol=1e-6)
    # linear interpolation reproduces a linear field exactly wherever it does not extrapolate
    expected = linear_field(vol.shape, vol.spacing, vol.origin, vol.direction)
    interior = (slice(0, 9), slice(0, 10), slice(0, 10))  # z < 9: inside the last slice centre
    np.testing.assert_allclose(vol.intensity[0][interior], expected[interior], atol=1e-3)
    # the mask stays where it was in physical space (nearest neighbour, to within a voxel)
    before = physical_centroid(sitk.ReadImage(str(msk)))
    idx = np.argwhere(vol.mask).astype(float)
    after = vol.index_to_physical(idx).mean(axis=0)
    np.testing.assert_allclose(after, before, atol=0.5)


def test_index_to_physical_matches_simpleitk(tmp_path):
    shape = (5, 10, 20)
    img = write_image(tmp_path / "ct.nii.gz", np.zeros(shape, np.float32), **GEOMETRY)
    msk = write_image(tmp_path / "mask.nii.gz", box_mask(shape, (1, 1, 1), (3, 3, 3)), **GEOMETRY)
    vol = load_volume("S1", [img], msk, spacing_mm=0.7)
    ref = vol.reference_image()
    rng = np.random.default_rng(0)
    idx_zyx = rng.uniform(0, 9, size=(20, 3))
    expected = [ref.TransformContinuousIndexToPhysicalPoint(i[::-1].tolist()) for i in idx_zyx]
    np.testing.assert_allclose(vol.index_to_physical(idx_zyx), expected, atol=1e-9)


@pytest.mark.parametrize(
    "change",
    [
        dict(spacing=(0.5, 1.0, 2.5)),
        dict(origin=(11.0, -5.0, 3.0)),
        dict(direction=np.eye(3)),
    ],
)
def test_mask_on_another_grid_is_an_error_unless_resampled(tmp_path, change):
    shape = (5, 10, 20)
    img = write_image(tmp_path / "ct.nii.gz", np.zeros(shape, np.float32), **GEOMETRY)
    mask_geometry = {**GEOMETRY, **change}
    msk = write_image(
        tmp_path / "tumour.nii.gz", box_mask(shape, (1, 2, 4), (4, 8, 16)), **mask_geometry
    )
    with pytest.raises(VolumeError) as err:
        load_volume("S7", [img], msk)
    message = str(err.value)
    assert "S7" in message and "tumour.nii.gz" in message and "--resample-mask" in message
    vol = load_volume("S7", [img], msk, resample_mask=True)
    # the resampled mask is where the mask file puts it in physical space
    expected = physical_centroid(sitk.ReadImage(str(msk)))
    got = vol.index_to_physical(np.argwhere(vol.mask).astype(float)).mean(axis=0)
    np.testing.assert_allclose(got, expected, atol=1.0)


def test_mask_size_mismatch_is_an_error(tmp_path):
    img = write_image(tmp_path / "ct.nii.gz", np.zeros((6, 6, 6), np.float32))
    msk = write_image(tmp_path / "m.nii.gz", box_mask((6, 6, 7), (1, 1, 1), (4, 4, 4)))
    with pytest.raises(VolumeError, match=r"S1.*m\.nii\.gz.*size"):
        load_volume("S1", [img], msk)


def test_channels_on_different_grids_are_an_error(tmp_path):
    a = write_image(tmp_path / "t2.nii.gz", np.zeros((6, 6, 6), np.float32))
    b = write_image(tmp_path / "adc.nii.gz", np.zeros((6, 6, 6), np.float32), spacing=(1, 1, 2))
    msk = write_image(tmp_path / "m.nii.gz", box_mask((6, 6, 6), (1, 1, 1), (4, 4, 4)))
    with pytest.raises(VolumeError, match=r"S1.*adc\.nii\.gz.*spacing"):
        load_volume("S1", [a, b], msk, modality="MR")


def test_empty_mask_is_an_error(tmp_path):
    img = write_image(tmp_path / "ct.nii.gz", np.zeros((6, 6, 6), np.float32))
    msk = write_image(tmp_path / "empty.nii.gz", np.zeros((6, 6, 6), np.uint8))
    with pytest.raises(VolumeError, match=r"S2.*empty\.nii\.gz.*empty"):
        load_volume("S2", [img], msk)


def test_multi_label_mask_needs_a_label(tmp_path):
    img = write_image(tmp_path / "ct.nii.gz", np.zeros((8, 8, 8), np.float32))
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[1:3, 1:3, 1:3] = 1  # 8 voxels: kidney
    labels[4:7, 4:7, 4:7] = 2  # 27 voxels: tumour
    msk = write_image(tmp_path / "labels.nii.gz", labels)
    with pytest.raises(VolumeError, match=r"S3.*labels\.nii\.gz.*other than 0/1.*--mask-label"):
        load_volume("S3", [img], msk)
    vol = load_volume("S3", [img], msk, mask_label=2)
    assert vol.mask.sum() == 27 and vol.mask[4:7, 4:7, 4:7].all()
    with pytest.raises(VolumeError, match=r"S3.*no voxel with label 5"):
        load_volume("S3", [img], msk, mask_label=5)


def test_nan_voxels_are_an_error(tmp_path):
    """NRRD keeps NaN; SimpleITK's NIfTI reader itself turns NaN into 0, so NIfTI can't be used."""
    array = np.zeros((6, 6, 6), np.float32)
    array[2, 3, 4] = np.nan
    img = write_image(tmp_path / "nan_ct.nrrd", array)
    msk = write_image(tmp_path / "m.nii.gz", box_mask((6, 6, 6), (1, 1, 1), (4, 4, 4)))
    with pytest.raises(VolumeError, match=r"S4.*nan_ct\.nrrd.*1 NaN"):
        load_volume("S4", [img], msk)


def test_missing_file_is_an_error(tmp_path):
    msk = write_image(tmp_path / "m.nii.gz", box_mask((6, 6, 6), (1, 1, 1), (4, 4, 4)))
    with pytest.raises(VolumeError, match=r"S5.*nowhere\.nii\.gz.*does not exist"):
        load_volume("S5", [tmp_path / "nowhere.nii.gz"], msk)


def test_ct_window_and_mr_zscore(tmp_path):
    rng = np.random.default_rng(1)
    shape = (8, 8, 8)
    hu = rng.uniform(-1000, 1000, size=shape).astype(np.float32)
    mask = box_mask(shape, (2, 2, 2), (6, 6, 6))
    img = write_image(tmp_path / "ct.nii.gz", hu)
    msk = write_image(tmp_path / "m.nii.gz", mask)
    ct = load_volume("S1", [img], msk, modality="CT", hu_window=(-100.0, 300.0))
    np.testing.assert_allclose(ct.intensity[0], hu)
    np.testing.assert_allclose(ct.normalised[0], (np.clip(hu, -100, 300) + 100) / 400, atol=1e-6)

    t2 = write_image(tmp_path / "t2.nii.gz", (rng.normal(500, 80, shape)).astype(np.float32))
    adc = write_image(tmp_path / "adc.nii.gz", (rng.normal(1.2, 0.3, shape)).astype(np.float32))
    mr = load_volume("S1", [t2, adc], msk, modality="MR")
    assert mr.intensity.shape == (2, *shape)
    inside = mr.intensity[:, mask.astype(bool)].astype(np.float64)
    np.testing.assert_allclose(inside.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(inside.std(axis=1), 1.0, atol=1e-5)
