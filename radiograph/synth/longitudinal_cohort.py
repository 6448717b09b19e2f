"""Synthetic stand-in for longitudinal response prediction (seeds/002, "MRP").

``make_longitudinal_cohort`` writes ``manifest.csv`` (one row per patient and phase, read by
:func:`radiograph.longitudinal.cohort.read_longitudinal_manifest` with :data:`PHASES` and
:data:`CLINICAL_VARIABLES`), DCE-MRI volumes ``mri/<id>_<phase>_*.nii.gz``, mammograms
``mg/<id>_<view>.png`` and ``ground_truth.json``.

Label model (logistic; pCR = 1; expected responder share 0.334 by Monte Carlo over the
mixture below, measured 0.31-0.41 over seeds 0-5 at 120 patients)::

    logit P(pCR) = -1.40 + s[subtype] + 0.4 (grade_rank - 1) + 1.4 u,    u ~ N(0, 1)

with ``s = {HR+: -0.9, HER2+: +0.8, TNBC: +1.0}`` (subtype drives response) and ``u`` the
tumour's chemosensitivity. The other clinical variables (age, bmi, menopause, ct_stage) carry
no effect.

Imaging signal, by phase (the later the phase, the more it tells):

- pre: the enhancing lesion (a soft-edged ellipsoid, radius ``r_pre`` ~ 0.15-0.27 of the
  volume edge) enhances by ``1 + 0.15 u``; the mammograms show the lesion and a breast
  density ``sigmoid(0.4 u + N(0, 1))``: both weak.
- mid and post: the lesion radius shrinks, ``log(r_phase / r_pre) = -f_phase (0.2 + 0.65 pCR
  + 0.2 u + 0.15 e)`` with ``e ~ N(0, 1)`` per patient, ``f_mid = 0.45``, ``f_post = 1``:
  responders shrink more, and more so by the end of treatment (the radius stays >= 2 voxels:
  residual enhancement remains visible at 32^3).

Volumes (1 mm voxels, int16 NIfTI in units of 1/1000, as scanners store integers):
enhancement ``A_centre (lesion + 0.15 smoothed parenchymal noise + 0.05 white noise) +
b_centre`` (the centre shift: scale ``A`` and offset ``b`` per centre). For 30% of the MRI
visits the manifest gives a pre-contrast volume (smooth tissue around 1) and a post-contrast
volume (pre + enhancement) instead of the subtraction, so the subtraction path is exercised.

Centres and their availability patterns (seeds/002: Duke pre-treatment MRI only; a centre
without the interim scan; FJPH mammography + pre/post MRI; NKI all phases); mammograms are
pre-treatment only:

====== ========= ======================================
centre share     visits
====== ========= ======================================
A      20%       pre: MRI
B      20%       pre: MRI; post: MRI
C      25%       pre: MRI + mammograms; post: MRI
D      35%       pre: MRI + mammograms; mid: MRI; post: MRI
====== ========= ======================================

A reader column ``reader_1`` holds a simulated radiologist's score at each visit: a noisy
reading of the shrinkage seen so far (pre: the enhancement only).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radiograph.fusion.clinical import UNKNOWN, ClinicalVariable
from radiograph.io.atomic import atomic_open, atomic_path, write_json

PHASES = ("pre", "mid", "post")
CLINICAL_VARIABLES = (
    ClinicalVariable("age", "continuous"),
    ClinicalVariable("bmi", "continuous"),
    ClinicalVariable("menopause", "categorical", ("pre", "post")),
    ClinicalVariable("subtype", "categorical", ("HR+", "HER2+", "TNBC")),
    ClinicalVariable("grade", "ordinal", ("1", "2", "3")),
    ClinicalVariable("ct_stage", "ordinal", ("T1", "T2", "T3", "T4")),
)
READER_COLUMNS = ("reader_1",)
#: centre -> (share of patients, {phase: modalities}).
CENTRES = {
    "A": (0.20, {"pre": ("mri",)}),
    "B": (0.20, {"pre": ("mri",), "post": ("mri",)}),
    "C": (0.25, {"pre": ("mri", "mammo"), "post": ("mri",)}),
    "D": (0.35, {"pre": ("mri", "mammo"), "mid": ("mri",), "post": ("mri",)}),
}
#: centre -> (enhancement scale A, offset b) of the volumes and mammograms.
CENTRE_SHIFT = {"A": (1.0, 0.0), "B": (1.25, 0.1), "C": (0.85, -0.1), "D": (1.1, 0.2)}
SUBTYPES = {"HR+": (0.55, -0.9), "HER2+": (0.25, 0.8), "TNBC": (0.20, 1.0)}
INTERCEPT = -1.40
GRADE_EFFECT = 0.4
U_EFFECT = 1.4
SHRINK_FRACTION = {"pre": 0.0, "mid": 0.45, "post": 1.0}
CONTRAST_PAIR_SHARE = 0.30
UNKNOWN_SHARE = 0.08
VIEWS = ("CC", "MLO")
MIN_RADIUS = 2.0
#: Stored volume value per unit of enhancement (int16 voxels).
VOLUME_UNITS = 1000
COLUMNS = (
    "patient_id",
    "centre",
    "phase",
    "volume_path",
    "pre_contrast_path",
    "post_contrast_path",
    "image_paths",
    "pcr",
    *[v.name for v in CLINICAL_VARIABLES],
    *READER_COLUMNS,
)


def make_longitudinal_cohort(
    out_dir: str | os.PathLike,
    seed: int = 0,
    *,
    patients: int = 240,
    shape: tuple[int, int, int] = (32, 32, 32),
    image_shape: tuple[int, int] = (128, 128),
    overwrite: bool = False,
) -> Path:
    """Write the cohort (module docstring) and return the path of ``manifest.csv``.

    Same seed and settings, same files. Every file is written atomically and the manifest
    last, so an interrupted run leaves no manifest.

    Args:
        out_dir: output folder (must be empty or absent unless ``overwrite``).
        seed: seed of everything (patient ``i`` draws from ``default_rng([seed, i])``).
        patients: number of patients (>= 40, so that each centre has patients of both classes).
        shape: volume grid (D, H, W) in voxels, 1 mm spacing (each size >= 16).
        image_shape: mammogram size (H, W) in pixels (each >= 32).
        overwrite: write into a non-empty ``out_dir``.

    Raises:
        ValueError: ``patients``, ``shape`` or ``image_shape`` out of range (named).
        FileExistsError: ``out_dir`` holds (non-hidden) files and ``overwrite`` is False.
    """
    if patients < 40:
        raise ValueError(f"patients: need >= 40 for 4 centres, got {patients}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"shape: need 3 sizes >= 16 voxels, got {shape}")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2 or min(image_shape) < 32:
        raise ValueError(f"image_shape: need 2 sizes >= 32 pixels, got {image_shape}")
    out = Path(out_dir)
    if (
        out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not overwrite
    ):  # the CLI's lock file is hidden
        raise FileExistsError(f"{out} is not empty (use --overwrite)")
    plan = np.random.default_rng(seed)
    shares = np.array([share for share, _ in CENTRES.values()])
    counts = np.floor(shares * patients).astype(int)
    counts[-1] += patients - counts.sum()
    centres = plan.permutation(np.repeat(list(CENTRES), counts))
    rows, truth = [], []
    for i, centre in enumerate(centres):
        rng = np.random.default_rng([seed, i])
        patient_rows, patient_truth = _patient(
            out, f"L{i:04d}", str(centre), rng, shape, image_shape
        )
        rows += patient_rows
        truth.append(patient_truth)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    labels = np.array([t["pcr"] for t in truth])
    write_json(
        out / "ground_truth.json",
        {
            "seed": seed,
            "patients": patients,
            "shape": list(shape),
            "image_shape": list(image_shape),
            "phases": list(PHASES),
            "label_model": f"logit P(pCR) = {INTERCEPT} + s[subtype] + {GRADE_EFFECT} "
            f"(grade_rank - 1) + {U_EFFECT} u, u ~ N(0, 1)",
            "subtype_effect": {k: v for k, (_, v) in SUBTYPES.items()},
            "noise_variables": ["age", "bmi", "menopause", "ct_stage"],
            "imaging_signal": {
                "pre": "lesion enhancement 1 + 0.15 u (MRI); breast density sigmoid(0.4 u + "
                "N(0,1)) (mammograms): weak",
                "mid": "log(r_mid / r_pre) = -0.45 (0.2 + 0.65 pCR + 0.2 u + 0.15 e)",
                "post": "log(r_post / r_pre) = -(0.2 + 0.65 pCR + 0.2 u + 0.15 e): strongest",
            },
            "availability": {
                c: {p: list(m) for p, m in pattern.items()} for c, (_, pattern) in CENTRES.items()
            },
            "centre_shift": {c: {"scale": a, "offset": b} for c, (a, b) in CENTRE_SHIFT.items()},
            "contrast_pair_share": CONTRAST_PAIR_SHARE,
            "prevalence": float(labels.mean()),
            "patient": truth,
        },
    )
    with atomic_open(out / "manifest.csv", "w", newline="") as fh:
        fh.write(buffer.getvalue())
    return out / "manifest.csv"


def _patient(
    out: Path,
    pid: str,
    centre: str,
    rng: np.random.Generator,
    shape: tuple[int, ...],
    image_shape: tuple[int, ...],
) -> tuple[list[dict[str, str]], dict]:
    """One patient's files, manifest rows and ground truth."""
    subtype = rng.choice(list(SUBTYPES), p=[p for p, _ in SUBTYPES.values()])
    grade = int(rng.choice(3, p=[0.2, 0.45, 0.35]))
    u = float(rng.normal())
    eta = INTERCEPT + SUBTYPES[subtype][1] + GRADE_EFFECT * grade + U_EFFECT * u
    pcr = int(rng.random() < 1 / (1 + np.exp(-eta)))
    shrink = 0.2 + 0.65 * pcr + 0.2 * u + 0.15 * float(rng.normal())
    clinical = {
        "age": f"{rng.normal(50, 10):.0f}",
        "bmi": f"{rng.normal(26, 4):.1f}",
        "menopause": str(rng.choice(["pre", "post"])),
        "subtype": UNKNOWN if rng.random() < UNKNOWN_SHARE else str(subtype),
        "grade": "" if rng.random() < UNKNOWN_SHARE else str(grade + 1),
        "ct_stage": str(rng.choice(["T1", "T2", "T3", "T4"], p=[0.15, 0.5, 0.25, 0.1])),
    }
    if rng.random() < 0.05:
        clinical["bmi"] = ""
    scale, offset = CENTRE_SHIFT[centre]
    r_pre = float(rng.uniform(0.15, 0.27)) * min(shape)
    lesion_centre = np.array(shape) / 2 + rng.uniform(-0.12, 0.12, 3) * np.array(shape)
    axes = rng.uniform(0.8, 1.2, 3)
    density = float(1 / (1 + np.exp(-(0.4 * u + rng.normal()))))
    pattern = CENTRES[centre][1]
    rows, radii, pairs = [], {}, []
    seen_score = 0.0
    for phase in (p for p in PHASES if p in pattern):
        radius = max(MIN_RADIUS, r_pre * float(np.exp(-SHRINK_FRACTION[phase] * shrink)))
        radii[phase] = radius
        row = dict.fromkeys(COLUMNS, "")
        row.update(patient_id=pid, centre=centre, phase=phase, pcr=str(pcr), **clinical)
        enhancement = _enhancement(
            rng, shape, lesion_centre, radius * axes, 1.0 + 0.15 * u if phase == "pre" else 1.0
        )
        enhancement = scale * enhancement + offset
        stem = f"mri/{pid}_{phase}"
        if rng.random() < CONTRAST_PAIR_SHARE:
            tissue = _tissue(rng, shape)
            _write_volume(out / f"{stem}_precontrast.nii.gz", tissue)
            _write_volume(out / f"{stem}_postcontrast.nii.gz", tissue + enhancement)
            row.update(
                pre_contrast_path=f"{stem}_precontrast.nii.gz",
                post_contrast_path=f"{stem}_postcontrast.nii.gz",
            )
            pairs.append(phase)
        else:
            _write_volume(out / f"{stem}_sub.nii.gz", enhancement)
            row["volume_path"] = f"{stem}_sub.nii.gz"
        if "mammo" in pattern[phase]:
            views = []
            for view in VIEWS:
                image = _mammogram(rng, image_shape, r_pre / min(shape), density, scale, offset)
                with atomic_path(out / f"mg/{pid}_{view}.png") as tmp:
                    _write_png(tmp, image)
                views.append(f"mg/{pid}_{view}.png")
            row["image_paths"] = ";".join(views)
        seen_score = (0.15 * u if phase == "pre" else -np.log(radius / r_pre)) + 0.3 * float(
            rng.normal()
        )
        row["reader_1"] = f"{1 / (1 + np.exp(-3 * (seen_score - 0.6))):.3f}"
        rows.append(row)
    truth = {
        "patient_id": pid,
        "centre": centre,
        "pcr": pcr,
        "u": u,
        "eta": eta,
        "subtype": str(subtype),
        "grade": grade + 1,
        "shrinkage": shrink,
        "radius": radii,
        "density": density,
        "contrast_pairs": pairs,
    }
    return rows, truth


def _enhancement(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    centre: np.ndarray,
    radii: np.ndarray,
    amplitude: float,
) -> np.ndarray:
    """(D, H, W) float64: a soft-edged ellipsoid lesion + smoothed parenchymal enhancement +
    white noise."""
    grid = np.indices(shape, dtype=np.float64)
    distance = np.sqrt(sum(((grid[k] - centre[k]) / radii[k]) ** 2 for k in range(3)))
    lesion = amplitude / (1 + np.exp((distance - 1) * 6))
    parenchyma = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    parenchyma *= 0.15 / (parenchyma.std() + 1e-12)
    return lesion + parenchyma + 0.05 * rng.normal(size=shape)


def _tissue(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """(D, H, W) float64 pre-contrast tissue: a smooth field around 1."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    return 1.0 + 0.3 * field / (field.std() + 1e-12) + 0.03 * rng.normal(size=shape)


def _mammogram(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    lesion_size: float,
    density: float,
    scale: float,
    offset: float,
) -> np.ndarray:
    """(H, W) uint16 grey: a half-disc breast, dense tissue in proportion to ``density``, a
    bright lesion of relative radius ``lesion_size``."""
    height, width = shape
    y, x = np.indices(shape, dtype=np.float64)
    breast = ((y - height / 2) / (0.45 * height)) ** 2 + (x / (0.85 * width)) ** 2 <= 1
    texture = ndimage.gaussian_filter(rng.normal(size=shape), 3.0)
    dense = texture > np.quantile(texture[breast], 1 - density)
    centre = rng.uniform([0.3 * height, 0.15 * width], [0.7 * height, 0.55 * width])
    distance = np.hypot(y - centre[0], x - centre[1]) / (lesion_size * min(shape))
    image = breast * (0.35 + 0.3 * dense + 0.6 / (1 + np.exp((distance - 1) * 5)))
    image = scale * image + 0.1 * offset + 0.02 * rng.normal(size=shape)
    return (np.clip(image, 0, 1.5) / 1.5 * 65535).astype(np.uint16)


def _write_volume(path: Path, values: np.ndarray) -> None:
    """Write ``values`` as int16 NIfTI in units of 1/1000 (MRI scanners store integers)."""
    image = sitk.GetImageFromArray(np.round(values * VOLUME_UNITS).astype(np.int16))
    image.SetSpacing((1.0, 1.0, 1.0))
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")
