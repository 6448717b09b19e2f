"""Tissue mask and patch grid on synthetic slides whose tissue layout is known in microns."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from rg_slides import PATCH_UM, render_layout

from radiograph.pathology.slide import Slide, SlideError
from radiograph.pathology.tiling import read_plan, read_tile, save_thumbnail, tile_grid
from radiograph.pathology.tissue import compute_tissue_mask, otsu_threshold, tissue_mask

RECT = (1.25 * PATCH_UM, 0.75 * PATCH_UM, 6.75 * PATCH_UM, 5.25 * PATCH_UM)


def grid_of(path, *, target_mpp=0.5, patch_size=224, min_tissue=0.5, mpp=None):
    with Slide(path, mpp=mpp) as slide:
        patch_um = patch_size * target_mpp
        tissue = compute_tissue_mask(slide, mask_mpp=patch_um / 16)
        return (
            slide,
            tissue,
            tile_grid(
                slide, tissue, target_mpp=target_mpp, patch_size=patch_size, min_tissue=min_tissue
            ),
        )


def rect_overlap_fraction(col, row, rect, patch_um=PATCH_UM):
    """Exact fraction of grid patch (col, row) inside the rectangle (float64, in microns)."""
    x0, y0, x1, y1 = rect
    ox = max(0.0, min(x1, (col + 1) * patch_um) - max(x0, col * patch_um))
    oy = max(0.0, min(y1, (row + 1) * patch_um) - max(y0, row * patch_um))
    return ox * oy / patch_um**2


def test_otsu_matches_brute_force_between_class_variance():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(40, 12, 3000), rng.normal(150, 25, 1200)])
    values = np.clip(np.round(values), 0, 255).astype(np.uint8)
    best, best_t = -1.0, None
    for t in range(255):
        low, high = values[values <= t].astype(float), values[values > t].astype(float)
        if len(low) == 0 or len(high) == 0:
            continue
        w0, w1 = len(low) / len(values), len(high) / len(values)
        between = w0 * w1 * (low.mean() - high.mean()) ** 2
        if between > best + 1e-9:
            best, best_t = between, t
    assert otsu_threshold(values) == best_t


def test_blank_image_has_no_tissue():
    rng = np.random.default_rng(0)
    blank = (235 + rng.integers(-4, 5, size=(64, 64, 1))).repeat(3, axis=2).astype(np.uint8)
    blank[..., 0] += rng.integers(0, 3, size=(64, 64)).astype(np.uint8)  # faint colour noise
    mask, threshold = tissue_mask(blank, pixel_um=8.0)
    assert not mask.any() and threshold >= 0.05


def test_all_tissue_image_is_all_tissue():
    rgb, _ = render_layout(4.0, 400, 400, rects=((0, 0, 400, 400),))
    mask, threshold = tissue_mask(rgb, pixel_um=4.0)
    assert mask.all() and threshold == pytest.approx(13 / 255)


def test_small_specks_removed_and_small_holes_filled():
    rgb, _ = render_layout(4.0, 800, 800, rects=((100, 100, 500, 500), (700, 700, 712, 712)))
    rgb[60:64, 60:64] = 240  # a 16x16 um hole inside the big square (256 um^2 < 2000)
    mask, _ = tissue_mask(rgb, pixel_um=4.0)
    assert mask[62, 62]  # hole filled
    assert not mask[176:178, 176:178].any()  # 144 um^2 speck removed
    assert mask[30:120, 30:120].all() and not mask[:20].any()


def test_kept_patches_are_the_known_tissue_rectangle(make_slide):
    slide, _, grid = grid_of(make_slide())
    cols, rows = 8, 6
    expected = {
        (c * 224, r * 224)
        for c in range(cols)
        for r in range(rows)
        if rect_overlap_fraction(c, r, RECT) >= 0.5
    }
    assert len(expected) == 24
    assert {tuple(map(int, xy)) for xy in grid.coords} == expected
    assert grid.level == 0 and grid.read_size == 224 and grid.coords.dtype == np.int64


def test_kept_patches_follow_a_disk(make_slide):
    disk = (4 * PATCH_UM, 3 * PATCH_UM, 2.3 * PATCH_UM)
    path = make_slide(rects=(), disks=(disk,))
    _, _, grid = grid_of(path)
    # reference: tissue fraction of each grid patch from a fine (1 um) rasterisation of the disk
    fine = 1.0
    _, truth = render_layout(fine, 8 * PATCH_UM, 6 * PATCH_UM, disks=(disk,))
    n = int(PATCH_UM / fine)
    true_fraction = truth.reshape(6, n, 8, n).mean(axis=(1, 3))
    kept = {(int(x) // 224, int(y) // 224) for x, y in grid.coords}
    for r in range(6):
        for c in range(8):
            if true_fraction[r, c] >= 0.6:
                assert (c, r) in kept, (c, r, true_fraction[r, c])
            elif true_fraction[r, c] <= 0.4:
                assert (c, r) not in kept, (c, r, true_fraction[r, c])
    assert np.allclose(
        grid.tissue_fraction, [true_fraction[y // 224, x // 224] for x, y in grid.coords], atol=0.12
    )


def test_min_tissue_threshold_is_applied(make_slide):
    _, _, grid = grid_of(make_slide(), min_tissue=0.2)
    expected = {
        (c, r) for c in range(8) for r in range(6) if rect_overlap_fraction(c, r, RECT) >= 0.2
    }
    assert {(int(x) // 224, int(y) // 224) for x, y in grid.coords} == expected


@pytest.mark.parametrize(
    "downsamples, level, read_size", [((1, 2, 8), 1, 224), ((1, 4, 16), 0, 448)]
)
def test_quarter_micron_slide_reads_the_same_tiles_at_half_micron(
    make_slide, downsamples, level, read_size
):
    half = make_slide(mpp=0.5)
    quarter = make_slide(mpp=0.25, downsamples=downsamples)
    slide_h, _, grid_h = grid_of(half)
    slide_q, _, grid_q = grid_of(quarter)
    assert (grid_q.level, grid_q.read_size, grid_q.patch_size) == (level, read_size, 224)
    assert grid_q.size_level0 == 448 and grid_q.level0_mpp == 0.25
    np.testing.assert_array_equal(grid_q.coords, 2 * grid_h.coords)
    with Slide(half) as sh, Slide(quarter) as sq:
        for i in (0, len(grid_h) // 2, len(grid_h) - 1):
            a = read_tile(sh, grid_h, i).astype(float)
            b = read_tile(sq, grid_q, i).astype(float)
            assert a.shape == b.shape == (224, 224, 3)
            assert np.abs(a - b).mean() < 3.0


def test_target_resolution_finer_than_slide_is_refused(make_slide):
    with Slide(make_slide(mpp=0.5)) as slide:
        with pytest.raises(SlideError, match=r"coarser than the target 0.25.*--target-mpp"):
            read_plan(slide, target_mpp=0.25, patch_size=224)
        assert read_plan(slide, target_mpp=1.0, patch_size=224) == (0, 448)
        assert read_plan(slide, target_mpp=2.0, patch_size=256) == (1, 256)


@pytest.mark.parametrize("patch_size", [256, 512])
def test_other_patch_sizes(make_slide, patch_size):
    path = make_slide(width_um=8 * 128, height_um=4 * 128, rects=((0, 0, 8 * 128, 4 * 128),))
    _, _, grid = grid_of(path, patch_size=patch_size)
    per_row = (8 * 128 * 2) // patch_size
    assert len(grid) == per_row * ((4 * 128 * 2) // patch_size)
    assert set(np.unique(grid.coords[:, 0])) == {i * patch_size for i in range(per_row)}


def test_thumbnail_shows_mask_and_kept_grid(make_slide, tmp_path):
    slide, tissue, grid = grid_of(make_slide())
    path = save_thumbnail(tmp_path / "t" / "thumb.png", tissue, grid, max_side=256)
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert tissue.mask.shape == (96, 128) and image.shape[:2] == (192, 256)  # enlarged 2x
    outline = np.abs(image - [30, 60, 220]).sum(axis=2) == 0
    # kept patches are 32 thumbnail pixels wide: outlines sit on the kept grid cells only
    assert outline[32:160, 32:224].any()
    assert not outline[:, :32].any() and not outline[:, 224:].any()
    assert not outline[:32].any() and not outline[160:].any()
    green_tint = image[96, 128]
    assert green_tint[1] > green_tint[0]
