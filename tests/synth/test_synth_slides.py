"""Synthetic slides: OpenSlide reads the pyramid and resolution; the planted regions are really
different in colour (measured on the written files against the written ground truth)."""

from __future__ import annotations

import numpy as np
import openslide
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from radiograph.io.atomic import read_json
from radiograph.synth import slides


@pytest.mark.parametrize("mpp, power", [(0.5, "20"), (0.25, "40")])
def test_openslide_reads_aperio_pyramid_with_resolution(tmp_path, mpp, power):
    rng = np.random.default_rng(1)
    size = slides.default_slide_size(mpp) if mpp == 0.5 else (2048, 1536)
    layout = slides.slide_layout(rng, size, mpp, 0.03, 0.1)
    path = slides.write_slide(tmp_path / "s.tiff", slides.render_slide(rng, layout, "B"), mpp)
    with openslide.OpenSlide(str(path)) as osr:
        assert osr.properties["openslide.vendor"] == "aperio"
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(mpp)
        assert float(osr.properties["openslide.mpp-y"]) == pytest.approx(mpp)
        assert osr.properties["openslide.objective-power"] == power
        width, height = size
        expected = [(width, height), (width // 4, height // 4)]
        if min(width, height) // 16 >= 64:
            expected.append((width // 16, height // 16))
        assert list(osr.level_dimensions) == expected
        assert osr.level_downsamples[1] == pytest.approx(4.0, rel=0.01)
        region = np.asarray(osr.read_region((0, 0), 0, (64, 64)))
        assert region.shape == (64, 64, 4) and (region[..., 3] == 255).all()


def test_default_slide_is_3000_by_2000_at_20x():
    assert slides.default_slide_size(0.5) == (3000, 2000)
    assert slides.default_slide_size(0.25) == (6000, 4000)
    assert slides.pyramid_downsamples((2000, 3000)) == (1, 4, 16)


def test_slide_pixels_match_the_written_rgb(tmp_path):
    rng = np.random.default_rng(2)
    layout = slides.slide_layout(rng, (768, 512), 0.5, 0.04, 0.2)
    rgb = slides.render_slide(rng, layout, "A")
    assert rgb.shape == (512, 768, 3) and rgb.dtype == np.uint8
    path = slides.write_slide(tmp_path / "s.tiff", rgb, 0.5)
    with openslide.OpenSlide(str(path)) as osr:
        read = np.asarray(osr.read_region((0, 0), 0, (768, 512)))[..., :3]
    np.testing.assert_array_equal(read, rgb)


def test_layout_fractions_are_exact_and_blobs_compact():
    rng = np.random.default_rng(3)
    layout = slides.slide_layout(rng, (3000, 2000), 0.5, 0.035, 0.2)
    tissue_cells = layout.tissue.sum()
    assert 0.5 < layout.tissue.mean() < 0.9
    assert abs(layout.fraction(slides.PLANTED) - 0.035) <= 0.5 / tissue_cells
    assert abs(layout.fraction(slides.NUISANCE) - 0.2) <= 0.5 / tissue_cells
    planted = layout.labels == slides.PLANTED
    components, count = ndimage.label(planted)
    assert 1 <= count <= 4
    cell_um = layout.cell_px * layout.mpp
    areas_um2 = ndimage.sum(planted, components, range(1, count + 1)) * cell_um**2
    diameters = 2 * np.sqrt(areas_um2 / np.pi)
    # compact blobs about one to two 224-px (112 um) patches across
    assert diameters.max() < 300 and diameters.sum() > 100


def test_planted_regions_differ_in_colour_in_the_written_files(small_cohort):
    """Per 32 x 32-pixel block, fully planted blocks are darker and bluer than fully ordinary or
    nuisance tissue blocks, read from the TIFFs with OpenSlide and labelled by the written
    ground-truth PNGs; subjects from all centres are pooled (stain nuisance included)."""
    truth = pd.read_csv(small_cohort / "ground_truth.csv", keep_default_na=False)
    downsample = read_json(small_cohort / "ground_truth.json")["slide"]["label_downsample"]
    manifest = pd.read_csv(small_cohort / "manifest.csv", keep_default_na=False)
    block = 32
    features = {"planted": [], "ordinary": []}
    for (_, row), slide_path in zip(truth.iterrows(), manifest["slide_paths"]):
        if not row["has_slide"]:
            assert slide_path == "" and row["slide_planted_path"] == ""
            continue
        with openslide.OpenSlide(str(small_cohort / slide_path)) as osr:
            rgb = np.asarray(osr.read_region((0, 0), 0, osr.dimensions))[..., :3]
        planted = _label_map(small_cohort / row["slide_planted_path"], downsample)
        tissue = _label_map(small_cohort / row["slide_tissue_path"], downsample)
        assert planted.shape == rgb.shape[:2]
        measured = planted.sum() / tissue.sum()
        assert measured == pytest.approx(row["path_planted_fraction"], abs=2e-4)
        rows, cols = rgb.shape[0] // block, rgb.shape[1] // block

        def blocks(a):
            return a[: rows * block, : cols * block].reshape(rows, block, cols, block, -1)

        mean_rgb = blocks(rgb.astype(float)).mean(axis=(1, 3))
        planted_share = blocks(planted[..., None].astype(float)).mean(axis=(1, 3))[..., 0]
        tissue_share = blocks(tissue[..., None].astype(float)).mean(axis=(1, 3))[..., 0]
        features["planted"].append(mean_rgb[planted_share == 1])
        features["ordinary"].append(mean_rgb[(tissue_share == 1) & (planted_share == 0)])
    planted_rgb = np.concatenate(features["planted"])
    other_rgb = np.concatenate(features["ordinary"])
    assert len(planted_rgb) >= 20 and len(other_rgb) >= 200
    # darker (lower mean intensity) and bluer (blue over red higher) than the rest
    assert planted_rgb.mean() < other_rgb.mean() - 30
    darkness_auc = roc_auc_score(
        np.r_[np.ones(len(planted_rgb)), np.zeros(len(other_rgb))],
        -np.r_[planted_rgb.mean(1), other_rgb.mean(1)],
    )
    assert darkness_auc > 0.97
    blue_red = lambda x: x[:, 2] / x[:, 0]  # noqa: E731
    assert np.median(blue_red(planted_rgb)) > np.median(blue_red(other_rgb)) + 0.1


def _label_map(path, downsample: int) -> np.ndarray:
    """A ground-truth PNG (255 = yes) expanded to level-0 pixels."""
    cells = np.asarray(Image.open(path)) == 255
    return np.repeat(np.repeat(cells, downsample, axis=0), downsample, axis=1)
