"""Opening slides: resolution from metadata, objective power or an override; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from radiograph.pathology.slide import Slide, SlideError, slide_resolution


def test_aperio_mpp_is_read_from_metadata(make_slide):
    with Slide(make_slide(mpp=0.25, downsamples=(1, 2, 8))) as slide:
        assert slide.resolution.mpp == pytest.approx(0.25)
        assert slide.resolution.source == "metadata"
        assert slide.level_downsamples == (1.0, 2.0, 8.0)
        assert slide.level_mpp(1) == pytest.approx(0.5)


def test_missing_resolution_is_an_error_naming_slide_and_fix(make_slide):
    path = make_slide(write_mpp=None)
    with pytest.raises(SlideError) as info:
        Slide(path)
    message = str(info.value)
    assert str(path) in message and "--mpp" in message and "mpp column" in message
    assert "\n" not in message
    with Slide(path, mpp=0.5) as slide:
        assert slide.resolution.mpp == 0.5 and slide.resolution.source == "override"


def test_override_wins_over_metadata(make_slide):
    with Slide(make_slide(mpp=0.25), mpp=0.2) as slide:
        assert (slide.mpp, slide.resolution.source) == (0.2, "override")


def test_objective_power_gives_ten_over_power():
    res = slide_resolution({"openslide.objective-power": "40"}, Path("s.svs"))
    assert (res.mpp, res.source) == (0.25, "objective-power")
    res = slide_resolution(
        {
            "openslide.mpp-x": "0.2520",
            "openslide.mpp-y": "0.2528",
            "openslide.objective-power": "40",
        },
        Path("s.svs"),
    )
    assert res.mpp == pytest.approx(0.2524) and res.source == "metadata"


def test_non_square_pixels_and_bad_override_are_refused():
    with pytest.raises(SlideError, match="non-square"):
        slide_resolution({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.5"}, Path("s.svs"))
    with pytest.raises(SlideError, match="must be > 0"):
        slide_resolution({}, Path("s.svs"), override=0.0)


def test_generic_tiff_resolution_tags(tmp_path):
    path = tmp_path / "plain.tiff"
    rgb = np.full((512, 512, 3), 200, np.uint8)
    tifffile.imwrite(
        path,
        rgb,
        tile=(256, 256),
        photometric="rgb",
        resolution=(1e4 / 0.5, 1e4 / 0.5),
        resolutionunit="CENTIMETER",
    )
    with Slide(path) as slide:
        assert slide.mpp == pytest.approx(0.5) and slide.dimensions == (512, 512)


def test_missing_file(tmp_path):
    with pytest.raises(SlideError, match=r"missing\.svs: file does not exist .*slide_paths"):
        Slide(tmp_path / "missing.svs")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_file(make_slide, tmp_path, damage):
    path = make_slide()
    data = path.read_bytes()
    bad = tmp_path / f"{damage}.svs"
    bad.write_bytes(bytes(range(256)) * 64 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(SlideError, match=rf"{damage}\.svs: not a readable slide .*re-export"):
        Slide(bad)


def test_corrupt_tile_raises_slide_error_on_read(make_slide):
    path = make_slide()
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[3], tif.pages[0].databytecounts[3]
    data = bytearray(path.read_bytes())
    data[offset : offset + count] = b"\x5a" * count
    path.write_bytes(bytes(data))
    with Slide(path) as slide:
        with pytest.raises(SlideError, match="cannot read the region.*truncated or corrupt"):
            slide.read_region(0, 0, 0, slide.dimensions[0], 256)
