"""DICOM series loading on the real 5-slice CT series that pydicom ships."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from radiograph.radiology.volume import VolumeError, load_volume, read_image

CT5N = get_testdata_file("dicomdirtests/98892001/CT5N", read=False)
CT2N = get_testdata_file("dicomdirtests/98892001/CT2N", read=False)
pytestmark = pytest.mark.skipif(CT5N is None, reason="pydicom's test files lack CT5N")


def pydicom_reference(folder: str) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(HU (z, y, x) sorted by slice position, (dx, dy, dz) spacing, origin) read with pydicom."""
    slices = [pydicom.dcmread(p) for p in Path(folder).iterdir()]
    slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    hu = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    )
    dz = float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2])
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    return hu, (dx, dy, dz), np.array([float(v) for v in slices[0].ImagePositionPatient])


def test_dicom_series_folder_reads_like_pydicom():
    image = read_image(CT5N, subject_id="CT5N")
    hu, spacing, origin = pydicom_reference(CT5N)
    assert image.GetSize() == (16, 16, 5)
    np.testing.assert_allclose(image.GetSpacing(), spacing, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), origin, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)


def test_dicom_series_loads_with_a_mask(tmp_path):
    image = read_image(CT5N)
    mask = np.zeros((5, 16, 16), np.uint8)
    mask[1:4, 4:12, 4:12] = 1
    mask_image = sitk.GetImageFromArray(mask)
    mask_image.CopyInformation(image)
    sitk.WriteImage(mask_image, str(tmp_path / "mask.nii.gz"))

    vol = load_volume("CT5N", [CT5N], tmp_path / "mask.nii.gz", modality="CT", spacing_mm=1.0)

    # 16 x 0.488 mm = 7.8 mm -> 8 voxels; 5 x 2.5 mm = 12.5 mm -> 12 voxels (rounded)
    assert vol.shape == (12, 8, 8)
    hu, _, _ = pydicom_reference(CT5N)
    assert hu.min() <= vol.intensity.min() and vol.intensity.max() <= hu.max()
    # the tumour's physical centre survives resampling (to within a voxel)
    before = np.mean(
        [
            image.TransformIndexToPhysicalPoint([int(x), int(y), int(z)])
            for z, y, x in np.argwhere(mask)
        ],
        axis=0,
    )
    after = vol.index_to_physical(np.argwhere(vol.mask).astype(float)).mean(axis=0)
    np.testing.assert_allclose(after, before, atol=1.0)


def test_folder_with_two_series_is_an_error_naming_them(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for source in (CT5N, CT2N):
        for path in Path(source).iterdir():
            shutil.copy(path, folder / f"{Path(source).name}_{path.name}")
    uids = {pydicom.dcmread(next(Path(s).iterdir())).SeriesInstanceUID for s in (CT5N, CT2N)}
    with pytest.raises(VolumeError) as err:
        read_image(folder, subject_id="P9")
    message = str(err.value)
    assert "P9" in message and str(folder) in message and "2 DICOM series" in message
    assert all(uid in message for uid in uids)
    assert "Scout" in message


def test_folder_without_dicom_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(VolumeError, match="no DICOM series"):
        read_image(tmp_path, subject_id="P1")
