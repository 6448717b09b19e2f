"""The focal signal of the image cohort (``SynthParams(signal="focal")``): the hazard is set by
the nuclear size of one small marked region, not by its area; the distractor region is noise;
the written pixels show both; the default (abundance) cohort is unchanged by the option."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import openslide
import pandas as pd
import pytest
import SimpleITK as sitk
from lifelines import CoxPHFitter
from PIL import Image
from scipy import ndimage
from scipy.stats import spearmanr

from radiograph.io.atomic import read_json
from radiograph.manifest import load_manifest
from radiograph.synth import SIGNALS, SynthParams, commands, make_cohort, plan_cohort, slides
from radiograph.synth.cohort import FOCAL_TRUTH_COLUMNS, TRUTH_COLUMNS, oracle_c_index

FOCAL = SynthParams(signal="focal")
#: Content digest of the ``small_cohort`` fixture (6 subjects, seed 0, abundance), pinned when
#: the focal option was added (the same as the cohort written before it). Change it only for
#: an intended change of the abundance cohort.
ABUNDANCE_DIGEST = "f92d70ece392985e5f401b85c2bc250724a2b45feebc1a1ef486f93830b747e6"


@pytest.fixture(scope="module")
def focal_cohort(tmp_path_factory: pytest.TempPathFactory, small_settings: dict) -> Path:
    """Folder of a 4-subject focal cohort (seed 0; every subject has a slide and a CT)."""
    out = tmp_path_factory.mktemp("focal") / "cohort"
    make_cohort(out, 4, 0, params=FOCAL, **small_settings)
    return out


def test_hazard_is_the_appearance_not_the_size():
    """On a large planned cohort the true log hazard is 1.2 z + the radiology term exactly; a
    Cox fit recovers 1.2 for z and 0 for the region's area and the distractor's score; the
    region's area is uniform in [p_max/2, p_max]; a seed's focal cohort has the abundance
    cohort's patients, covariates, missing modalities and CT fractions."""
    subjects = plan_cohort(4000, 11, FOCAL)
    table = subjects.drop_duplicates("patient_id")
    area, z, z_distractor = (
        table["path_fraction"],
        table["path_appearance"],
        table["path_distractor_appearance"],
    )
    z_rad = (table["rad_fraction"] - 0.075) / (0.15 / math.sqrt(12))
    np.testing.assert_allclose(table["true_log_hazard"], 1.2 * z + 1.2 * z_rad, rtol=1e-12)
    assert area.between(0.02, 0.04).all() and area.min() < 0.0205 and area.max() > 0.0395
    for score in (z, z_distractor):
        assert abs(score.mean()) < 0.06 and abs(score.std() - 1.0) < 0.05
    eta = table["true_log_hazard"]
    assert spearmanr(eta, z)[0] > 0.6
    for noise in (area, z_distractor, table["path_nuisance"]):
        assert abs(spearmanr(eta, noise)[0]) < 0.05
    data = pd.DataFrame(
        {
            "z": z,
            "z_distractor": z_distractor,
            "area": (area - 0.03) / (0.02 / math.sqrt(12)),
            "z_rad": z_rad,
            "time": table["time"],
            "event": table["event"],
        }
    )
    fit = CoxPHFitter().fit(data, "time", "event")
    coef, se = fit.params_, fit.standard_errors_
    for name, true in (("z", 1.2), ("z_rad", 1.2), ("z_distractor", 0.0), ("area", 0.0)):
        assert abs(coef[name] - true) < 4 * se[name]
    shared = ["path_fraction", "path_appearance", "path_distractor_appearance"]
    assert (subjects.groupby("patient_id")[shared].nunique() == 1).all().all()
    abundance = plan_cohort(4000, 11)
    for column in ("patient_id", "centre", "age", "stage", "has_slide", "has_ct"):
        pd.testing.assert_series_equal(subjects[column], abundance[column])
    for column in ("rad_fraction", "path_nuisance", "rad_nuisance"):
        np.testing.assert_array_equal(subjects[column], abundance[column])
    np.testing.assert_allclose(subjects["path_fraction"], 0.02 + abundance["path_fraction"] / 2)


@pytest.mark.parametrize("seed", range(4))
def test_layout_has_one_compact_region_and_a_disjoint_distractor_of_its_size(seed):
    """The region covers the requested fraction of the tissue (to one cell), the distractor
    exactly as many cells; both lie in the tissue drawn from the same stream as an abundance
    layout's; each is one compact blob (most of it one connected piece, a small extent)."""
    fraction = np.random.default_rng([seed, 9]).uniform(0.02, 0.04)
    layout = slides.focal_layout(np.random.default_rng(seed), (1536, 1024), 0.5, fraction, 0.2)
    same_stream = slides.slide_layout(np.random.default_rng(seed), (1536, 1024), 0.5, 0.03, 0.2)
    np.testing.assert_array_equal(layout.tissue, same_stream.tissue)
    region = layout.labels == slides.PLANTED
    distractor = layout.labels == slides.DISTRACTOR
    cells = int(layout.tissue.sum())
    assert abs(region.sum() / cells - fraction) <= 0.5 / cells
    assert distractor.sum() == region.sum()
    assert abs(layout.fraction(slides.NUISANCE) - 0.2) <= 0.5 / cells
    for blob in (region, distractor):
        components, _ = ndimage.label(blob)
        assert np.bincount(components.ravel())[1:].max() >= 0.85 * blob.sum()
        rows, cols = np.nonzero(blob)
        diameter = 2 * math.sqrt(blob.sum() / math.pi)
        assert max(np.ptp(rows), np.ptp(cols)) < 2.0 * diameter


def test_region_nuclei_grow_with_its_score_and_nothing_else_moves():
    """Rendered from the same random stream, a larger region score z gives larger nuclei in the
    region (more of it covered by nuclei, a higher optical density) and leaves every pixel
    beyond a nucleus' reach from the region unchanged; the distractor's score moves only the
    distractor."""
    layout = slides.focal_layout(np.random.default_rng(5), (1024, 768), 0.5, 0.04, 0.1)

    def render(z: float, z_distractor: float) -> np.ndarray:
        scores = {slides.PLANTED: z, slides.DISTRACTOR: z_distractor}
        return slides.render_slide(np.random.default_rng(6), layout, "B", scores)

    region = _level0(layout.labels == slides.PLANTED, layout.cell_px)
    distractor = _level0(layout.labels == slides.DISTRACTOR, layout.cell_px)
    reach = math.ceil(4.0 * math.exp(0.2 * 1.5) / layout.mpp) + 2
    images = [render(z, 0.0) for z in (-1.5, 0.0, 1.5)]
    coverage = [_nuclear_coverage(image, region) for image in images]
    density = [_optical_density(image)[region].mean() for image in images]
    assert coverage[0] + 0.05 < coverage[1] < coverage[2] - 0.05
    assert density[0] < density[1] < density[2]
    beyond = ndimage.distance_transform_edt(~region) > reach
    for image in images[1:]:
        np.testing.assert_array_equal(image[beyond], images[0][beyond])
    moved = render(0.0, 1.5)
    assert _nuclear_coverage(moved, distractor) > _nuclear_coverage(images[1], distractor) + 0.05
    beyond = ndimage.distance_transform_edt(~distractor) > reach
    np.testing.assert_array_equal(moved[beyond], images[1][beyond])


def test_nuclear_size_is_visible_through_the_stain_nuisance():
    """Across slides with their own layouts, centres and stain jitter, the share of the region
    covered by nuclei (measured from RGB with a per-slide threshold) ranks the region scores,
    and the distractor's share ranks the distractor's scores."""
    scores = np.linspace(-2.0, 2.0, 9)
    distractor_scores = np.random.default_rng(1).permutation(scores)
    measured = []
    for i, (z, z_distractor) in enumerate(zip(scores, distractor_scores)):
        rng = np.random.default_rng([i, 7])
        layout = slides.focal_layout(rng, (1536, 1024), 0.5, 0.03, 0.15)
        scored = {slides.PLANTED: z, slides.DISTRACTOR: z_distractor}
        rgb = slides.render_slide(rng, layout, "ABC"[i % 3], scored)
        measured.append(
            [
                _nuclear_coverage(rgb, _level0(layout.labels == label, layout.cell_px))
                for label in (slides.PLANTED, slides.DISTRACTOR)
            ]
        )
    region, distractor = np.array(measured).T
    assert spearmanr(scores, region)[0] > 0.9
    assert spearmanr(distractor_scores, distractor)[0] > 0.9


def test_focal_cohort_files(focal_cohort):
    """The ground truth of a written focal cohort: its columns, region and distractor maps of
    the same area that realise path_planted_fraction, the marker colours in the TIFFs, the
    hazard recomputed from the scores and the written CT map, the signal in
    ground_truth.json."""
    manifest = load_manifest(focal_cohort / "manifest.csv")
    truth = pd.read_csv(focal_cohort / "ground_truth.csv", keep_default_na=False)
    assert list(truth.columns) == list(TRUTH_COLUMNS + FOCAL_TRUTH_COLUMNS)
    summary = read_json(focal_cohort / "ground_truth.json")
    assert summary["signal"] == "focal" and summary["settings"]["params"]["signal"] == "focal"
    assert "path_appearance" in summary["hazard"]
    assert summary["slide"]["nucleus_log_radius_per_sd"] == slides.NUCLEUS_LOG_RADIUS_PER_SD
    assert summary["cohort"]["oracle_c_index"] == pytest.approx(
        oracle_c_index(plan_cohort(4, 0, FOCAL))
    )
    downsample = summary["slide"]["label_downsample"]
    assert len(manifest) == 4 and truth["has_slide"].all() and truth["has_ct"].all()
    for subject, (_, gt) in zip(manifest.subjects, truth.iterrows()):
        region = _png(focal_cohort / gt["slide_planted_path"])
        distractor = _png(focal_cohort / gt["slide_distractor_path"])
        tissue = _png(focal_cohort / gt["slide_tissue_path"])
        assert region.sum() == distractor.sum() and not (region & distractor).any()
        assert abs(region.sum() / tissue.sum() - gt["path_planted_fraction"]) <= 0.5 / tissue.sum()
        with openslide.OpenSlide(str(subject.slide_paths[0])) as osr:
            rgb = np.asarray(osr.read_region((0, 0), 0, osr.dimensions))[..., :3].astype(float)
        blue_red = rgb[..., 2] / np.maximum(rgb[..., 0], 1.0)
        marker = [np.median(blue_red[_level0(m, downsample)]) for m in (region, distractor)]
        assert marker[0] > marker[1] + 0.1  # purple region, deep pink distractor
        planted = sitk.GetArrayFromImage(sitk.ReadImage(str(focal_cohort / gt["ct_planted_path"])))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(subject.mask_path)))
        r = planted.sum() / mask.sum()
        eta = 1.2 * gt["path_appearance"] + 1.2 * (r - 0.075) / (0.15 / math.sqrt(12))
        assert eta == pytest.approx(gt["true_log_hazard"], abs=0.02)


def test_focal_cohort_resumes_and_other_signals_are_refused(
    focal_cohort, small_cohort, small_settings
):
    """A second run of the same focal cohort skips every subject; an abundance run into a
    focal folder and a focal run into an abundance folder are refused, before any write."""
    make_cohort(focal_cohort, 4, 0, params=FOCAL, **small_settings)
    results = read_json(focal_cohort / "synth_record.json")["results"]
    assert {r["status"] for r in results} == {"skipped"}
    with pytest.raises(FileExistsError, match="other settings"):
        make_cohort(focal_cohort, 4, 0, **small_settings)
    before = (small_cohort / "ground_truth.json").read_bytes()
    with pytest.raises(FileExistsError, match="other settings"):
        make_cohort(small_cohort, 6, 0, params=FOCAL, **small_settings)
    assert (small_cohort / "ground_truth.json").read_bytes() == before


def test_abundance_cohort_is_unchanged(small_cohort):
    """The default cohort has no focal columns, maps or keys, and its content (CSV and JSON
    bytes, slide pixels, label maps, CT voxels and geometry) is the pinned digest."""
    truth = pd.read_csv(small_cohort / "ground_truth.csv")
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    summary = read_json(small_cohort / "ground_truth.json")
    assert "signal" not in summary and "signal" not in summary["settings"]["params"]
    assert not list((small_cohort / "ground_truth").glob("*distractor*"))
    assert _cohort_digest(small_cohort) == ABUNDANCE_DIGEST


def test_synth_command_signal(tmp_path, capsys):
    """``--signal`` offers the cohort's signals (abundance by default), reaches SynthParams,
    and is refused for the other kinds."""
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    assert parser.parse_args(["synth", "x"]).signal == "abundance"
    assert all(parser.parse_args(["synth", "x", "--signal", s]).signal == s for s in SIGNALS)
    with pytest.raises(SystemExit):
        parser.parse_args(["synth", "x", "--signal", "size"])
    out = tmp_path / "out"
    args = parser.parse_args(
        ["synth", str(out), "--subjects", "2", "--signal", "focal", "--slide-size", "1024", "768"]
        + ["--workers", "1", "--no-progress"]
    )
    assert args.func(args) == 0
    assert read_json(out / "ground_truth.json")["settings"]["params"]["signal"] == "focal"
    assert len(list((out / "ground_truth").glob("*_slide_distractor.png"))) == 2
    args = parser.parse_args(
        ["synth", str(tmp_path / "sig"), "--kind", "signature", "--signal", "focal"]
    )
    assert args.func(args) == 1
    assert "radiopathomics kind only" in capsys.readouterr().out
    assert not (tmp_path / "sig").exists()


def test_bad_focal_settings_are_refused():
    with pytest.raises(ValueError, match="signal must be one of"):
        SynthParams(signal="size")
    with pytest.raises(ValueError, match="<= 0.25 for the focal signal"):
        SynthParams(signal="focal", path_max_fraction=0.3)
    with pytest.raises(ValueError, match="region_fraction"):
        slides.focal_layout(np.random.default_rng(0), (512, 512), 0.5, 0.3, 0.1)


def _level0(cells: np.ndarray, cell_px: int) -> np.ndarray:
    """A bool (rows, cols) cell map expanded to level-0 pixels."""
    return np.repeat(np.repeat(cells, cell_px, axis=0), cell_px, axis=1)


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) == 255


def _optical_density(rgb: np.ndarray) -> np.ndarray:
    """Summed RGB optical density -ln(I / 255) per pixel."""
    return -np.log(np.maximum(rgb.astype(np.float64), 1.0) / 255.0).sum(axis=-1)


def _nuclear_coverage(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Share of the mask's pixels darker than the two-class (isodata) threshold of their optical
    densities: the area covered by nuclei, whatever the slide's stain strength."""
    density = _optical_density(rgb)[mask]
    threshold = float(density.mean())
    for _ in range(50):
        threshold = 0.5 * (
            density[density <= threshold].mean() + density[density > threshold].mean()
        )
    return float((density > threshold).mean())


def _cohort_digest(folder: Path) -> str:
    """SHA-256 over a cohort's files but the run record: CSV and JSON bytes, decoded slide
    pixels and PNG maps, CT voxels with spacing and origin (codec versions do not matter)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name == "synth_record.json":
            continue
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.suffix == ".tiff":
            with openslide.OpenSlide(str(path)) as osr:
                digest.update(np.asarray(osr.read_region((0, 0), 0, osr.dimensions)).tobytes())
        elif path.suffix == ".png":
            digest.update(np.asarray(Image.open(path)).tobytes())
        elif path.name.endswith(".nii.gz"):
            image = sitk.ReadImage(str(path))
            digest.update(sitk.GetArrayFromImage(image).tobytes())
            digest.update(repr((image.GetSpacing(), image.GetOrigin())).encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_study_config_signal_reaches_the_cohort(tmp_path, monkeypatch):
    """``cohort: {synthetic: {signal: focal}}`` in a study config makes the focal cohort."""
    import radiograph.study as study
    import radiograph.synth as synth

    seen = {}
    monkeypatch.setattr(synth, "make_cohort", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(study, "load_manifest", lambda path: path)
    config = SimpleNamespace(
        cohort={"synthetic": {"subjects": 4, "seed": 1, "signal": "focal"}},
        manifest_path=tmp_path / "cohort" / "manifest.csv",
    )
    study.prepare_cohort(config, backend=None)
    assert seen["params"] == SynthParams(signal="focal")
