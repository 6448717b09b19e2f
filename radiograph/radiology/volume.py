"""Reading a subject's volume and tumour mask, checking them, resampling and normalising.

A subject has one or more co-registered channels (CT: one; MRI: e.g. T2, CE-T1, DWI, ADC),
each a NIfTI / NRRD file or a folder holding one DICOM series, and one tumour mask. After
:func:`load_volume` every array is in SimpleITK's numpy order ``(z, y, x)`` on an isotropic
grid that keeps the first channel's origin and direction, so a continuous index maps to a
physical point (mm) exactly as ``sitk.Image.TransformContinuousIndexToPhysicalPoint`` does.

Intensity handling per modality:

* CT: ``intensity`` is in Hounsfield units (what pyradiomics' ``binWidth: 25`` assumes);
  ``normalised`` is clipped to a HU window and scaled to [0, 1] (what SegVol's ViT saw).
* MR: both are z-scored per channel with the mean and standard deviation inside the mask
  (MR intensities have no absolute unit).

Reading is strict: a NIfTI or NRRD file is checked against its own header before SimpleITK
decodes it (complete decompression with CRC and length, the header's voxel count, no NaN or
Inf voxels; :mod:`radiograph.radiology.file_checks`), and a DICOM folder must hold one series
whose files are all readable and whose slices are evenly spaced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radiograph.radiology.config import DEFAULT_HU_WINDOW
from radiograph.radiology.file_checks import verify_image_file

#: Relative tolerance when comparing spacing, origin and direction of two images.
GEOMETRY_RTOL = 1e-4
#: Absolute tolerance (mm for origin, unitless for direction) for the same comparison.
GEOMETRY_ATOL = 1e-3
MODALITIES = ("CT", "MR")
#: Largest deviation of a DICOM slice gap from the median gap: relative, plus absolute (mm).
SLICE_GAP_RTOL = 0.01
SLICE_GAP_ATOL = 1e-3
#: DICOM tag of the Image Position (Patient): the slice's first voxel in mm.
IMAGE_POSITION_TAG = "0020|0032"


class VolumeError(ValueError):
    """A volume or mask cannot be used; the message names the subject and the file."""


@dataclass
class Volume:
    """One subject's preprocessed channels and mask on an isotropic grid.

    Attributes:
        subject_id: the manifest's subject id.
        modality: "CT" or "MR".
        intensity: float32 (C, D, H, W): HU for CT, in-mask z-scores for MR (radiomics input).
        normalised: float32 (C, D, H, W): CT window scaled to [0, 1]; MR in-mask z-scores
            (encoder and habitat input).
        mask: bool (D, H, W) tumour mask.
        spacing: (3,) voxel spacing in mm, (x, y, z) order as SimpleITK.
        origin: (3,) physical position (mm) of voxel (0, 0, 0)'s centre, (x, y, z).
        direction: (3, 3) direction cosine matrix, columns are the index axes (x, y, z).
        sources: the channel paths, in channel order.
        mask_source: the mask path.
    """

    subject_id: str
    modality: str
    intensity: np.ndarray
    normalised: np.ndarray
    mask: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    sources: tuple[Path, ...]
    mask_source: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        """(D, H, W) = (z, y, x) voxel counts."""
        return tuple(int(s) for s in self.mask.shape)  # type: ignore[return-value]

    @property
    def num_channels(self) -> int:
        return int(self.intensity.shape[0])

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (N, 3), (z, y, x) -> physical points (N, 3) in mm, (x, y, z).

        Same mapping as ``TransformContinuousIndexToPhysicalPoint``:
        ``origin + direction @ (spacing * index_xyz)``.
        """
        index_xyz = np.asarray(index_zyx, dtype=np.float64)[:, ::-1]
        return self.origin + (index_xyz * self.spacing) @ self.direction.T

    def reference_image(self) -> sitk.Image:
        """An empty image with this volume's grid (size, spacing, origin, direction)."""
        image = sitk.Image([int(s) for s in self.shape[::-1]], sitk.sitkUInt8)
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        image.SetDirection([float(d) for d in self.direction.ravel()])
        return image


def read_image(path: str | os.PathLike, *, subject_id: str = "") -> sitk.Image:
    """Read a NIfTI / NRRD file, or a folder holding exactly one DICOM series, strictly.

    Raises:
        VolumeError: the path does not exist or cannot be read; a NIfTI / NRRD file is
            truncated, has a corrupt compressed stream, holds fewer voxels than its header
            says, or has NaN / Inf voxels (see
            :func:`~radiograph.radiology.file_checks.verify_image_file`); a DICOM folder holds
            no series or several (the message lists each series' UID, description and file
            count), files that are not part of the series (unreadable or truncated), or
            unevenly spaced slices (a slice missing).
    """
    path = Path(path)
    where = f"subject {subject_id!r}: {path}" if subject_id else str(path)
    if not path.exists():
        raise VolumeError(f"{where}: file or folder does not exist")
    if path.is_dir():
        return _read_dicom_series(path, where)
    try:
        verify_image_file(path)
    except (ValueError, OSError) as err:
        raise VolumeError(f"{where}: {err}") from err
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise VolumeError(f"{where}: not a readable image ({_first_line(err)})") from err


def load_volume(
    subject_id: str,
    volume_paths: Sequence[str | os.PathLike],
    mask_path: str | os.PathLike,
    *,
    modality: str = "CT",
    spacing_mm: float = 1.0,
    resample_mask: bool = False,
    mask_label: int | None = None,
    hu_window: tuple[float, float] = DEFAULT_HU_WINDOW,
) -> Volume:
    """Read, check, resample to isotropic spacing and normalise one subject's volume.

    Args:
        subject_id: named in every error message.
        volume_paths: one path per co-registered channel (file or DICOM series folder).
        mask_path: tumour mask, on the first channel's grid.
        modality: "CT" or "MR" (chooses the intensity handling, see the module docstring).
        spacing_mm: isotropic output spacing in mm.
        resample_mask: resample a mask whose grid differs from the image's onto the image
            grid (nearest neighbour) instead of raising.
        mask_label: the mask value marking the tumour; None requires a 0/1 mask.
        hu_window: (low, high) HU window for CT's ``normalised`` array.

    Raises:
        VolumeError: missing or unreadable file; channels on different grids; mask grid
            differs from the image's (without ``resample_mask``); mask values other than 0/1
            (without ``mask_label``) or no voxel with ``mask_label``; NaN or Inf voxels (in a
            NIfTI or NRRD file found by :func:`read_image` before decoding, as ITK's NIfTI
            reader would turn them into 0; in other formats found in the decoded array); a
            truncated or corrupt file (:func:`read_image`); an empty mask. Each message names
            the subject and the file.
    """
    modality = modality.upper()
    if modality not in MODALITIES:
        raise VolumeError(f"subject {subject_id!r}: modality {modality!r} is not one of CT, MR")
    if not volume_paths:
        raise VolumeError(f"subject {subject_id!r}: no volume paths given")
    if not spacing_mm > 0:
        raise VolumeError(f"subject {subject_id!r}: spacing must be > 0 mm, got {spacing_mm}")
    paths = tuple(Path(p) for p in volume_paths)
    mask_path = Path(mask_path)
    channels = [_read_scalar(p, subject_id) for p in paths]
    for path, image in zip(paths[1:], channels[1:]):
        problem = geometry_mismatch(channels[0], image)
        if problem:
            raise VolumeError(
                f"subject {subject_id!r}: channel {path} is not on the grid of "
                f"channel {paths[0]} ({problem}); co-register and resample the "
                "channels first"
            )
    for path, image in zip(paths, channels):
        values = sitk.GetArrayViewFromImage(image)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise VolumeError(
                f"subject {subject_id!r}: {path}: {bad} NaN or infinite voxel(s); "
                "fill or mask them before extraction"
            )

    mask = read_image(mask_path, subject_id=subject_id)
    problem = geometry_mismatch(channels[0], mask)
    if problem:
        if not resample_mask:
            raise VolumeError(
                f"subject {subject_id!r}: mask {mask_path} is not on the grid of "
                f"{paths[0]} ({problem}); pass --resample-mask to resample it "
                "(nearest neighbour) onto the image grid"
            )
        mask = sitk.Resample(mask, channels[0], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    binary = _binary_mask(sitk.GetArrayFromImage(mask), mask_label, subject_id, mask_path)

    reference = _isotropic_reference(channels[0], spacing_mm)
    intensity = np.stack(
        [sitk.GetArrayFromImage(_resample(c, reference, sitk.sitkLinear)) for c in channels]
    ).astype(np.float32)
    mask_image = sitk.GetImageFromArray(binary.astype(np.uint8))
    mask_image.CopyInformation(channels[0])
    binary = sitk.GetArrayFromImage(_resample(mask_image, reference, sitk.sitkNearestNeighbor)) > 0
    if not binary.any():
        raise VolumeError(
            f"subject {subject_id!r}: mask {mask_path} is empty after resampling "
            f"to {spacing_mm} mm (the tumour is smaller than one voxel)"
        )

    if modality == "CT":
        low, high = hu_window
        if not high > low:
            raise VolumeError(f"subject {subject_id!r}: HU window {hu_window} must be (low, high)")
        normalised = (np.clip(intensity, low, high) - low) / (high - low)
    else:
        intensity = zscore_in_mask(intensity, binary)
        normalised = intensity
    return Volume(
        subject_id=subject_id,
        modality=modality,
        intensity=intensity,
        normalised=normalised.astype(np.float32),
        mask=binary,
        spacing=np.array(reference.GetSpacing(), dtype=np.float64),
        origin=np.array(reference.GetOrigin(), dtype=np.float64),
        direction=np.array(reference.GetDirection(), dtype=np.float64).reshape(3, 3),
        sources=paths,
        mask_source=mask_path,
    )


def geometry_mismatch(image: sitk.Image, other: sitk.Image) -> str:
    """Describe how ``other``'s grid differs from ``image``'s ("" when they match).

    Size must be equal; spacing, origin and direction equal within
    ``GEOMETRY_RTOL`` / ``GEOMETRY_ATOL``.
    """
    if image.GetDimension() != other.GetDimension():
        return f"dimension {other.GetDimension()} vs {image.GetDimension()}"
    if image.GetSize() != other.GetSize():
        return f"size {other.GetSize()} vs {image.GetSize()}"
    for name in ("Spacing", "Origin", "Direction"):
        a = np.array(getattr(image, f"Get{name}")())
        b = np.array(getattr(other, f"Get{name}")())
        if not np.allclose(a, b, rtol=GEOMETRY_RTOL, atol=GEOMETRY_ATOL):
            return f"{name.lower()} {_plain(b)} vs {_plain(a)}"
    return ""


def _plain(values: np.ndarray) -> tuple[float, ...]:
    """Values rounded to 4 decimals as Python floats (their repr has no ``np.float64(...)``)."""
    return tuple(np.round(values, 4).tolist())


def zscore_in_mask(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score each channel of (C, D, H, W) ``values`` with its mean and std inside ``mask``.

    A channel that is constant inside the mask becomes 0 there (std taken as 1).
    """
    inside = values[:, mask].astype(np.float64)
    mean = inside.mean(axis=1)
    std = inside.std(axis=1)
    std[std == 0] = 1.0
    return ((values - mean[:, None, None, None]) / std[:, None, None, None]).astype(np.float32)


def _read_scalar(path: Path, subject_id: str) -> sitk.Image:
    image = read_image(path, subject_id=subject_id)
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise VolumeError(
            f"subject {subject_id!r}: {path}: expected a 3D scalar volume, got "
            f"{image.GetDimension()}D with {image.GetNumberOfComponentsPerPixel()} "
            "component(s) per voxel; give one 3D file per channel"
        )
    return sitk.Cast(image, sitk.sitkFloat32)


def _binary_mask(values: np.ndarray, label: int | None, subject_id: str, path: Path) -> np.ndarray:
    present = np.unique(values)
    if label is None:
        extra = [v for v in present.tolist() if v not in (0, 1)]
        if extra:
            shown = ", ".join(f"{v:g}" for v in extra[:8])
            raise VolumeError(
                f"subject {subject_id!r}: mask {path} has labels other than 0/1 "
                f"({shown}); choose the tumour label with --mask-label"
            )
        label = 1
    binary = values == label
    if not binary.any():
        found = ", ".join(f"{v:g}" for v in present.tolist()[:8])
        raise VolumeError(
            f"subject {subject_id!r}: mask {path} is empty (no voxel with label "
            f"{label}; values found: {found})"
        )
    return binary


def _isotropic_reference(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """The grid with ``image``'s origin and direction, isotropic spacing, same physical extent."""
    size = [
        max(1, int(round(n * s / spacing_mm))) for n, s in zip(image.GetSize(), image.GetSpacing())
    ]
    reference = sitk.Image(size, sitk.sitkUInt8)
    reference.SetOrigin(image.GetOrigin())
    reference.SetDirection(image.GetDirection())
    reference.SetSpacing([float(spacing_mm)] * 3)
    return reference


def _resample(image: sitk.Image, reference: sitk.Image, interpolator: int) -> sitk.Image:
    if geometry_mismatch(reference, image) == "":
        return image
    fill = float(np.min(sitk.GetArrayViewFromImage(image)))
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, fill, image.GetPixelID())


def _read_dicom_series(folder: Path, where: str) -> sitk.Image:
    try:
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as err:
        raise VolumeError(
            f"{where}: cannot scan the folder for DICOM ({_first_line(err)})"
        ) from err
    if not series:
        raise VolumeError(f"{where}: folder holds no DICOM series")
    if len(series) > 1:
        listing = "; ".join(_describe_series(folder, uid) for uid in series)
        raise VolumeError(
            f"{where}: folder holds {len(series)} DICOM series ({listing}); put the "
            "series to use in a folder of its own"
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    _check_series_files(folder, files, series[0], where)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise VolumeError(
            f"{where}: cannot read DICOM series {series[0]} ({_first_line(err)})"
        ) from err
    _check_slice_gaps(reader, files, image, where)
    return image


def _check_series_files(folder: Path, files: Sequence[str], uid: str, where: str) -> None:
    """Every file of the folder (apart from hidden ones and a DICOMDIR) belongs to the series:
    GDCM leaves out a file it cannot parse (e.g. truncated), which would drop a slice."""
    members = {Path(f).name for f in files}
    others = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name.upper() != "DICOMDIR"
        and p.name not in members
    )
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise VolumeError(
            f"{where}: {len(others)} file(s) are not part of DICOM series {uid} "
            f"({shown}): unreadable or truncated DICOM, or not DICOM; re-copy "
            "them, or move files that are not slices out of the folder"
        )


def _check_slice_gaps(
    reader: sitk.ImageSeriesReader, files: Sequence[str], image: sitk.Image, where: str
) -> None:
    """Slices evenly spaced along the slice normal (ITK only warns about a missing slice and
    then stretches the volume); skipped when a file has no Image Position (Patient)."""
    if len(files) < 3 or not all(
        reader.HasMetaDataKey(i, IMAGE_POSITION_TAG) for i in range(len(files))
    ):
        return
    positions = np.array(
        [reader.GetMetaData(i, IMAGE_POSITION_TAG).split("\\") for i in range(len(files))],
        dtype=np.float64,
    )
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    gaps = np.diff(positions @ normal)
    median = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - median)))
    if abs(gaps[worst] - median) > SLICE_GAP_RTOL * abs(median) + SLICE_GAP_ATOL:
        raise VolumeError(
            f"{where}: slices are not evenly spaced: {float(gaps[worst]):.4g} mm "
            f"between {Path(files[worst]).name} and {Path(files[worst + 1]).name}, "
            f"{median:.4g} mm between most slices (a slice missing or duplicated); "
            "complete the series"
        )


def _describe_series(folder: Path, uid: str) -> str:
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    tag = "0008|103e"  # Series Description
    description = reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
    return f"{uid} '{description}' ({len(files)} files)"


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__
