"""Loading a visit's images as model inputs: DCE subtraction volumes and 2D mammograms.

Volumes (NIfTI, NRRD, or a DICOM series folder) are read strictly with
:func:`radiograph.radiology.volume.read_image` (the file checked against its own header:
truncation, corrupt compression, NaN/Inf voxels; errors name the file), resampled onto a fixed
voxel grid ``shape`` by linear interpolation over the whole field of view (the grid, not the
physical spacing, is fixed: the model sees every volume at one size) and z-scored with the
mean and standard deviation of all voxels of the volume. A subtraction is
``X_sub = X_post - X_pre`` (seeds/002, Methods) after the same resampling of both volumes,
which must share one grid (size, spacing, origin, direction).

2D images (PNG, TIFF, DICOM; pydicom is imported only for DICOM) are converted to grey (mean
of the colour channels), resampled linearly onto ``shape`` and z-scored the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radiograph.longitudinal.cohort import Visit
from radiograph.radiology.volume import geometry_mismatch, read_image

DEFAULT_VOLUME_SHAPE = (64, 64, 64)
DEFAULT_IMAGE_SHAPE = (128, 128)
DICOM_SUFFIXES = (".dcm", ".dicom")


def load_volume(
    path: str | os.PathLike, shape: tuple[int, int, int] = DEFAULT_VOLUME_SHAPE
) -> np.ndarray:
    """One 3D volume as a model input.

    Args:
        path: NIfTI / NRRD file or DICOM series folder.
        shape: output grid (D, H, W) in voxels (SimpleITK's (z, y, x) order).

    Returns:
        (D, H, W) float32, resampled linearly and z-scored over the volume (module docstring).

    Raises:
        ValueError: ``shape`` is not 3 positive sizes; the file is missing, truncated, corrupt,
            holds NaN/Inf voxels, is not a 3D scalar volume (each message names the file).
    """
    shape = _check_shape(shape, 3)
    return zscore(resample(_read_array(Path(path)), shape))


def make_subtraction(
    pre: str | os.PathLike,
    post: str | os.PathLike,
    shape: tuple[int, int, int] = DEFAULT_VOLUME_SHAPE,
    *,
    normalise: bool = True,
) -> np.ndarray:
    """The DCE subtraction ``post - pre`` (seeds/002, Methods) as a model input.

    Both volumes are resampled onto ``shape`` the same way, then subtracted in float64
    (resampling is linear, so this equals resampling ``post - pre``).

    Args:
        pre: pre-contrast volume.
        post: post-contrast volume on the same grid.
        shape: output grid (D, H, W) in voxels.
        normalise: z-score the difference over the volume, as :func:`load_volume` does for a
            given subtraction (False: the raw difference in the files' intensity units).

    Returns:
        (D, H, W) float32.

    Raises:
        ValueError: a file is unreadable (see :func:`load_volume`); the two volumes are not on
            one grid (the message names both files and how they differ).
    """
    shape = _check_shape(shape, 3)
    pre, post = Path(pre), Path(post)
    pre_image, post_image = _read_scalar_volume(pre), _read_scalar_volume(post)
    problem = geometry_mismatch(pre_image, post_image)
    if problem:
        raise ValueError(
            f"post-contrast volume {post} is not on the grid of the pre-contrast "
            f"volume {pre} ({problem}); register and resample them before "
            "subtracting"
        )
    difference = resample(sitk.GetArrayFromImage(post_image), shape) - resample(
        sitk.GetArrayFromImage(pre_image), shape
    )
    return zscore(difference) if normalise else difference.astype(np.float32)


def visit_volume(
    visit: Visit, shape: tuple[int, int, int] = DEFAULT_VOLUME_SHAPE
) -> np.ndarray | None:
    """The visit's MRI input: its subtraction volume, or the subtraction made from its pre-
    and post-contrast volumes; None when it has neither.

    Returns:
        (D, H, W) float32 z-scored, or None.
    """
    if visit.volume is not None:
        return load_volume(visit.volume, shape)
    if visit.pre_contrast is not None and visit.post_contrast is not None:
        return make_subtraction(visit.pre_contrast, visit.post_contrast, shape)
    return None


def load_image(path: str | os.PathLike, shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE) -> np.ndarray:
    """One 2D image (a mammogram view) as a model input.

    Args:
        path: PNG, TIFF (one page) or DICOM file (one frame).
        shape: output size (H, W) in pixels.

    Returns:
        (H, W) float32 grey, resampled linearly and z-scored over the image.

    Raises:
        ValueError: ``shape`` is not 2 positive sizes; the file is missing or unreadable, has
            several pages/frames, or non-finite pixels (each message names the file).
    """
    shape = _check_shape(shape, 2)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {path}: file does not exist")
    pixels = _read_dicom(path) if _is_dicom(path) else _read_pil(path)
    if pixels.ndim == 3:  # colour: (H, W, C); alpha dropped
        pixels = pixels[..., :3].mean(axis=-1)
    if pixels.ndim != 2:
        raise ValueError(
            f"image {path}: pixel array has shape {pixels.shape}; a 2D grey or "
            "colour image is expected"
        )
    bad = int(np.count_nonzero(~np.isfinite(pixels)))
    if bad:
        raise ValueError(f"image {path}: {bad} NaN or infinite pixel(s)")
    return zscore(resample(pixels, shape))


def resample(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` resampled onto ``shape`` by linear interpolation (float64).

    Pixel centres are mapped as in ``torch.nn.functional.interpolate(..., align_corners=
    False)``: the field of view (voxel edges) is kept (:func:`scipy.ndimage.zoom` with
    ``grid_mode=True``); an axis of unchanged size is copied exactly.
    """
    array = np.asarray(array, dtype=np.float64)
    if array.shape == tuple(shape):
        return array.copy()
    factors = [t / s for t, s in zip(shape, array.shape)]
    return ndimage.zoom(array, factors, order=1, mode="nearest", grid_mode=True)


def zscore(array: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over all elements, float32; a constant array becomes 0."""
    array = np.asarray(array, dtype=np.float64)
    std = array.std()
    return ((array - array.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def _check_shape(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim or min(shape) < 1:
        raise ValueError(f"shape: need {ndim} positive sizes, got {shape}")
    return shape


def _read_scalar_volume(path: Path) -> sitk.Image:
    """Strict read; a 3D one-component image with finite voxels."""
    try:
        image = read_image(path)
    except ValueError as err:
        raise ValueError(f"volume {err}") from err
    size = image.GetSize()
    if image.GetNumberOfComponentsPerPixel() != 1 or sum(s > 1 for s in size) < 3:
        raise ValueError(
            f"volume {path}: size {size} with {image.GetNumberOfComponentsPerPixel()}"
            " component(s); a 3D scalar volume is expected"
        )
    return image


def _read_array(path: Path) -> np.ndarray:
    image = _read_scalar_volume(path)
    values = sitk.GetArrayFromImage(image)
    if image.GetDimension() > 3:
        values = values.reshape([s for s in values.shape if s > 1])
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(f"volume {path}: {bad} NaN or infinite voxel(s)")
    return values


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float64)
    except Exception as err:  # pydicom raises many types for broken files
        raise ValueError(f"image {path}: not a readable DICOM image ({err})") from err
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(
            f"image {path}: DICOM with {frames} frames; one 2D view per file is expected"
        )
    slope = float(getattr(dataset, "RescaleSlope", 1) or 1)
    intercept = float(getattr(dataset, "RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels  # MONOCHROME1: low values are bright
    return pixels


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise ValueError(
                    f"image {path}: {frames} pages/frames; one 2D view per file is expected"
                )
            image.load()
            return np.asarray(image, dtype=np.float64)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"image {path}: not a readable image ({err})") from err
