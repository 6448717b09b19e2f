r"""The synthetic cohort: subjects, the known hazard, survival times, and the files on disk.

Subjects and patients
    ``n_subjects`` rows; about ``repeat_patients`` (10%) of the patients contribute two subjects
    (two samples of the same tumour: same outcome, label, centre and clinical covariates, and
    the same latent planted fractions and focal scores, but independently drawn and rendered
    images). Each
    patient is seen at centre A, B or C (stain and scanner appearance differ per centre).

Planted signal and the hazard (``signal="abundance"``, the default)
    Each patient's tumour has a latent pathology fraction :math:`p \sim U(0, p_\max)`
    (``p_max = 0.04``: planted area over tissue area on the slide) and radiology fraction
    :math:`r \sim U(0, r_\max)` (``r_max = 0.15``: planted volume over tumour volume). The true
    log relative hazard is

    .. math::

        \eta = \beta_p \, \frac{p - p_\max/2}{p_\max/\sqrt{12}}
             + \beta_r \, \frac{r - r_\max/2}{r_\max/\sqrt{12}},

    i.e. each fraction standardised with its population mean and standard deviation (so
    :math:`\eta` does not depend on the cohort size), :math:`\beta_p = \beta_r = 1.2`. The slide
    and the CT realise these fractions exactly (to one 4-um cell or one voxel). Everything else
    is nuisance with zero effect: the nuisance texture on the slide and the necrosis in the CT
    (fractions drawn independently of :math:`\eta`), stain and scanner appearance per centre and
    subject, tissue and tumour shapes, age and stage.

The focal signal (``signal="focal"``)
    The pathology term is set by what one small region of the slide looks like, not by how
    large it is. Each patient's slide has one compact region (one blob) covering a fraction
    :math:`f \sim U(p_\max/2, p_\max)` of the tissue (at most :math:`k^2 = 4\%`, what SPARRA's
    two TopK(0.2) layers keep), drawn independently of the hazard, marked by the planted
    class's purple, haematoxylin-rich background; and a disjoint distractor region of the same
    area marked by a deep pink, eosin-rich background under the same nuclei. The appearance is
    the nuclear size, a property independent of both markers and of the regions' size: with
    per-patient scores :math:`z, z' \sim N(0, 1)` independent, the nuclei of the region have
    radius :math:`4\,\mu m \cdot e^{0.2 z}` and those of the distractor
    :math:`4\,\mu m \cdot e^{0.2 z'}` (``slides.NUCLEUS_LOG_RADIUS_PER_SD``; x 1.22 per
    standard deviation, nuclear area x 1.49), and

    .. math::

        \eta = \beta_p \, z + \beta_r \, \frac{r - r_\max/2}{r_\max/\sqrt{12}} .

    The region's size, the distractor (its size and its appearance :math:`z'`) and the nuisance
    texture carry nothing. The CT keeps the abundance signal (the radiology term above, the
    same planted enhancing fraction :math:`r`): the question the focal signal asks is about the
    selection of slide patches, and a CT term that a mean already sees keeps the cohort's
    radiology side comparable with the abundance cohort's. ``rad_log_hr = 0`` gives a cohort
    whose hazard is the focal signal alone. ``path_max_fraction`` must be at most 0.25.

Survival times
    Event times are exponential with rate :math:`\lambda_0 e^{\eta}`,
    :math:`\lambda_0 = \ln 2 / 1500` per day (median 1500 days at :math:`\eta = 0`); censoring
    times are independent and exponential with the one rate that censors ``censored_fraction``
    (35%) of the cohort in expectation; ``time`` = min(event, censoring) in days, ``event`` =
    event observed. ``label`` = 1 when the patient's :math:`\eta` is above the median over
    patients, else 0.

Missing modalities
    ``missing_slide`` (10%) of the subjects have no slide and ``missing_ct`` (10%) no CT, never
    both; their planted fractions still exist (and drive the hazard) but are not observed.

Files (paths relative to ``OUT``)
    ``manifest.csv`` (the cohort manifest, see ``data_manifests/README.md``);
    ``slides/<subject>.tiff``; ``ct/<subject>_ct.nii.gz`` and ``ct/<subject>_mask.nii.gz``;
    ``ground_truth.csv`` (one row per subject, see :data:`TRUTH_COLUMNS`);
    ``ground_truth.json`` (the generation settings, the hazard and the oracle C-index);
    ``ground_truth/<subject>_slide_{planted,nuisance,tissue}.png`` (label maps at one pixel per
    4-um cell, downsample ``slide.label_downsample`` of ``ground_truth.json``; 255 = yes) and
    ``ground_truth/<subject>_ct_{planted,nuisance}.nii.gz`` (uint8, the CT's geometry). The
    focal signal adds ``ground_truth/<subject>_slide_distractor.png`` (the planted map is the
    focal region), the columns :data:`FOCAL_TRUTH_COLUMNS` of ``ground_truth.csv`` (abundance
    cohorts have neither) and ``signal: "focal"`` in ``ground_truth.json`` (and in its
    settings; a file without it is an abundance cohort's, as before the focal option existed);
    ``synth_record.json`` (the run record). Every file is written atomically; a second run on
    the same folder with the same settings resumes, with other settings it is refused unless
    ``overwrite``.

Randomness: patient-level draws use ``default_rng([seed, 0])``; subject ``i``'s slide and CT use
``default_rng([seed, 1, i])`` and ``default_rng([seed, 2, i])``, so the output is a pure function
of the seed and the settings, whatever the number of workers. The focal scores :math:`z, z'` use
``default_rng([seed, 3])``: the focal cohort of a seed has the abundance cohort's patients,
centres, covariates, missing modalities, CT fractions and image streams.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from radiograph.io.atomic import atomic_open, read_json, write_json
from radiograph.runner import Backend, Task, run_cohort
from radiograph.synth import SIGNALS, slides, volumes

MANIFEST_NAME = "manifest.csv"
TRUTH_CSV = "ground_truth.csv"
TRUTH_JSON = "ground_truth.json"
RECORD_NAME = "synth_record.json"
#: Columns of ``ground_truth.csv``.
TRUTH_COLUMNS = (
    "subject_id",
    "patient_id",
    "true_log_hazard",
    "path_planted_fraction",
    "rad_planted_fraction",
    "path_nuisance_fraction",
    "rad_nuisance_fraction",
    "has_slide",
    "has_ct",
    "slide_planted_path",
    "slide_nuisance_path",
    "slide_tissue_path",
    "ct_planted_path",
    "ct_nuisance_path",
)
#: Columns that the focal signal appends to ``ground_truth.csv``: the region's appearance score
#: z (sets the hazard), the distractor's z' (noise) and the distractor's label map.
FOCAL_TRUTH_COLUMNS = ("path_appearance", "path_distractor_appearance", "slide_distractor_path")
STAGES = (1, 2, 3, 4)
STAGE_PROBABILITIES = (0.45, 0.15, 0.25, 0.15)


@dataclass(frozen=True)
class SynthParams:
    """Settings of the cohort model (see the module docstring).

    Attributes:
        signal: what sets the pathology term of the hazard: ``"abundance"`` (the planted
            fraction) or ``"focal"`` (the appearance of one small region; its fraction is
            uniform in ``[path_max_fraction / 2, path_max_fraction]`` and has no effect).
        path_max_fraction: upper end of the uniform planted fraction of the tissue area.
        rad_max_fraction: upper end of the uniform planted fraction of the tumour volume.
        path_nuisance_range: range of the uniform nuisance-texture fraction of the tissue.
        rad_nuisance_range: range of the uniform necrosis fraction of the tumour.
        path_log_hr: log hazard ratio per population standard deviation of the pathology
            planted fraction (abundance) or of the region's appearance score (focal).
        rad_log_hr: the same for the radiology planted fraction.
        baseline_median_days: median event time at log hazard 0.
        censored_fraction: expected fraction of censored subjects, in [0, 1).
        missing_slide: fraction of subjects without a slide.
        missing_ct: fraction of subjects without a CT (never the same as those without a slide).
        repeat_patients: fraction of patients with two subjects.
        centres: centre names (keys of the slide and scanner appearance tables).
    """

    signal: str = "abundance"
    path_max_fraction: float = 0.04
    rad_max_fraction: float = 0.15
    path_nuisance_range: tuple[float, float] = (0.05, 0.25)
    rad_nuisance_range: tuple[float, float] = (0.0, 0.20)
    path_log_hr: float = 1.2
    rad_log_hr: float = 1.2
    baseline_median_days: float = 1500.0
    censored_fraction: float = 0.35
    missing_slide: float = 0.10
    missing_ct: float = 0.10
    repeat_patients: float = 0.10
    centres: tuple[str, ...] = ("A", "B", "C")

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}; got {self.signal!r}")
        if self.signal == "focal" and self.path_max_fraction > 0.25:
            raise ValueError(
                "path_max_fraction must be <= 0.25 for the focal signal (the region and the "
                f"distractor are each that large); got {self.path_max_fraction}"
            )
        for name in ("path_max_fraction", "rad_max_fraction"):
            if not 0.0 < getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must be in (0, 0.5]; got {getattr(self, name)}")
        for name in ("path_nuisance_range", "rad_nuisance_range"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high <= 0.5:
                raise ValueError(f"{name} must satisfy 0 <= low <= high <= 0.5; got {(low, high)}")
        for name in ("censored_fraction", "missing_slide", "missing_ct", "repeat_patients"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.missing_slide + self.missing_ct > 1.0:
            raise ValueError("missing_slide + missing_ct must be <= 1 (no subject lacks both)")
        if not self.baseline_median_days > 0:
            raise ValueError(f"baseline_median_days must be > 0; got {self.baseline_median_days}")
        known = set(slides.CENTRE_STAINS) & set(volumes.CENTRE_SCANNERS)
        if not self.centres or not set(self.centres) <= known:
            raise ValueError(f"centres must be among {sorted(known)}; got {self.centres}")


@dataclass(frozen=True)
class SubjectSpec:
    """What one worker needs to write one subject's files (paths absolute; None = skip).

    Attributes:
        index: position of the subject in the cohort (selects its random streams).
        seed: the cohort seed.
        centre: acquiring centre.
        path_fraction, path_nuisance: slide planted and nuisance fractions of the tissue.
        rad_fraction, rad_nuisance: CT planted and necrosis fractions of the tumour.
        slide_mpp: level-0 microns per pixel; slide_size: level-0 (width, height) px.
        ct_size: (x, y, z) voxels; ct_spacing: (x, y, z) mm.
        signal: ``"abundance"`` or ``"focal"`` (then ``path_fraction`` is the area of the
            region and of the distractor).
        path_appearance, path_distractor_appearance: focal: appearance scores z and z' of the
            region and of the distractor.
        slide, slide_planted, slide_nuisance, slide_tissue, slide_distractor: output files of
            the slide (the distractor's map for the focal signal only).
        ct, mask, ct_planted, ct_nuisance: output files of the CT.
    """

    index: int
    seed: int
    centre: str
    path_fraction: float
    path_nuisance: float
    rad_fraction: float
    rad_nuisance: float
    slide_mpp: float
    slide_size: tuple[int, int]
    ct_size: tuple[int, int, int]
    ct_spacing: tuple[float, float, float]
    signal: str = "abundance"
    path_appearance: float = 0.0
    path_distractor_appearance: float = 0.0
    slide: Path | None = None
    slide_planted: Path | None = None
    slide_nuisance: Path | None = None
    slide_tissue: Path | None = None
    slide_distractor: Path | None = None
    ct: Path | None = None
    mask: Path | None = None
    ct_planted: Path | None = None
    ct_nuisance: Path | None = None

    @property
    def outputs(self) -> tuple[Path, ...]:
        names = (
            "slide",
            "slide_planted",
            "slide_nuisance",
            "slide_tissue",
            "slide_distractor",
            "ct",
            "mask",
            "ct_planted",
            "ct_nuisance",
        )
        return tuple(p for p in (getattr(self, n) for n in names) if p is not None)


def true_log_hazard(
    path_value: np.ndarray, rad_fraction: np.ndarray, params: SynthParams
) -> np.ndarray:
    """The cohort's true log relative hazard (module docstring): the pathology variable
    (standardised planted fraction, or the focal region's appearance score, already standard)
    and the standardised radiology planted fraction, weighted by ``params.path_log_hr`` and
    ``params.rad_log_hr``.

    Args:
        path_value: (N,) abundance: planted fraction of the tissue area on the slide; focal:
            the region's appearance score z.
        rad_fraction: (N,) planted fraction of the tumour volume in the CT.
        params: the cohort settings (signal, maximum fractions and log hazard ratios).

    Returns:
        (N,) float64 log hazard ratios (population mean 0).
    """

    def standardise(value: np.ndarray, high: float) -> np.ndarray:
        return (np.asarray(value, dtype=np.float64) - high / 2.0) / (high / math.sqrt(12.0))

    if params.signal == "focal":
        path_term = np.asarray(path_value, dtype=np.float64)
    else:
        path_term = standardise(path_value, params.path_max_fraction)
    return params.path_log_hr * path_term + params.rad_log_hr * standardise(
        rad_fraction, params.rad_max_fraction
    )


def censoring_rate(hazard: np.ndarray, censored_fraction: float) -> float:
    """Rate mu of exponential censoring such that the expected censored fraction of subjects
    with exponential event hazards ``hazard`` (N,) is ``censored_fraction``:
    mean_i mu / (mu + hazard_i) = censored_fraction (0 for no censoring)."""
    if censored_fraction == 0.0:
        return 0.0
    hazard = np.asarray(hazard, dtype=np.float64)
    return float(
        brentq(
            lambda mu: np.mean(mu / (mu + hazard)) - censored_fraction,
            1e-12 * hazard.min(),
            1e12 * hazard.max(),
            xtol=1e-14,
            rtol=1e-12,
        )
    )


def plan_cohort(n_subjects: int, seed: int, params: SynthParams = SynthParams()) -> pd.DataFrame:
    """Draw the cohort table: one row per subject, everything but the images.

    Args:
        n_subjects: number of subjects (>= 2).
        seed: random seed.
        params: cohort settings.

    Returns:
        DataFrame with columns subject_id, patient_id, centre, age, stage, path_fraction,
        rad_fraction, path_nuisance, rad_nuisance, true_log_hazard, time (days), event (0/1),
        label (0/1), has_slide, has_ct (bool), and for the focal signal path_appearance and
        path_distractor_appearance (z and z'), in subject order (a patient's subjects
        adjacent).
    """
    if n_subjects < 2:
        raise ValueError(f"n_subjects must be >= 2; got {n_subjects}")
    rng = np.random.default_rng([seed, 0])
    repeats = int(round(n_subjects * params.repeat_patients / (1.0 + params.repeat_patients)))
    n_patients = n_subjects - repeats
    twice = np.zeros(n_patients, bool)
    twice[rng.choice(n_patients, size=repeats, replace=False)] = True
    patient_of = np.repeat(np.arange(n_patients), np.where(twice, 2, 1))

    focal = params.signal == "focal"
    path_low = params.path_max_fraction / 2.0 if focal else 0.0
    path = rng.uniform(path_low, params.path_max_fraction, n_patients)
    rad = rng.uniform(0.0, params.rad_max_fraction, n_patients)
    if focal:
        appearance, distractor = np.random.default_rng([seed, 3]).standard_normal((2, n_patients))
        eta = true_log_hazard(appearance, rad, params)
    else:
        eta = true_log_hazard(path, rad, params)
    hazard = math.log(2.0) / params.baseline_median_days * np.exp(eta)
    event_time = rng.exponential(1.0 / hazard)
    mu = censoring_rate(hazard, params.censored_fraction)
    censor_time = rng.exponential(1.0 / mu, n_patients) if mu > 0 else np.full(n_patients, np.inf)
    time = np.maximum(np.round(np.minimum(event_time, censor_time), 1), 0.1)
    event = (event_time <= censor_time).astype(int)
    label = (eta > np.median(eta)).astype(int)
    centre = rng.choice(np.asarray(params.centres), n_patients)
    age = np.clip(np.round(rng.normal(62.0, 11.0, n_patients)), 25, 90).astype(int)
    stage = rng.choice(STAGES, n_patients, p=STAGE_PROBABILITIES)

    n_no_slide = int(round(params.missing_slide * n_subjects))
    n_no_ct = int(round(params.missing_ct * n_subjects))
    order = rng.permutation(n_subjects)
    has_slide = np.ones(n_subjects, bool)
    has_ct = np.ones(n_subjects, bool)
    has_slide[order[:n_no_slide]] = False
    has_ct[order[n_no_slide : n_no_slide + n_no_ct]] = False
    path_nuisance = rng.uniform(*params.path_nuisance_range, n_subjects)
    rad_nuisance = rng.uniform(*params.rad_nuisance_range, n_subjects)

    width = max(3, len(str(n_subjects)))
    p = patient_of
    table = pd.DataFrame(
        {
            "subject_id": [f"syn{i + 1:0{width}d}" for i in range(n_subjects)],
            "patient_id": [f"pat{j + 1:0{width}d}" for j in p],
            "centre": centre[p],
            "age": age[p],
            "stage": stage[p],
            "path_fraction": path[p],
            "rad_fraction": rad[p],
            "path_nuisance": path_nuisance,
            "rad_nuisance": rad_nuisance,
            "true_log_hazard": eta[p],
            "time": time[p],
            "event": event[p],
            "label": label[p],
            "has_slide": has_slide,
            "has_ct": has_ct,
        }
    )
    if focal:
        table["path_appearance"] = appearance[p]
        table["path_distractor_appearance"] = distractor[p]
    return table


def make_cohort(
    out_dir: str | os.PathLike,
    n_subjects: int,
    seed: int,
    *,
    slide_mpp: float = 0.5,
    slide_size: tuple[int, int] | None = None,
    ct_size: tuple[int, int, int] = volumes.DEFAULT_CT_SIZE,
    ct_spacing: tuple[float, float, float] = volumes.DEFAULT_CT_SPACING,
    params: SynthParams = SynthParams(),
    workers: int | None = None,
    backend: Backend | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic cohort with a planted prognostic signal (module docstring).

    Args:
        out_dir: output folder (created).
        n_subjects: number of subjects.
        seed: random seed; the same seed and settings give the same files.
        slide_mpp: level-0 microns per pixel of the slides (0.5: objective 20x; 0.25: 40x).
        slide_size: level-0 (width, height) px; default: a 1500 x 1000 um field of view
            (3000 x 2000 px at 0.5 um/px). Rounded down to whole 4-um cells.
        ct_size: CT (x, y, z) voxels.
        ct_spacing: CT (x, y, z) voxel spacing in mm.
        params: cohort model settings.
        workers: local worker processes (None: number of cores; 1: in this process).
        backend: a runner backend (overrides ``workers``), e.g. Dask.
        overwrite: replace a cohort with other settings already in ``out_dir`` and rewrite
            existing files (otherwise a cohort with the same settings is resumed).
        progress: show a progress bar.

    Returns:
        Path of ``manifest.csv``.

    Raises:
        ValueError: slides or CT field of view too small, or bad ``n_subjects``.
        FileExistsError: ``out_dir`` holds a cohort made with other settings.
        RuntimeError: some subjects could not be written (the message lists them).
    """
    out = Path(out_dir)
    if slide_size is None:
        slide_size = slides.default_slide_size(slide_mpp)
    rows, cols = slides.layout_shape(slide_size, slide_mpp)
    cell = slides.cell_pixels(slide_mpp)
    slide_size = (cols * cell, rows * cell)
    volumes.field_of_view(ct_size, ct_spacing)
    table = plan_cohort(n_subjects, seed, params)
    settings = {
        "seed": int(seed),
        "n_subjects": int(n_subjects),
        "params": _params_settings(params),
        "slide": {"mpp": float(slide_mpp), "size": list(slide_size)},
        "ct": {"size": [int(s) for s in ct_size], "spacing": [float(s) for s in ct_spacing]},
    }
    truth_json = out / TRUTH_JSON
    if truth_json.exists() and not overwrite:
        existing = read_json(truth_json).get("settings")
        if existing != _jsonable(settings):
            raise FileExistsError(
                f"{out} holds a synthetic cohort made with other settings "
                f"({truth_json}); choose another folder or pass overwrite"
            )
    write_json(truth_json, _summary(settings, table, slide_mpp, params.signal))

    specs = [
        _subject_spec(out, row, i, seed, slide_mpp, slide_size, ct_size, ct_spacing, params)
        for i, row in enumerate(table.itertuples(index=False))
    ]
    tasks = [
        Task(key=sid, outputs=spec.outputs, payload=spec)
        for sid, spec in zip(table["subject_id"], specs)
    ]
    record = run_cohort(
        tasks,
        write_subject,
        record_path=out / RECORD_NAME,
        stage="synth",
        workers=workers,
        backend=backend,
        overwrite=overwrite,
        progress=progress,
    )
    if record.failed:
        raise RuntimeError(f"synthetic cohort {out}: some subjects failed\n{record.report()}")
    _write_truth_csv(out / TRUTH_CSV, table, specs, out, params.signal)
    return _write_manifest(out / MANIFEST_NAME, table, specs, out)


def write_subject(task: Task) -> None:
    """Write one subject's slide, CT, mask and ground-truth maps (a runner stage function)."""
    spec: SubjectSpec = task.payload
    if spec.slide is not None:
        rng = np.random.default_rng([spec.seed, 1, spec.index])
        if spec.signal == "focal":
            layout = slides.focal_layout(
                rng, spec.slide_size, spec.slide_mpp, spec.path_fraction, spec.path_nuisance
            )
            scores = {
                slides.PLANTED: spec.path_appearance,
                slides.DISTRACTOR: spec.path_distractor_appearance,
            }
        else:
            layout = slides.slide_layout(
                rng, spec.slide_size, spec.slide_mpp, spec.path_fraction, spec.path_nuisance
            )
            scores = None
        slides.write_slide(
            spec.slide, slides.render_slide(rng, layout, spec.centre, scores), spec.slide_mpp
        )
        slides.write_layout_png(spec.slide_planted, layout.labels == slides.PLANTED)
        slides.write_layout_png(spec.slide_nuisance, layout.labels == slides.NUISANCE)
        slides.write_layout_png(spec.slide_tissue, layout.tissue)
        if spec.slide_distractor is not None:
            slides.write_layout_png(spec.slide_distractor, layout.labels == slides.DISTRACTOR)
    if spec.ct is not None:
        rng = np.random.default_rng([spec.seed, 2, spec.index])
        layout = volumes.ct_layout(
            rng, spec.rad_fraction, spec.rad_nuisance, size=spec.ct_size, spacing=spec.ct_spacing
        )
        volumes.write_nifti(spec.ct, volumes.render_ct(rng, layout, spec.centre), layout)
        volumes.write_nifti(spec.mask, layout.tumour.astype(np.uint8), layout)
        volumes.write_nifti(
            spec.ct_planted, (layout.labels == volumes.PLANTED).astype(np.uint8), layout
        )
        volumes.write_nifti(
            spec.ct_nuisance, (layout.labels == volumes.NECROSIS).astype(np.uint8), layout
        )


def oracle_c_index(table: pd.DataFrame) -> float | None:
    """Harrell's C-index of the true log hazard against the cohort's times and events (None
    when no pair of subjects is comparable, e.g. no event)."""
    from sksurv.exceptions import NoComparablePairException
    from sksurv.metrics import concordance_index_censored

    try:
        return float(
            concordance_index_censored(
                table["event"].to_numpy(bool),
                table["time"].to_numpy(float),
                table["true_log_hazard"].to_numpy(float),
            )[0]
        )
    except NoComparablePairException:
        return None


def _subject_spec(
    out: Path,
    row: Any,
    index: int,
    seed: int,
    slide_mpp: float,
    slide_size: tuple[int, int],
    ct_size: tuple[int, int, int],
    ct_spacing: tuple[float, float, float],
    params: SynthParams,
) -> SubjectSpec:
    sid = row.subject_id
    truth = out / "ground_truth"
    focal = params.signal == "focal"
    slide_files: dict[str, Path | None] = {}
    if row.has_slide:
        slide_files = {
            "slide": out / "slides" / f"{sid}.tiff",
            "slide_planted": truth / f"{sid}_slide_planted.png",
            "slide_nuisance": truth / f"{sid}_slide_nuisance.png",
            "slide_tissue": truth / f"{sid}_slide_tissue.png",
        }
        if focal:
            slide_files["slide_distractor"] = truth / f"{sid}_slide_distractor.png"
    scores: dict[str, float] = {}
    if focal:
        scores = {
            "path_appearance": float(row.path_appearance),
            "path_distractor_appearance": float(row.path_distractor_appearance),
        }
    ct_files: dict[str, Path | None] = {}
    if row.has_ct:
        ct_files = {
            "ct": out / "ct" / f"{sid}_ct.nii.gz",
            "mask": out / "ct" / f"{sid}_mask.nii.gz",
            "ct_planted": truth / f"{sid}_ct_planted.nii.gz",
            "ct_nuisance": truth / f"{sid}_ct_nuisance.nii.gz",
        }
    return SubjectSpec(
        index=index,
        seed=int(seed),
        centre=str(row.centre),
        path_fraction=float(row.path_fraction),
        path_nuisance=float(row.path_nuisance),
        rad_fraction=float(row.rad_fraction),
        rad_nuisance=float(row.rad_nuisance),
        slide_mpp=float(slide_mpp),
        slide_size=tuple(slide_size),
        ct_size=tuple(int(s) for s in ct_size),
        ct_spacing=tuple(float(s) for s in ct_spacing),
        signal=params.signal,
        **scores,
        **slide_files,
        **ct_files,
    )


def _relative(path: Path | None, out: Path) -> str:
    return "" if path is None else path.relative_to(out).as_posix()


def _write_manifest(path: Path, table: pd.DataFrame, specs: list[SubjectSpec], out: Path) -> Path:
    manifest = pd.DataFrame(
        {
            "subject_id": table["subject_id"],
            "patient_id": table["patient_id"],
            "centre": table["centre"],
            "time": table["time"],
            "time_unit": "days",
            "event": table["event"],
            "label": table["label"],
            "age": table["age"],
            "stage": table["stage"],
            "slide_paths": [_relative(s.slide, out) for s in specs],
            "volume_paths": [_relative(s.ct, out) for s in specs],
            "mask_path": [_relative(s.mask, out) for s in specs],
        }
    )
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        manifest.to_csv(fh, index=False)
    return path


def _write_truth_csv(
    path: Path, table: pd.DataFrame, specs: list[SubjectSpec], out: Path, signal: str
) -> None:
    truth = pd.DataFrame(
        {
            "subject_id": table["subject_id"],
            "patient_id": table["patient_id"],
            "true_log_hazard": table["true_log_hazard"],
            "path_planted_fraction": table["path_fraction"],
            "rad_planted_fraction": table["rad_fraction"],
            "path_nuisance_fraction": table["path_nuisance"],
            "rad_nuisance_fraction": table["rad_nuisance"],
            "has_slide": table["has_slide"].astype(int),
            "has_ct": table["has_ct"].astype(int),
            "slide_planted_path": [_relative(s.slide_planted, out) for s in specs],
            "slide_nuisance_path": [_relative(s.slide_nuisance, out) for s in specs],
            "slide_tissue_path": [_relative(s.slide_tissue, out) for s in specs],
            "ct_planted_path": [_relative(s.ct_planted, out) for s in specs],
            "ct_nuisance_path": [_relative(s.ct_nuisance, out) for s in specs],
        },
        columns=list(TRUTH_COLUMNS),
    )
    if signal == "focal":
        truth["path_appearance"] = table["path_appearance"]
        truth["path_distractor_appearance"] = table["path_distractor_appearance"]
        truth["slide_distractor_path"] = [_relative(s.slide_distractor, out) for s in specs]
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        truth.to_csv(fh, index=False, float_format="%.10g")


def _params_settings(params: SynthParams) -> dict[str, Any]:
    """The ``params`` entry of the settings. Without ``signal`` for the abundance signal, so an
    abundance cohort's settings and ground_truth.json are those written before the focal option
    existed (and such a cohort still resumes)."""
    settings = asdict(params)
    if params.signal == "abundance":
        del settings["signal"]
    return settings


def _summary(
    settings: dict[str, Any], table: pd.DataFrame, slide_mpp: float, signal: str
) -> dict[str, Any]:
    """Content of ground_truth.json: settings, the hazard, label maps and cohort statistics
    (plus the signal, its hazard and the distractor's appearance for the focal signal)."""
    summary = {
        "settings": settings,
        "hazard": "true_log_hazard = path_log_hr * (p - p_max/2) / (p_max/sqrt(12)) + "
        "rad_log_hr * (r - r_max/2) / (r_max/sqrt(12)); p = path_planted_fraction, "
        "r = rad_planted_fraction; event rate = ln(2)/baseline_median_days * "
        "exp(true_log_hazard) per day",
        "slide": {
            "label_downsample": slides.cell_pixels(slide_mpp),
            "cell_um": slides.cell_pixels(slide_mpp) * slide_mpp,
            "levels_downsample": list(
                slides.pyramid_downsamples(tuple(settings["slide"]["size"][::-1]))
            ),
            "planted_appearance": asdict(slides.APPEARANCE[slides.PLANTED]),
            "tissue_appearance": asdict(slides.APPEARANCE[slides.TISSUE]),
            "nuisance_appearance": asdict(slides.APPEARANCE[slides.NUISANCE]),
        },
        "ct": {"hounsfield_units": {k: list(v) for k, v in volumes.HU.items()}},
        "cohort": {
            "subjects": int(len(table)),
            "patients": int(table["patient_id"].nunique()),
            "events": int(table["event"].sum()),
            "censored_fraction": float(1.0 - table["event"].mean()),
            "without_slide": int((~table["has_slide"]).sum()),
            "without_ct": int((~table["has_ct"]).sum()),
            "oracle_c_index": oracle_c_index(table),
        },
    }
    if signal == "focal":
        summary = {
            "signal": signal,
            **summary,
            "hazard": "true_log_hazard = path_log_hr * z + rad_log_hr * (r - r_max/2) / "
            "(r_max/sqrt(12)); z = path_appearance (N(0, 1) per patient: the focal region's "
            "nuclei have radius nucleus_um * exp(nucleus_log_radius_per_sd * z)), "
            "r = rad_planted_fraction; the region's and the distractor's area "
            "(path_planted_fraction) and the distractor's score (path_distractor_appearance) "
            "have no effect; event rate = ln(2)/baseline_median_days * exp(true_log_hazard) "
            "per day",
        }
        summary["slide"]["distractor_appearance"] = asdict(slides.APPEARANCE[slides.DISTRACTOR])
        summary["slide"]["nucleus_log_radius_per_sd"] = slides.NUCLEUS_LOG_RADIUS_PER_SD
    return _jsonable(summary)


def _jsonable(obj: Any) -> Any:
    """Tuples to lists, numpy scalars to Python (so settings compare equal after a JSON trip)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
