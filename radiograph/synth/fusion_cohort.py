"""Synthetic stand-in for the multi-modal platinum-resistance study (seeds/000).

``make_fusion_cohort`` writes ``cohort.csv`` (one row per patient: centre, label, clinical
variables, the four MRI sequence files, the mask file, the patch-feature file), per-subject
``mri/<id>_<SEQ>.npy`` volumes and ``mri/<id>_mask.npy``, ``patches/<id>.npy`` and
``ground_truth.json``. Patch features are generated directly as (N, 32) arrays standing in for
frozen foundation-model features of tiles (no slide is rendered: the encoder is not what this
cohort tests).

Label model (logistic): ``logit P(y=1) = -0.6 + 0.8 (figo_rank - 1.5) - 1.2 parpi
+ 1.3 z_hab + 1.0 z_path``, with ``z_hab`` and ``z_path`` independent standard normals:

- MRI: 4 sequences (T2, CE_T1, DWI, ADC); the tumour (a sphere) is split into 4 planted
  habitats (true k = 4) with distinct mean intensity profiles; habitat 3's share of the tumour
  and its ADC mean both rise with ``z_hab``; each centre scales all intensities (shift).
- Pathology: each patch is tumour-like or stroma-like (two prototype vectors + noise); the
  stroma share rises with ``z_path``; each centre adds its own offset (stain shift).
- Clinical: FIGO stage (ordinal I-IV, harmful), PARPi (categorical no/yes, protective), age,
  CA125 and menopause (no effect); a few blank cells (Unknown).

Availability follows the paper's pattern: centres C and D have no slides; about 15% of
patients lack MRI; about 10% of A/B patients lack a slide; a few have clinical data only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from radiograph.io.atomic import write_json

SEQUENCES = ("T2", "CE_T1", "DWI", "ADC")
CENTRES = {"A": 0.42, "B": 0.24, "C": 0.17, "D": 0.17}
HABITAT_PROFILES = np.array(
    [  # (4 habitats, 4 sequences) mean intensity, arbitrary units
        [1.0, 1.0, 1.0, 1.0],  # 1: moderate everywhere
        [1.2, 2.4, 1.0, 1.2],  # 2: strongest enhancement
        [1.4, 1.5, 2.4, 0.5],  # 3: high DWI, low ADC (label-tied share and ADC)
        [1.8, 0.4, 0.5, 2.2],  # 4: low vascularity, high ADC
    ]
)
PATCH_DIM = 32


def _volume(
    rng: np.random.Generator, size: int, z_hab: float, scale: float
) -> tuple[np.ndarray, np.ndarray, float]:
    grid = np.indices((size,) * 3).astype(np.float64) - (size - 1) / 2
    mask = (grid**2).sum(axis=0) <= (0.42 * size) ** 2
    share3 = 0.12 + 0.22 / (1 + np.exp(-1.5 * z_hab))
    rest = (1 - share3) * rng.dirichlet([6, 6, 6])
    shares = np.array([rest[0], rest[1], share3, rest[2]])
    # habitats as angular sectors around a random axis so that each is one connected blob
    axis = rng.normal(size=3)
    angle = np.arctan2(grid[1] * axis[0] - grid[0] * axis[1], grid[2] + 1e-9 * axis[2])
    order = np.argsort(np.argsort(angle[mask]))
    cut = np.cumsum(shares)[:-1] * mask.sum()
    habitat = np.searchsorted(cut, order, side="right")
    profile = HABITAT_PROFILES.copy()
    profile[2, 3] += 0.25 * z_hab
    image = np.zeros((4, *mask.shape), dtype=np.float32)
    image[:, mask] = (profile[habitat].T + 0.12 * rng.normal(size=(4, mask.sum()))) * scale
    image[:, ~mask] = 0.2 * scale + 0.05 * rng.normal(size=(4, (~mask).sum()))
    return image, mask, float(shares[2])


def make_fusion_cohort(
    out_dir: str | os.PathLike,
    seed: int = 0,
    *,
    patients: int = 400,
    size: int = 20,
    patches: int = 60,
    overwrite: bool = False,
) -> Path:
    """Write the cohort (module docstring) and return the path of ``cohort.csv``.

    Args:
        out_dir: output folder (must be empty or absent unless ``overwrite``).
        seed: seed of everything.
        patients: number of patients (>= 80).
        size: MRI volume edge in voxels (spacing 1 mm).
        patches: patches per slide.

    Raises:
        ValueError: ``patients`` < 80 or ``size`` < 12.
        FileExistsError: ``out_dir`` holds (non-hidden) files and ``overwrite`` is False.
    """
    if patients < 80:
        raise ValueError(f"patients: need >= 80 for 4 centres, got {patients}")
    if size < 12:
        raise ValueError(f"size: need >= 12 voxels, got {size}")
    out = Path(out_dir)
    if (
        out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not overwrite
    ):  # the CLI's lock file is hidden
        raise FileExistsError(f"{out} is not empty (use --overwrite)")
    (out / "mri").mkdir(parents=True, exist_ok=True)
    (out / "patches").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    centre = rng.choice(list(CENTRES), patients, p=list(CENTRES.values()))
    figo = rng.choice(4, patients, p=[0.1, 0.15, 0.5, 0.25])
    parpi = rng.integers(0, 2, patients)
    z_hab, z_path = rng.normal(size=patients), rng.normal(size=patients)
    eta = -0.6 + 0.8 * (figo - 1.5) - 1.2 * parpi + 1.3 * z_hab + 1.0 * z_path
    label = (rng.random(patients) < 1 / (1 + np.exp(-eta))).astype(int)
    has_mri = rng.random(patients) >= 0.15
    has_slide = np.isin(centre, ["A", "B"]) & (rng.random(patients) >= 0.10)
    mri_scale = {c: s for c, s in zip(CENTRES, (1.0, 1.15, 0.9, 1.3))}
    stain = {c: 0.3 * rng.normal(size=PATCH_DIM) for c in CENTRES}
    prototypes = rng.normal(size=(2, PATCH_DIM))
    rows, shares = [], {}
    for i in range(patients):
        sid = f"P{i:04d}"
        row = {
            "subject_id": sid,
            "patient_id": sid,
            "centre": centre[i],
            "label": label[i],
            "age": round(float(rng.normal(58, 9)), 1),
            "figo": "I II III IV".split()[figo[i]],
            "parpi": "yes" if parpi[i] else "no",
            "ca125": round(float(np.exp(rng.normal(6, 1))), 1),
            "menopause": "yes" if rng.random() < 0.6 else "no",
        }
        if rng.random() < 0.05:
            row["menopause"] = ""
        if rng.random() < 0.05:
            row["ca125"] = ""
        for seq in (*SEQUENCES, "mask"):
            row[seq] = ""
        row["patches"] = ""
        if has_mri[i]:
            image, mask, shares[sid] = _volume(rng, size, z_hab[i], mri_scale[centre[i]])
            for c, seq in enumerate(SEQUENCES):
                np.save(out / "mri" / f"{sid}_{seq}.npy", image[c])
                row[seq] = f"mri/{sid}_{seq}.npy"
            np.save(out / "mri" / f"{sid}_mask.npy", mask)
            row["mask"] = f"mri/{sid}_mask.npy"
        if has_slide[i]:
            stroma = 1 / (1 + np.exp(-(z_path[i] - 0.2)))
            kind = (rng.random(patches) < stroma).astype(int)
            x = prototypes[kind] + 1.2 * rng.normal(size=(patches, PATCH_DIM)) + stain[centre[i]]
            np.save(out / "patches" / f"{sid}.npy", x.astype(np.float32))
            row["patches"] = f"patches/{sid}.npy"
        rows.append(row)
    pd.DataFrame(rows).to_csv(out / "cohort.csv", index=False)
    write_json(
        out / "ground_truth.json",
        {
            "seed": seed,
            "patients": patients,
            "true_k": 4,
            "sequences": list(SEQUENCES),
            "habitat_profiles": HABITAT_PROFILES.tolist(),
            "label_model": "logit = -0.6 + 0.8 (figo_rank - 1.5) - 1.2 parpi + 1.3 z_hab "
            "+ 1.0 z_path",
            "planted_clinical": {"figo": "harmful", "parpi": "protective"},
            "planted_habitat": "habitat 3 (high DWI, low ADC): share and ADC mean rise with z_hab",
            "planted_pathology": "stroma-like patch share rises with z_path",
            "centre_mri_scale": mri_scale,
            "prevalence": float(label.mean()),
            "with_mri": int(has_mri.sum()),
            "with_slide": int(has_slide.sum()),
            "with_all": int((has_mri & has_slide).sum()),
            "clinical_only": int((~has_mri & ~has_slide).sum()),
        },
    )
    return out / "cohort.csv"
