"""Annotated regions of interest (QuPath GeoJSON) and tiling restricted to them.

QuPath exports annotations as GeoJSON (a ``FeatureCollection``, a single ``Feature`` or a list
of features) whose ``Polygon`` and ``MultiPolygon`` geometries are in level-0 pixels: each
polygon is an exterior ring followed by hole rings. A patch is kept when the fraction of it
that is both tissue and inside the ROI reaches the tiling threshold: the ROI is rasterised on
the tissue mask's grid (a pixel is in the ROI when its centre is inside a polygon and outside
that polygon's holes; polygons are united) and intersected with the tissue mask, so the
tissue fraction of :meth:`TissueMask.tissue_fraction` becomes the tissue-and-ROI fraction.

Rasterisation is PIL's scan-line polygon fill, per polygon inside its bounding box: O(mask
pixels + vertices), no Python loop over patches or pixels (``benchmarks/roi_tiling.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from radiograph.pathology.tissue import TissueMask

#: GeoJSON geometry types that carry an area; other annotation types (points, lines) are
#: skipped.
AREA_TYPES = ("Polygon", "MultiPolygon")
#: How far (level-0 pixels) a vertex may lie outside the slide before the ROI is refused.
OUTSIDE_TOLERANCE_PX = 1.0


class RoiError(ValueError):
    """An ROI file that cannot be used; the message names the file and the feature."""


@dataclass(frozen=True)
class Polygon:
    """One polygon in level-0 pixels.

    Attributes:
        exterior: float64 (V, 2) (x, y) vertices of the outer ring.
        holes: float64 (V_k, 2) vertices of each hole ring.
    """

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class Roi:
    """The polygons of one slide's annotation file, united.

    Attributes:
        polygons: the polygons (a MultiPolygon contributes one entry per part).
        source: the file they were read from.
    """

    polygons: tuple[Polygon, ...]
    source: Path

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of every exterior ring, level-0 pixels."""
        points = np.concatenate([p.exterior for p in self.polygons])
        return (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        )

    def rings(self) -> list[np.ndarray]:
        """Every ring (exteriors and holes), level-0 (V, 2), for drawing outlines."""
        return [ring for p in self.polygons for ring in (p.exterior, *p.holes)]


def read_roi(path: str | os.PathLike) -> Roi:
    """Read the polygons of a QuPath GeoJSON export.

    Raises:
        RoiError: not JSON, not GeoJSON features, a ring with fewer than 3 distinct vertices
            or non-finite coordinates, or no Polygon / MultiPolygon at all (naming the file and
            the feature index).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RoiError(f"ROI file {path}: not readable GeoJSON ({err})") from err
    features = _features(data, path)
    polygons: list[Polygon] = []
    for index, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or "type" not in geometry:
            raise RoiError(f"ROI file {path}: feature {index} has no geometry with a 'type'")
        kind = geometry["type"]
        if kind not in AREA_TYPES:
            continue
        parts = [geometry.get("coordinates")]
        if kind == "MultiPolygon":
            parts = geometry.get("coordinates") or []
        for part, rings in enumerate(parts):
            where = f"feature {index} ({kind}" + (
                f" part {part})" if kind == "MultiPolygon" else ")"
            )
            polygons.append(_polygon(rings, path, where))
    if not polygons:
        raise RoiError(
            f"ROI file {path}: no Polygon or MultiPolygon among {len(features)} "
            "feature(s); export the tumour annotation as an area"
        )
    return Roi(tuple(polygons), path)


def check_inside(roi: Roi, width: int, height: int, slide: str | os.PathLike) -> None:
    """Refuse an ROI that reaches outside the slide (usually the annotation of another slide
    or of another pyramid level).

    Raises:
        RoiError: naming the ROI file, the slide, the ROI's bounds and the slide's size.
    """
    x0, y0, x1, y1 = roi.bounds
    tol = OUTSIDE_TOLERANCE_PX
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise RoiError(
            f"ROI file {roi.source}: its polygons span x {x0:.0f}..{x1:.0f}, "
            f"y {y0:.0f}..{y1:.0f} level-0 pixels, outside slide {slide} "
            f"({width} x {height}); is it the annotation of this slide, in level-0 "
            "pixels?"
        )


def rasterize(roi: Roi, shape: tuple[int, int], downsample: tuple[float, float]) -> np.ndarray:
    """The ROI on a grid of ``shape`` (h, w) pixels of ``downsample`` (x, y) level-0 pixels.

    Returns:
        bool (h, w): True where the pixel centre ``((j + 0.5) dx, (i + 0.5) dy)`` is inside a
        polygon and not in one of its holes (PIL's fill also takes pixels the boundary
        crosses, so the ROI grows by at most one pixel).
    """
    height, width = shape
    dx, dy = downsample
    out = np.zeros((height, width), dtype=bool)
    for polygon in roi.polygons:
        scaled = [ring / (dx, dy) - 0.5 for ring in (polygon.exterior, *polygon.holes)]
        lo = np.clip(np.floor(scaled[0].min(axis=0)).astype(int), 0, (width, height))
        hi = np.clip(np.ceil(scaled[0].max(axis=0)).astype(int) + 1, 0, (width, height))
        if (hi <= lo).any():
            continue
        layer = Image.new("1", (int(hi[0] - lo[0]), int(hi[1] - lo[1])), 0)
        draw = ImageDraw.Draw(layer)
        for k, ring in enumerate(scaled):
            draw.polygon([tuple(v) for v in (ring - lo)], fill=int(k == 0), outline=int(k == 0))
        out[lo[1] : hi[1], lo[0] : hi[0]] |= np.asarray(layer, dtype=bool)
    return out


def restrict_to_roi(tissue: TissueMask, roi: Roi) -> TissueMask:
    """``tissue`` with its mask intersected with the rasterised ROI: its
    :meth:`~TissueMask.tissue_fraction` is then the tissue-and-ROI fraction of each patch."""
    inside = rasterize(roi, tissue.mask.shape, tissue.downsample)
    return replace(tissue, mask=tissue.mask & inside)


def roi_for_slide(slide: str | os.PathLike, roi_dir: str | os.PathLike | None) -> Path | None:
    """``roi_dir/<slide file stem>.geojson`` when ``roi_dir`` is given and the file exists."""
    if roi_dir is None:
        return None
    candidate = Path(roi_dir) / f"{Path(slide).stem}.geojson"
    return candidate if candidate.is_file() else None


def _features(data: Any, path: Path) -> list[Any]:
    """The feature list of a FeatureCollection, a Feature, a bare geometry or a list."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if data.get("type") == "FeatureCollection" and isinstance(data.get("features"), list):
            return data["features"]
        if data.get("type") == "Feature":
            return [data]
        if data.get("type") in AREA_TYPES:
            return [{"geometry": data}]
    raise RoiError(
        f"ROI file {path}: expected a GeoJSON FeatureCollection, Feature or list of "
        "features (QuPath: File > Export objects as GeoJSON)"
    )


def _polygon(rings: Any, path: Path, where: str) -> Polygon:
    """A :class:`Polygon` from GeoJSON rings ``[[x, y], ...]`` (exterior first)."""
    if not isinstance(rings, list) or not rings:
        raise RoiError(f"ROI file {path}: {where} has no rings")
    arrays = []
    for k, ring in enumerate(rings):
        try:
            points = np.asarray(ring, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise RoiError(
                f"ROI file {path}: {where} ring {k} is not a list of [x, y] pairs ({err})"
            ) from err
        if points.ndim != 2 or points.shape[1] < 2 or not np.isfinite(points).all():
            raise RoiError(
                f"ROI file {path}: {where} ring {k} is not a list of finite [x, y] pairs"
            )
        points = points[:, :2]
        if len(np.unique(points, axis=0)) < 3:
            raise RoiError(f"ROI file {path}: {where} ring {k} has fewer than 3 distinct vertices")
        arrays.append(points)
    return Polygon(arrays[0], tuple(arrays[1:]))
