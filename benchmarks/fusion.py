"""Habitat K-means fitting at 10^6 tumour voxels (issue 18: under 10 s on 2 cores).

Fits :meth:`radiograph.radiology.habitats.HabitatModel.fit` (k = 2..10 by Calinski-Harabasz,
4 channels, 4 planted habitats) on 250 synthetic tumours of 4,000 voxels each (10^6 voxels
pooled) and prints wall time per setting: every k scored on all voxels, k chosen on a 10^5
subsample and only that k fitted on all voxels (the study's default ``selection_voxels``), and
the study's default voxel sample (2,000 per subject); the peer in the same run is
scikit-learn's MiniBatchKMeans over the same 10^6 voxels and k range.

    .venv/bin/python benchmarks/fusion.py [--subjects 250] [--voxels 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import calinski_harabasz_score

from radiograph.radiology.habitats import HabitatModel
from radiograph.synth.fusion_cohort import HABITAT_PROFILES


def tumours(subjects: int, voxels: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image (4, voxels, 1, 1), mask) per subject, voxels drawn from the planted habitats."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(subjects):
        habitat = rng.integers(0, len(HABITAT_PROFILES), voxels)
        x = HABITAT_PROFILES[habitat].T + 0.12 * rng.normal(size=(4, voxels))
        out.append((x.reshape(4, voxels, 1, 1), np.ones((voxels, 1, 1), bool)))
    return out


def minibatch(samples: list[tuple[np.ndarray, np.ndarray]], seed: int = 0) -> int:
    x = np.concatenate([im[:, m].T for im, m in samples])
    z = (x - x.mean(0)) / x.std(0)
    scores = {}
    for k in range(2, 11):
        km = MiniBatchKMeans(k, n_init=3, batch_size=4096, random_state=seed).fit(z)
        scores[k] = calinski_harabasz_score(z, km.labels_)
    return max(scores, key=scores.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=250)
    parser.add_argument("--voxels", type=int, default=4000)
    args = parser.parse_args()
    samples = tumours(args.subjects, args.voxels)
    total = args.subjects * args.voxels
    print(f"{total:,} voxels, 4 channels, k = 2..10, planted k = 4")
    print(f"{'setting':70s} {'wall s':>8s} {'CPU s':>8s} {'k':>3s}")
    runs = [
        (
            "HabitatModel.fit all voxels, n_init=4, threads=1",
            dict(voxels_per_subject=args.voxels, n_init=4, threads=1),
        ),
        (
            "HabitatModel.fit all voxels, n_init=4, threads=all",
            dict(voxels_per_subject=args.voxels, n_init=4, threads=None),
        ),
        (
            "HabitatModel.fit all voxels, k chosen on 10^5, n_init=4, threads=1",
            dict(voxels_per_subject=args.voxels, n_init=4, threads=1, selection_voxels=100_000),
        ),
        (
            "HabitatModel.fit 2,000 per subject, k chosen on 10^5 (study default)",
            dict(voxels_per_subject=2000, n_init=4, threads=None, selection_voxels=100_000),
        ),
    ]
    for name, kwargs in runs:
        start, cpu = time.perf_counter(), time.process_time()
        model = HabitatModel.fit(samples, **kwargs)
        print(
            f"{name:70s} {time.perf_counter() - start:8.2f} "
            f"{time.process_time() - cpu:8.2f} {model.k:3d}"
        )
    start, cpu = time.perf_counter(), time.process_time()
    k = minibatch(samples)
    print(
        f"{'peer: MiniBatchKMeans all voxels, n_init=3':70s} "
        f"{time.perf_counter() - start:8.2f} {time.process_time() - cpu:8.2f} {k:3d}"
    )


if __name__ == "__main__":
    main()
