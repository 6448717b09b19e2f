"""Slide -> h5 extraction: features and attrs, resume, failure report, the CLI command."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import openslide
import pytest
import tifffile
import torch

from radiograph.encoders import RandomWeightsWarning, build_encoder
from radiograph.io.features import read_features
from radiograph.manifest import load_manifest
from radiograph.pathology import commands
from radiograph.pathology.extract import ExtractionConfig, SlideJob, extract_cohort, extract_slide

ENCODER = "timm:resnet18"
CONFIG = ExtractionConfig(encoder=ENCODER, random_weights=True, num_workers=0, batch_size=8)


@pytest.fixture(autouse=True)
def _quiet_random_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        yield


def job_for(path, out, subject="S1", mpp=None):
    return SlideJob(
        subject,
        path,
        out / "features" / "pathology" / subject / f"{path.stem}.h5",
        out / "thumbnails" / subject / f"{path.stem}.png",
        mpp,
    )


def test_features_are_the_encoder_applied_to_the_tiles(make_slide, tmp_path):
    path = make_slide()
    config = ExtractionConfig(encoder=ENCODER, random_weights=True, num_workers=2, batch_size=5)
    h5 = extract_slide(job_for(path, tmp_path), config, progress=False)
    fs = read_features(h5)
    assert h5 == tmp_path / "features" / "pathology" / "S1" / f"{path.stem}.h5"
    assert (tmp_path / "thumbnails" / "S1" / f"{path.stem}.png").is_file()
    assert fs.features.shape == (24, 512) and fs.coords.shape == (24, 2)
    # reference: tiles read straight through OpenSlide at the stored coordinates
    encoder = build_encoder(ENCODER, random_weights=True)
    osr = openslide.OpenSlide(str(path))
    tiles = np.stack(
        [
            np.asarray(osr.read_region((int(x), int(y)), 0, (224, 224)))[..., :3]
            for x, y in fs.coords
        ]
    )
    with torch.inference_mode():
        expected = encoder(encoder.preprocess(tiles)).numpy()
    np.testing.assert_allclose(fs.features, expected, rtol=1e-4, atol=1e-5)
    attrs = fs.attrs
    assert attrs["subject_id"] == "S1" and attrs["modality"] == "pathology"
    assert attrs["source"] == str(path) and attrs["encoder"] == ENCODER
    assert attrs["random_weights"] is True and attrs["weights_sha256"] == ""
    assert (attrs["patch_size"], attrs["level"], attrs["mpp"], attrs["level0_mpp"]) == (
        224,
        0,
        0.5,
        0.5,
    )
    assert attrs["stain_norm"] == "none" and attrs["mpp_source"] == "metadata"
    assert attrs["code_version"]
    assert (attrs["device"], attrs["precision"]) == ("cpu", "fp32")


def test_quarter_micron_slide_and_stain_normalisation(make_slide, tmp_path):
    path = make_slide(mpp=0.25, downsamples=(1, 4, 16))
    plain = read_features(extract_slide(job_for(path, tmp_path / "a"), CONFIG, progress=False))
    config = ExtractionConfig(encoder=ENCODER, random_weights=True, num_workers=0, stain_norm=True)
    normed = read_features(extract_slide(job_for(path, tmp_path / "b"), config, progress=False))
    assert (plain.attrs["level"], plain.attrs["read_size"], plain.attrs["level0_mpp"]) == (
        0,
        448,
        0.25,
    )
    assert np.all(plain.coords % 448 == 0) and len(plain.coords) == 24
    np.testing.assert_array_equal(plain.coords, normed.coords)
    assert normed.attrs["stain_norm"] == "macenko (built-in target)"
    assert not np.allclose(plain.features, normed.features)


def write_manifest(tmp_path, rows, mpp_column=False):
    header = "subject_id,patient_id,centre,time,time_unit,event,slide_paths"
    lines = [header + (",mpp" if mpp_column else "")]
    for i, (subject, slides, *mpp) in enumerate(rows):
        cells = [subject, f"P{i}", "A", str(10 + i), "months", str(i % 2), ";".join(slides)]
        lines.append(",".join(cells + ([mpp[0] if mpp else ""] if mpp_column else [])))
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_manifest(path, check_files=False)


def test_resume_skips_done_slides_and_redoes_a_deleted_one(make_slide, tmp_path):
    a, b, c = (make_slide(name=f"{n}.svs") for n in "abc")
    manifest = write_manifest(tmp_path, [("S1", [a.name, b.name]), ("S2", [c.name]), ("S3", [])])
    out = tmp_path / "run"
    first = extract_cohort(manifest, out, CONFIG, progress=False)
    assert first.done == ["S1/a", "S1/b", "S2/c"] and not first.failed
    h5s = sorted((out / "features" / "pathology").rglob("*.h5"))
    stamps = {p: p.stat().st_mtime_ns for p in h5s}
    second = extract_cohort(manifest, out, CONFIG, progress=False)
    assert second.skipped == ["S1/a", "S1/b", "S2/c"] and second.done == []
    assert {p: p.stat().st_mtime_ns for p in h5s} == stamps
    (out / "features" / "pathology" / "S1" / "b.h5").unlink()
    third = extract_cohort(manifest, out, CONFIG, progress=False)
    assert third.done == ["S1/b"] and third.skipped == ["S1/a", "S2/c"]
    assert {p: p.stat().st_mtime_ns for p in h5s if p.name != "b.h5"} == {
        p: t for p, t in stamps.items() if p.name != "b.h5"
    }
    record = json.loads((out / "runs" / "extract-pathology.json").read_text())
    assert [r["status"] for r in record["results"]] == ["skipped", "done", "skipped"]


def run_cli(argv):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_bad_slides_are_reported_and_the_others_go_on(make_slide, tmp_path, capsys):
    good = make_slide(name="good.svs")
    no_mpp = make_slide(name="nompp.svs", write_mpp=None)
    no_mpp_fixed = make_slide(name="nompp_fixed.svs", write_mpp=None)
    blank = make_slide(name="blank.svs", rects=())
    garbage = tmp_path / "garbage.svs"
    garbage.write_bytes(b"\x00\x01 not a slide" * 100)
    corrupt = make_slide(name="corrupt.svs")
    with tifffile.TiffFile(corrupt) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[4], page.databytecounts[4]  # a tissue tile of level 0
    data = bytearray(corrupt.read_bytes())
    data[offset : offset + count] = b"\x5a" * count
    corrupt.write_bytes(bytes(data))
    write_manifest(
        tmp_path,
        [
            ("S1", [good.name]),
            ("S2", [no_mpp.name]),
            ("S3", [no_mpp_fixed.name], "0.5"),
            ("S4", [blank.name]),
            ("S5", [garbage.name]),
            ("S6", ["missing.svs"]),
            ("S7", [corrupt.name]),
        ],
        mpp_column=True,
    )
    out = tmp_path / "run"
    rc = run_cli(
        [
            "extract-pathology",
            "--manifest",
            str(tmp_path / "manifest.csv"),
            "--out",
            str(out),
            "--encoder",
            ENCODER,
            "--random-weights",
            "--num-workers",
            "1",
        ]
    )
    assert rc == 1
    record = json.loads((out / "runs" / "extract-pathology.json").read_text())
    status = {r["key"]: r["status"] for r in record["results"]}
    assert status == {
        "S1/good": "done",
        "S2/nompp": "failed",
        "S3/nompp_fixed": "done",
        "S4/blank": "failed",
        "S5/garbage": "failed",
        "S6/missing": "failed",
        "S7/corrupt": "failed",
    }
    errors = {r["key"]: r["error"] for r in record["results"] if r["error"]}
    expected = {
        "S2/nompp": "no resolution metadata",
        "S4/blank": "no tissue found",
        "S5/garbage": "not a readable slide",
        "S6/missing": "file does not exist",
        "S7/corrupt": "truncated or corrupt",
    }
    for key, phrase in expected.items():
        slide_name = key.split("/")[1]
        assert phrase in errors[key] and f"{slide_name}.svs" in errors[key], errors[key]
        assert "\n" not in errors[key]
    assert "--mpp" in errors["S2/nompp"] and "--min-tissue" in errors["S4/blank"]
    assert (
        read_features(out / "features/pathology/S3/nompp_fixed.h5").attrs["mpp_source"]
        == "override"
    )
    assert (out / "thumbnails" / "S4" / "blank.png").is_file()  # the user can see why
    err = capsys.readouterr().err
    assert "5 failed" in err and "FAILED S7/corrupt: SlideError: slide" in err


def test_bad_encoder_arguments_stop_before_any_slide(make_slide, tmp_path, capsys):
    write_manifest(tmp_path, [("S1", [make_slide().name])])
    base = [
        "extract-pathology",
        "--manifest",
        str(tmp_path / "manifest.csv"),
        "--out",
        str(tmp_path / "run"),
    ]
    assert run_cli(base + ["--encoder", "nope"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    weights = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, weights)
    assert run_cli(base + ["--encoder", ENCODER, "--weights", str(weights)]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit the architecture" in err and str(weights) in err and "\n" not in err
    assert not (tmp_path / "run" / "features").exists()


def test_duplicate_slide_names_in_one_subject_are_refused(make_slide, tmp_path):
    a = make_slide(name="x.svs")
    (tmp_path / "sub").mkdir()
    b = make_slide(name="sub/x.svs")
    assert b.exists()
    with pytest.raises(ValueError, match="share the name 'x'"):  # refused by the manifest check
        manifest = write_manifest(tmp_path, [("S1", [a.name, "sub/x.svs"])])
        extract_cohort(manifest, tmp_path / "run", CONFIG, progress=False)
