"""Volume and 2D image loading for the longitudinal model (radiograph.longitudinal.images),
against float64 numpy arithmetic and torch's interpolation as the independent references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from PIL import Image

from radiograph.longitudinal.cohort import Visit
from radiograph.longitudinal.images import load_image, load_volume, make_subtraction, visit_volume


def _write_volume(path: Path, values: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _torch_resize(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    tensor = torch.from_numpy(np.asarray(values, np.float64))[None, None]
    return F.interpolate(tensor, size=shape, mode=mode, align_corners=False)[0, 0].numpy()


def _zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def test_load_volume_resamples_like_torch_and_zscores(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(100, 20, (10, 12, 14)).astype(np.float32)
    path = _write_volume(tmp_path / "v.nii.gz", values)
    out = load_volume(path, (5, 6, 7))
    assert out.shape == (5, 6, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, _zscore(_torch_resize(values, (5, 6, 7))), atol=1e-5)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5
    same = load_volume(path, (10, 12, 14))
    np.testing.assert_allclose(same, _zscore(values.astype(np.float64)), atol=1e-5)


def test_subtraction_is_post_minus_pre_after_the_same_resampling(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pre = rng.integers(0, 1000, (8, 9, 10)).astype(np.int16)
    post = (pre + rng.integers(0, 500, pre.shape)).astype(np.int16)
    pre_path = _write_volume(tmp_path / "pre.nii.gz", pre)
    post_path = _write_volume(tmp_path / "post.nii.gz", post)
    expected = post.astype(np.float64) - pre.astype(np.float64)
    raw = make_subtraction(pre_path, post_path, pre.shape, normalise=False)
    np.testing.assert_array_equal(raw, expected.astype(np.float32))
    resized = make_subtraction(pre_path, post_path, (4, 5, 6), normalise=False)
    np.testing.assert_allclose(resized, _torch_resize(expected, (4, 5, 6)), atol=1e-3)
    np.testing.assert_allclose(
        make_subtraction(pre_path, post_path, (4, 5, 6)),
        _zscore(_torch_resize(expected, (4, 5, 6))),
        atol=1e-5,
    )
    visit = Visit("pre", None, pre_path, post_path, (), line=2)
    np.testing.assert_array_equal(
        visit_volume(visit, (4, 5, 6)), make_subtraction(pre_path, post_path, (4, 5, 6))
    )
    given = Visit("mid", post_path, None, None, (), line=3)
    np.testing.assert_array_equal(visit_volume(given, (4, 5, 6)), load_volume(post_path, (4, 5, 6)))
    assert visit_volume(Visit("post", None, None, None, (tmp_path / "x.png",), 4)) is None


def test_subtraction_refuses_volumes_on_different_grids(tmp_path: Path) -> None:
    values = np.zeros((6, 6, 6), np.int16)
    pre = _write_volume(tmp_path / "pre.nii.gz", values)
    post = _write_volume(tmp_path / "post.nii.gz", values, spacing=(1.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="spacing") as err:
        make_subtraction(pre, post)
    assert str(pre) in str(err.value) and str(post) in str(err.value)


def test_strict_reading_names_the_file(tmp_path: Path) -> None:
    values = np.ones((6, 6, 6), np.float32)
    values[2, 3, 4] = np.nan
    nan_path = _write_volume(tmp_path / "nan.nii", values)
    with pytest.raises(ValueError, match="1 NaN") as err:
        load_volume(nan_path)
    assert "nan.nii" in str(err.value)
    whole = _write_volume(tmp_path / "cut.nii", np.ones((6, 6, 6), np.float32))
    whole.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as err:
        load_volume(whole)
    assert "cut.nii" in str(err.value)
    flat = _write_volume(tmp_path / "flat.nii", np.ones((1, 6, 6), np.float32))
    with pytest.raises(ValueError, match="3D scalar volume is expected"):
        load_volume(flat)
    with pytest.raises(ValueError, match="shape: need 3 positive sizes"):
        load_volume(whole, (4, 4))


def test_load_image_png_tiff_grey_and_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    grey16 = rng.integers(0, 65535, (20, 16)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png", (10, 8))
    np.testing.assert_allclose(out, _zscore(_torch_resize(grey16, (10, 8))), atol=1e-5)
    rgb = rng.integers(0, 255, (20, 16, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.tif")
    np.testing.assert_allclose(
        load_image(tmp_path / "c.tif", (20, 16)),
        _zscore(rgb.astype(np.float64).mean(axis=-1)),
        atol=1e-5,
    )
    pages = [Image.fromarray(rgb[..., 0]), Image.fromarray(rgb[..., 1])]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(ValueError, match="two.tif: 2 pages"):
        load_image(tmp_path / "two.tif")
    with pytest.raises(ValueError, match="missing.png: file does not exist"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_load_image_dicom(tmp_path: Path, photometric: str) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.random.default_rng(3).integers(0, 4000, (12, 10)).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, -10
    ds.PixelData = pixels.tobytes()
    path = tmp_path / "view"  # no suffix: recognised by the DICM preamble
    ds.save_as(path, enforce_file_format=True)
    rescaled = pixels.astype(np.float64) * 2 - 10
    expected = rescaled.max() - rescaled if photometric == "MONOCHROME1" else rescaled
    np.testing.assert_allclose(load_image(path, (12, 10)), _zscore(expected), atol=1e-5)
