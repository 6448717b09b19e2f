"""Synthetic stand-in for the pathomics-signature study (seed 003): ``radiograph synth --kind
signature``.

Three centres (default 360 + 180 + 120 subjects). Each subject has one slide whose tumour ROI
(a wobbly polygon, written as QuPath GeoJSON in level-0 pixels) is tiled into a patch grid;
every patch belongs to a planted tissue class (0 desmoplastic stroma, 1 necrosis: poor; 2
immune infiltrate: protective; 3 neutral) laid out as Voronoi blobs, and its feature vector is
the class mean plus noise plus a small centre shift (frozen-encoder features stand-in: no slide
pixels are rendered, the patch features are written directly in the feature-store layout,
``features/pathology/<subject>/<subject>.h5``).

Planted hazard (log scale, per subject)::

    z = standardised(f0 + f1 - f2)            (f_c: share of the subject's patches in class c)
    high = z > 0                               (the true risk group)
    lp = 1.0 z + 0.35 (t_stage - 2) + 0.3 n_stage + b_centre
         + chemo * (-0.9 if high else 0) + ca19_9_high * (0 if high else 0.8)

with centre frailty ``b_centre ~ N(0, 0.25^2)``. Recurrence ``T_r`` is Weibull (shape 1.2,
median about 20 months at lp = 0); death follows recurrence after an exponential interval
(mean 14 months); administrative censoring is uniform on 24..84 months. RFS = min(T_r, C),
OS = min(T_r + D, C), so RFS <= OS. Adjuvant chemotherapy is given to ~75% at random
(independent of risk: the planted interaction is the only treatment effect).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.path import Path as MplPath

from radiograph.io.features import FeatureSet, write_features

TISSUE_CLASSES = ("desmoplastic", "necrosis", "immune", "neutral")
TRUTH_CSV = "ground_truth.csv"
TRUTH_JSON = "ground_truth.json"


@dataclass(frozen=True)
class SignatureSynthParams:
    """Settings of the synthetic signature cohort (defaults as in the module docstring).

    Attributes:
        centres: centre name -> subjects.
        feature_dim: patch feature dimension D.
        patch_px: patch side in level-0 pixels (224 px at 0.5 um/px).
        grid_patches: ROI diameter in patches (about 0.6 * grid_patches^2 patches per slide).
        feature_noise: patch feature noise SD (class means have SD 1).
        centre_shift: SD of a centre's shift of every feature.
        beta_z, beta_t, beta_n: planted log-hazard coefficients.
        chemo_high, ca199_low: planted treatment effect in the high-risk group and biomarker
            effect in the low-risk group (log HR).
        frailty_sd: SD of the centre frailty.
        chemo_rate: share treated.
    """

    centres: tuple[tuple[str, int], ...] = (("ZS", 360), ("TJ", 180), ("SZ", 120))
    feature_dim: int = 16
    patch_px: int = 224
    grid_patches: int = 24
    feature_noise: float = 1.0
    centre_shift: float = 0.2
    beta_z: float = 1.0
    beta_t: float = 0.35
    beta_n: float = 0.3
    chemo_high: float = -0.9
    ca199_low: float = 0.8
    frailty_sd: float = 0.25
    chemo_rate: float = 0.75


def make_signature_cohort(
    out_dir: str | os.PathLike,
    seed: int = 0,
    params: SignatureSynthParams = SignatureSynthParams(),
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``manifest.csv``, ``features/``, ``rois/``, ``ground_truth.csv`` and
    ``ground_truth.json`` to ``out_dir``; returns the manifest path.

    Raises:
        FileExistsError: ``out_dir/manifest.csv`` exists and ``overwrite`` is False.
    """
    out = Path(out_dir)
    if (out / "manifest.csv").exists() and not overwrite:
        raise FileExistsError(f"out_dir: {out / 'manifest.csv'} exists; pass overwrite=True")
    rng = np.random.default_rng(seed)
    p = params
    means = rng.normal(0.0, 1.0, (len(TISSUE_CLASSES), p.feature_dim))
    rows = []
    index = 0
    for centre, n in p.centres:
        shift = rng.normal(0.0, p.centre_shift, p.feature_dim)
        frailty = float(rng.normal(0.0, p.frailty_sd))
        for _ in range(n):
            sid = f"{centre}-{index:04d}"
            index += 1
            ring, coords, classes = _slide(rng, p)
            features = (
                means[classes]
                + shift
                + rng.normal(0.0, p.feature_noise, (len(classes), p.feature_dim))
            )
            write_features(
                out / "features" / "pathology" / sid / f"{sid}.h5",
                FeatureSet(
                    features,
                    coords,
                    {
                        "subject_id": sid,
                        "modality": "pathology",
                        "encoder": "synthetic",
                        "patch_size_level0": p.patch_px,
                        "mpp": 0.5,
                        "level0_mpp": 0.5,
                    },
                ),
            )
            _write_geojson(out / "rois" / f"{sid}.geojson", ring)
            fractions = np.bincount(classes, minlength=len(TISSUE_CLASSES)) / len(classes)
            rows.append(
                {
                    "subject_id": sid,
                    "patient_id": sid,
                    "centre": centre,
                    "frailty": frailty,
                    "raw": fractions[0] + fractions[1] - fractions[2],
                    **{f"f_{c}": f for c, f in zip(TISSUE_CLASSES, fractions)},
                }
            )
    table = pd.DataFrame(rows)
    table["z"] = (table["raw"] - table["raw"].mean()) / table["raw"].std()
    n = len(table)
    table["high_true"] = (table["z"] > 0).astype(int)
    table["age"] = rng.normal(64, 9, n).round()
    table["t_stage"] = rng.choice([1, 2, 3], n, p=[0.25, 0.55, 0.2])
    table["n_stage"] = rng.choice([0, 1, 2], n, p=[0.6, 0.33, 0.07])
    table["tnm_stage"] = np.clip(np.maximum(table["t_stage"] - 1, 0) + table["n_stage"] + 1, 1, 4)
    table["ca19_9_high"] = (rng.random(n) < 0.35).astype(int)
    table["chemo"] = (rng.random(n) < p.chemo_rate).astype(int)
    lp = (
        p.beta_z * table["z"]
        + p.beta_t * (table["t_stage"] - 2)
        + p.beta_n * table["n_stage"]
        + table["frailty"]
        + table["chemo"] * np.where(table["high_true"] == 1, p.chemo_high, 0.0)
        + table["ca19_9_high"] * np.where(table["high_true"] == 1, 0.0, p.ca199_low)
    )
    table["log_hazard"] = lp
    shape, scale = 1.2, 20.0 / np.log(2.0) ** (1 / 1.2)
    t_rec = scale * (rng.exponential(1.0, n) / np.exp(lp)) ** (1 / shape)
    t_death = t_rec + rng.exponential(14.0, n)
    censor = rng.uniform(24.0, 84.0, n)
    table["rfs_time"] = np.minimum(t_rec, censor).round(2).clip(0.01)
    table["rfs_event"] = (t_rec <= censor).astype(int)
    table["os_time"] = np.maximum(np.minimum(t_death, censor).round(2), table["rfs_time"])
    table["os_event"] = (t_death <= censor).astype(int)
    manifest = table[["subject_id", "patient_id", "centre"]].assign(
        time=table["os_time"],
        time_unit="months",
        event=table["os_event"],
        os_time=table["os_time"],
        os_event=table["os_event"],
        rfs_time=table["rfs_time"],
        rfs_event=table["rfs_event"],
        age=table["age"],
        t_stage=table["t_stage"],
        n_stage=table["n_stage"],
        tnm_stage=table["tnm_stage"],
        ca19_9_high=table["ca19_9_high"],
        chemo=table["chemo"],
    )
    out.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out / "manifest.csv", index=False)
    table.to_csv(out / TRUTH_CSV, index=False)
    (out / TRUTH_JSON).write_text(
        json.dumps(
            {
                "seed": seed,
                "params": asdict(p),
                "tissue_classes": TISSUE_CLASSES,
                "poor_classes": [0, 1],
                "protective_classes": [2],
                "features": "features/pathology/<subject>/<subject>.h5 (no slide pixels rendered)",
                "rois": "rois/<subject>.geojson (QuPath GeoJSON, level-0 pixels)",
            },
            indent=2,
        )
    )
    return out / "manifest.csv"


def _slide(
    rng: np.random.Generator, p: SignatureSynthParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ROI ring (V, 2), the level-0 patch coords inside it (N, 2) and patch classes (N,)."""
    size = p.grid_patches * p.patch_px
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    radius = 0.45 * size * (1 + 0.12 * np.sin(3 * angles + rng.uniform(0, 6)))
    ring = np.stack([size / 2 + radius * np.cos(angles), size / 2 + radius * np.sin(angles)], 1)
    ring = ring + p.patch_px  # a margin of one patch from the slide origin
    grid = np.arange(p.grid_patches + 2) * p.patch_px
    gx, gy = np.meshgrid(grid, grid)
    coords = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.int64)
    coords = coords[MplPath(ring).contains_points(coords + p.patch_px / 2)]
    weights = rng.dirichlet([1.0, 0.6, 1.0, 1.5])
    seeds = rng.uniform(p.patch_px, size + p.patch_px, (12, 2))
    seed_class = rng.choice(len(TISSUE_CLASSES), 12, p=weights)
    nearest = np.argmin(((coords[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
    return ring, coords, seed_class[nearest]


def _write_geojson(path: Path, ring: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    closed = [*ring.round(1).tolist(), ring[0].round(1).tolist()]
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [closed]},
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Tumor"},
                        },
                    }
                ],
            }
        )
    )
