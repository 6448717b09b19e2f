"""A small longitudinal cohort with a planted imaging signal, shared by the training and
device tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from radiograph.fusion.clinical import ClinicalVariable
from radiograph.longitudinal.train import PatientImages

VARIABLES = (
    ClinicalVariable("age", "continuous"),
    ClinicalVariable("subtype", "categorical", ("HR+", "HER2+", "TNBC")),
    ClinicalVariable("grade", "ordinal", ("1", "2", "3")),
)


def _lesion(size: int, radius: float, rng: np.random.Generator, dims: int = 3) -> np.ndarray:
    grid = np.indices((size,) * dims) - (size - 1) / 2
    image = (np.sqrt((grid**2).sum(0)) <= radius).astype(np.float32)
    return image + 0.3 * rng.standard_normal(image.shape).astype(np.float32)


def _cohort(n: int, seed: int, size: int = 12) -> tuple[list[PatientImages], pd.DataFrame]:
    """Planted signal: responders' lesions shrink to radius 1 at the last phase, the others
    stay at 4; every patient has a random non-empty subset of 3 MRI phases (the pre phase
    always) and 0-2 mammogram views."""
    rng = np.random.default_rng(seed)
    patients, rows = [], []
    for i in range(n):
        label = int(i % 3 == 0)
        phases = [0] + [k for k in (1, 2) if rng.random() < 0.7]
        mri = tuple((k, _lesion(size, 4.0 if (k < 2 or not label) else 1.0, rng)) for k in phases)
        mammo = tuple((0, _lesion(size, 3.0, rng, 2)) for _ in range(int(rng.integers(0, 3))))
        patients.append(PatientImages(f"P{i:03d}", label, mri, mammo))
        rows.append(
            {
                "age": "" if rng.random() < 0.2 else str(int(rng.integers(30, 80))),
                "subtype": ["HR+", "HER2+", "TNBC", ""][int(rng.integers(0, 4))],
                "grade": str(int(rng.integers(1, 4))),
            }
        )
    return patients, pd.DataFrame(rows, index=[p.patient_id for p in patients])
