"""ROI tiling: QuPath GeoJSON polygons with holes and multipolygons restrict the patch grid.

The reference is independent of the rasteriser: each patch's exact ROI fraction estimated by
matplotlib's ``Path.contains_points`` on a 32 x 32 point grid inside the patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from radiograph.pathology.roi import (
    RoiError,
    check_inside,
    read_roi,
    restrict_to_roi,
    roi_for_slide,
)
from radiograph.pathology.tiling import render_thumbnail, tile_grid
from radiograph.pathology.tissue import TissueMask

MASK_DOWNSAMPLE = 14.0  # level-0 pixels per mask pixel: 16 mask pixels per 224-px patch
SHAPE = (200, 300)  # mask (h, w): a 4200 x 2800 level-0 slide


class _Slide:
    """The attributes of :class:`radiograph.pathology.slide.Slide` that tiling reads."""

    path = Path("stub.tiff")
    mpp = 0.5
    level_downsamples = (1.0,)
    dimensions = (int(SHAPE[1] * MASK_DOWNSAMPLE), int(SHAPE[0] * MASK_DOWNSAMPLE))

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]


def _ring(cx: float, cy: float, r: float, n: int, wobble: float = 0.0) -> list[list[float]]:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = r * (1 + wobble * np.sin(7 * angles))
    ring = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return [*ring.tolist(), ring[0].tolist()]  # GeoJSON rings repeat the first vertex


def _geojson() -> dict:
    """A wobbly 200-vertex polygon with a hole, and a two-part multipolygon."""
    polygon = {
        "type": "Polygon",
        "coordinates": [_ring(1300, 1300, 1000, 200, 0.15), _ring(1300, 1300, 400, 60)],
    }
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            [_ring(3300, 700, 450, 40)],
            [_ring(3300, 2100, 500, 50), _ring(3300, 2100, 200, 30)],
        ],
    }
    point = {"type": "Point", "coordinates": [10, 10]}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": g, "properties": {"objectType": "annotation"}}
            for g in (polygon, multi, point)
        ],
    }


def _write(tmp_path: Path, data: object, name: str = "slide.geojson") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _reference_fraction(data: dict, coords: np.ndarray, size: float, k: int = 32) -> np.ndarray:
    """Exact-ish ROI fraction of each patch: share of k x k sample points inside a polygon's
    exterior and outside its holes (any polygon)."""
    polygons = []
    for feature in data["features"]:
        g = feature["geometry"]
        if g["type"] == "Polygon":
            polygons.append(g["coordinates"])
        elif g["type"] == "MultiPolygon":
            polygons.extend(g["coordinates"])
    offsets = (np.arange(k) + 0.5) * size / k
    ox, oy = np.meshgrid(offsets, offsets)
    points = (coords[:, None, :] + np.stack([ox.ravel(), oy.ravel()], 1)[None]).reshape(-1, 2)
    inside = np.zeros(len(points), dtype=bool)
    for rings in polygons:
        part = MplPath(np.asarray(rings[0])).contains_points(points)
        for hole in rings[1:]:
            part &= ~MplPath(np.asarray(hole)).contains_points(points)
        inside |= part
    return inside.reshape(len(coords), -1).mean(axis=1)


def _tissue() -> TissueMask:
    return TissueMask(
        mask=np.ones(SHAPE, dtype=bool),
        image=np.full((*SHAPE, 3), 230, np.uint8),
        downsample=(MASK_DOWNSAMPLE, MASK_DOWNSAMPLE),
        mpp=7.0,
        threshold=0.1,
    )


def test_roi_tiling_keeps_no_patch_outside_a_polygon_or_inside_a_hole(tmp_path: Path) -> None:
    data = _geojson()
    roi = read_roi(_write(tmp_path, data))
    assert len(roi.polygons) == 3  # the polygon and the two parts; the point is skipped
    slide, tissue = _Slide(), _tissue()
    full = tile_grid(slide, tissue, min_tissue=0.5)
    grid = tile_grid(slide, restrict_to_roi(tissue, roi), min_tissue=0.5)
    exact_all = _reference_fraction(data, full.coords.astype(float), full.size_level0)
    exact_kept = _reference_fraction(data, grid.coords.astype(float), grid.size_level0)
    kept = {tuple(c) for c in grid.coords}
    assert 0 < len(grid) < len(full)
    # No kept patch lies outside every polygon or wholly inside a hole.
    assert exact_kept.min() > 0.0
    # Kept patches pass the threshold up to the rasteriser's one-mask-pixel border (2/16).
    assert exact_kept.min() >= 0.5 - 2 / 16
    # Every patch wholly inside the ROI (and on tissue) is kept; none wholly outside is.
    inside_all = [tuple(c) for c, f in zip(full.coords, exact_all) if f == 1.0]
    outside_all = [tuple(c) for c, f in zip(full.coords, exact_all) if f == 0.0]
    assert inside_all and all(c in kept for c in inside_all)
    assert outside_all and not any(c in kept for c in outside_all)
    # The ROI fraction reported per patch agrees with the exact one.
    np.testing.assert_allclose(grid.tissue_fraction, exact_kept, atol=0.13)


def test_roi_tiling_ignores_feature_order(tmp_path: Path) -> None:
    data = _geojson()
    shuffled = {**data, "features": data["features"][::-1]}
    tissue = _tissue()
    a = tile_grid(_Slide(), restrict_to_roi(tissue, read_roi(_write(tmp_path, data))))
    b = tile_grid(_Slide(), restrict_to_roi(tissue, read_roi(_write(tmp_path, shuffled, "b.json"))))
    np.testing.assert_array_equal(a.coords, b.coords)


def test_roi_only_removes_patches_from_the_tissue_grid(tmp_path: Path) -> None:
    """Tissue outside the ROI is dropped; background inside the ROI is not added."""
    tissue = _tissue()
    mask = tissue.mask.copy()
    mask[:, :150] = False  # left half background
    tissue = TissueMask(mask, tissue.image, tissue.downsample, tissue.mpp, tissue.threshold)
    roi = read_roi(_write(tmp_path, _geojson()))
    grid = tile_grid(_Slide(), restrict_to_roi(tissue, roi), min_tissue=0.5)
    tissue_only = {tuple(c) for c in tile_grid(_Slide(), tissue, min_tissue=0.5).coords}
    assert len(grid) > 0
    assert {tuple(c) for c in grid.coords} <= tissue_only


def test_thumbnail_draws_the_roi_outline(tmp_path: Path) -> None:
    roi = read_roi(_write(tmp_path, _geojson()))
    tissue = _tissue()
    grid = tile_grid(_Slide(), restrict_to_roi(tissue, roi))
    plain = np.asarray(render_thumbnail(tissue, grid))
    drawn = np.asarray(render_thumbnail(tissue, grid, outlines=roi.rings()))
    red = (drawn[..., 0] > 200) & (drawn[..., 1] < 60)
    assert red.sum() > 100 and not ((plain[..., 0] > 200) & (plain[..., 1] < 60)).any()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not readable GeoJSON"),
        ({"type": "Topology"}, "expected a GeoJSON FeatureCollection"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Feature"}]},
            "feature 0 has no geometry",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}
                ],
            },
            "no Polygon or MultiPolygon",
        ),
        (
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]},
            },
            "feature 0 (Polygon) ring 0 has fewer than 3 distinct vertices",
        ),
        (
            {
                "type": "Feature",
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [[_ring(5, 5, 4, 8)], [[["a", 1]]]],
                },
            },
            "feature 0 (MultiPolygon part 1) ring 0",
        ),
    ],
)
def test_malformed_geojson_names_the_file_and_feature(
    tmp_path: Path, content: object, needle: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(RoiError) as info:
        read_roi(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_roi_outside_the_slide_is_refused_naming_roi_and_slide(tmp_path: Path) -> None:
    roi = read_roi(
        _write(
            tmp_path,
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_ring(5000, 1000, 300, 20)]},
            },
        )
    )
    with pytest.raises(RoiError, match=r"outside slide s1\.svs \(4200 x 2800\)") as info:
        check_inside(roi, 4200, 2800, "s1.svs")
    assert str(roi.source) in str(info.value)
    check_inside(read_roi(_write(tmp_path, _geojson(), "ok.geojson")), 4200, 2800, "s1.svs")


def test_roi_dir_lookup_by_slide_stem(tmp_path: Path) -> None:
    _write(tmp_path, _geojson(), "A-1.geojson")
    assert roi_for_slide(tmp_path / "x" / "A-1.svs", tmp_path) == tmp_path / "A-1.geojson"
    assert roi_for_slide(tmp_path / "B-2.svs", tmp_path) is None
    assert roi_for_slide(tmp_path / "A-1.svs", None) is None


@pytest.mark.filterwarnings("ignore::radiograph.encoders.RandomWeightsWarning")
def test_bad_rois_fail_their_own_slide_only_naming_slide_and_file(
    make_slide, tmp_path: Path
) -> None:
    """extract-pathology over a cohort: a malformed GeoJSON and an ROI outside its slide fail
    that slide's task (the error names the slide and the ROI file); the others go on."""
    from radiograph.io.features import read_features
    from radiograph.manifest import load_manifest
    from radiograph.pathology.extract import ExtractionConfig, extract_cohort

    slides = {name: make_slide(name=f"{name}.svs") for name in ("good", "bad", "far")}
    rois = tmp_path / "rois"
    rois.mkdir()
    _write(
        rois,
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_ring(900, 650, 400, 40)]},
        },
        "good.geojson",
    )
    _write(rois, "{not json", "bad.geojson")
    _write(
        rois,
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [_ring(5000, 1000, 300, 20)]},
        },
        "far.geojson",
    )
    lines = ["subject_id,patient_id,centre,time,time_unit,event,slide_paths"]
    lines += [
        f"S{i},P{i},A,{10 + i},months,1,{path.name}" for i, path in enumerate(slides.values())
    ]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    manifest = load_manifest(tmp_path / "manifest.csv", check_files=False)
    config = ExtractionConfig(
        encoder="timm:resnet18", random_weights=True, num_workers=0, batch_size=8
    )
    record = extract_cohort(manifest, tmp_path / "run", config, progress=False, roi_dir=rois)
    status = {r.key: (r.status, r.error) for r in record.results}
    assert status["S0/good"][0] == "done"
    assert status["S1/bad"][0] == "failed" and status["S2/far"][0] == "failed"
    assert "not readable GeoJSON" in status["S1/bad"][1]
    assert str(rois / "bad.geojson") in status["S1/bad"][1]
    assert "outside slide" in status["S2/far"][1] and "far.svs" in status["S2/far"][1]
    assert str(rois / "far.geojson") in status["S2/far"][1]
    kept = read_features(tmp_path / "run" / "features" / "pathology" / "S0" / "good.h5")
    assert kept.attrs["tile_region"] == "roi" and len(kept.coords) > 0
