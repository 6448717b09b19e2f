"""Whole-slide images through OpenSlide, with a resolution that is never guessed.

OpenSlide reads Aperio (.svs), Hamamatsu (.ndpi), MIRAX (.mrxs), Philips/Ventana/generic
tiled TIFF and more. The level-0 resolution (microns per pixel, mpp) comes, in this order,
from an explicit override (``--mpp`` or the manifest's ``mpp`` column), the slide's
``openslide.mpp-x`` / ``openslide.mpp-y`` properties, or its objective power
(``openslide.objective-power``, converted with the usual 10 / power um/px: 20x = 0.5, 40x =
0.25). A slide with none of these is refused with an error that says how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
from PIL import Image

from radiograph.io.atomic import atomic_path

#: Largest relative difference between mpp-x and mpp-y accepted as square pixels.
ANISOTROPY_TOLERANCE = 0.05


class SlideError(ValueError):
    """A slide cannot be used; the message names the slide and the fix (one line)."""


@dataclass(frozen=True)
class Resolution:
    """Level-0 microns per pixel and where the value came from.

    Attributes:
        mpp: level-0 microns per pixel.
        source: "override", "metadata" (openslide.mpp-x/y) or "objective-power".
    """

    mpp: float
    source: str


class Slide:
    """An open whole-slide image with a known level-0 resolution.

    Attributes:
        path: the slide file.
        resolution: level-0 microns per pixel and its source.
        dimensions: level-0 (width, height) in pixels.
        level_dimensions: (width, height) per pyramid level.
        level_downsamples: level-0 pixels per level pixel, per level.
    """

    def __init__(self, path: str | os.PathLike, *, mpp: float | None = None):
        """Open ``path``; ``mpp`` overrides the slide's own resolution metadata.

        Raises:
            SlideError: the file does not exist, is not a readable slide, or has no
                resolution metadata and no override.
        """
        self.path = Path(path)
        if not self.path.exists():
            raise SlideError(
                f"slide {self.path}: file does not exist (fix the path in the "
                "manifest's slide_paths column)"
            )
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError) as err:
            raise SlideError(
                f"slide {self.path}: not a readable slide ({_one_line(err)}); the "
                "file is corrupt, truncated or in a format OpenSlide does not "
                "read: re-export or re-copy it"
            ) from err
        self.resolution = slide_resolution(self._osr.properties, self.path, override=mpp)
        self.dimensions: tuple[int, int] = self._osr.dimensions
        self.level_dimensions: tuple[tuple[int, int], ...] = self._osr.level_dimensions
        self.level_downsamples: tuple[float, ...] = tuple(
            float(d) for d in self._osr.level_downsamples
        )

    @property
    def mpp(self) -> float:
        """Level-0 microns per pixel."""
        return self.resolution.mpp

    def level_mpp(self, level: int) -> float:
        """Microns per pixel of pyramid ``level``."""
        return self.mpp * self.level_downsamples[level]

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """Read an RGB region.

        Args:
            x, y: top-left corner in level-0 pixels.
            level: pyramid level.
            width, height: size in pixels of ``level``.

        Returns:
            uint8 (height, width, 3); transparent pixels (outside the scanned area) are white.

        Raises:
            SlideError: the slide's data cannot be decoded (truncated or corrupt file).
        """
        try:
            rgba = self._osr.read_region((int(x), int(y)), int(level), (int(width), int(height)))
        except openslide.OpenSlideError as err:
            raise SlideError(
                f"slide {self.path}: cannot read the region at level-0 ({x}, {y}), "
                f"level {level} ({_one_line(err)}); the file is truncated or corrupt: "
                "re-export or re-copy it"
            ) from err
        return rgba_to_rgb(np.asarray(rgba))

    def read_level(self, level: int) -> np.ndarray:
        """The whole of pyramid ``level`` as uint8 (H, W, 3) RGB."""
        width, height = self.level_dimensions[level]
        return self.read_region(0, 0, level, width, height)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (level 0 if none)."""
        fits = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * (1 + 1e-6)]
        return max(fits, key=lambda i: self.level_downsamples[i]) if fits else 0

    def close(self) -> None:
        self._osr.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Slide({str(self.path)!r}, {self.dimensions[0]}x{self.dimensions[1]} px, "
            f"{self.mpp:g} um/px from {self.resolution.source}, "
            f"{len(self.level_dimensions)} levels)"
        )


def slide_resolution(
    properties: Mapping[str, str], path: Path, *, override: float | None = None
) -> Resolution:
    """Level-0 microns per pixel of a slide from its OpenSlide properties.

    Args:
        properties: the slide's OpenSlide properties.
        path: the slide (for error messages).
        override: explicit mpp that wins over the metadata.

    Raises:
        SlideError: no override, no mpp-x/mpp-y and no objective power; or a non-positive
            value; or non-square pixels (mpp-x and mpp-y differ by more than 5%).
    """
    if override is not None:
        if not override > 0:
            raise SlideError(f"slide {path}: the mpp override must be > 0; got {override}")
        return Resolution(float(override), "override")
    mpp_x = _positive_float(properties.get(openslide.PROPERTY_NAME_MPP_X))
    mpp_y = _positive_float(properties.get(openslide.PROPERTY_NAME_MPP_Y))
    if mpp_x and mpp_y:
        if abs(mpp_x - mpp_y) > ANISOTROPY_TOLERANCE * max(mpp_x, mpp_y):
            raise SlideError(
                f"slide {path}: non-square pixels (mpp-x {mpp_x}, mpp-y {mpp_y}) are "
                "not supported; resample the slide or pass --mpp to override"
            )
        return Resolution(0.5 * (mpp_x + mpp_y), "metadata")
    if mpp_x or mpp_y:
        return Resolution(float(mpp_x or mpp_y), "metadata")
    power = _positive_float(properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER))
    if power:
        return Resolution(10.0 / power, "objective-power")
    raise SlideError(
        f"slide {path}: no resolution metadata (neither openslide.mpp-x/mpp-y nor "
        "an objective power); pass --mpp UM_PER_PIXEL or fill the manifest's mpp "
        "column for this slide"
    )


def rgba_to_rgb(rgba: np.ndarray, background: int = 255) -> np.ndarray:
    """Composite an RGBA (H, W, 4) uint8 image (OpenSlide's, not premultiplied) onto a
    uniform ``background`` grey level; returns uint8 (H, W, 3)."""
    if rgba.shape[-1] == 3 or bool((rgba[..., 3] == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    return ((rgb * alpha + background * (255 - alpha) + 127) // 255).astype(np.uint8)


def write_pyramidal_tiff(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    mpp: float | None,
    downsamples: tuple[int, ...] = (1, 4, 16),
    tile: int = 256,
    compression: str | None = "zlib",
) -> Path:
    """Write an RGB image as a tiled pyramidal TIFF that OpenSlide reads as an Aperio slide.

    Used for synthetic cohorts, tests and benchmarks. Levels are made by block averaging.

    Args:
        path: destination (written atomically); ``.svs`` or ``.tiff``.
        rgb: uint8 (H, W, 3) level-0 image.
        mpp: level-0 microns per pixel written as ``MPP`` (and ``AppMag`` = 10 / mpp); None
            writes no resolution at all (a slide that needs ``--mpp``).
        downsamples: integer downsample of each level, starting with 1.
        tile: tile side in pixels (a multiple of 16).
        compression: TIFF compression ("zlib" or None; "jpeg" needs the imagecodecs package).
    """
    import tifffile

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H, W, 3); got {rgb.dtype} {rgb.shape}")
    if not downsamples or downsamples[0] != 1:
        raise ValueError(f"downsamples must start with 1; got {downsamples}")
    height, width = rgb.shape[:2]
    description = (
        f"Aperio Image Library v12\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) -"
    )
    if mpp is not None:
        description += f"|AppMag = {10.0 / mpp:g}|MPP = {mpp:g}"
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tw:
        for i, ds in enumerate(downsamples):
            level = rgb if ds == 1 else _block_mean(rgb, ds)
            tw.write(
                level,
                tile=(tile, tile),
                photometric="rgb",
                compression=compression,
                subfiletype=0 if i == 0 else 1,
                metadata=None,
                description=description if i == 0 else None,
            )
    return Path(path)


def _block_mean(rgb: np.ndarray, factor: int) -> np.ndarray:
    height, width = rgb.shape[0] // factor, rgb.shape[1] // factor
    image = Image.fromarray(rgb[: height * factor, : width * factor])
    return np.asarray(image.reduce(factor))


def _positive_float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
