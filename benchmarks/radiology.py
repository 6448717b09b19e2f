"""Radiology stage speed per subject: loading, units, and unit features per second.

Writes synthetic CT subjects (a lobulated tumour of three intensity sub-regions in a noisy
body, NIfTI at 0.8 x 0.8 x 2.5 mm) and times, per subject, each step of
``extract-radiology``: loading (read, checks, resampling to 1 mm, normalisation), the two unit
kinds, and the feature extractors. Peers measured side by side in the same run:

* pyradiomics on each unit's bounding box (what radiograph does) vs pyradiomics on the whole
  volume with the unit's mask (the direct call; same features, timed on a subset of units);
* the 3D ViT (``vit3d-tiny``; ``segvol-vit`` with ``--segvol``) vs the 2D fallback
  (``timm:resnet18`` slice by slice), both with random weights (speed does not depend on the
  weights).

    python benchmarks/radiology.py                    # 2 subjects, tumour radius 22 mm
    python benchmarks/radiology.py --subjects 4 --radius 35 --segvol --threads 8
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from radiomics import featureextractor

from radiograph.encoders import build_encoder
from radiograph.encoders.base import RandomWeightsWarning
from radiograph.encoders.vit3d import build_volume_encoder
from radiograph.radiology.deep_features import encode_slices, encode_volume, unit_features
from radiograph.radiology.habitats import HabitatModel
from radiograph.radiology.radiomics_features import (
    DEFAULT_PARAMS,
    RadiomicsExtractor,
    quiet_pyradiomics,
)
from radiograph.radiology.units import grid_units, habitat_units
from radiograph.radiology.volume import load_volume

SPACING = (0.8, 0.8, 2.5)


def write_subject(folder: Path, name: str, radius_mm: float, seed: int) -> tuple[Path, Path]:
    """A CT volume (HU) and mask; the tumour is a union of balls with three HU sub-regions."""
    rng = np.random.default_rng(seed)
    extent = 2 * radius_mm + 40.0
    shape = tuple(int(extent / s) for s in SPACING[::-1])  # z, y, x
    step = np.array(SPACING[::-1], np.float32)[:, None, None, None]
    grid = np.indices(shape, dtype=np.float32) * step
    centre = np.array([extent / 2] * 3, dtype=np.float32)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(4):
        c = centre + rng.uniform(-radius_mm / 3, radius_mm / 3, 3)
        r = radius_mm * rng.uniform(0.6, 1.0)
        mask |= ((grid - c[:, None, None, None]) ** 2).sum(axis=0) <= r**2
    hu = rng.normal(30, 15, shape).astype(np.float32)
    third = np.quantile(grid[2][mask], [1 / 3, 2 / 3])
    hu[mask] += np.where(grid[2][mask] < third[0], 20, np.where(grid[2][mask] < third[1], 80, 140))
    paths = []
    for array, suffix in ((hu, "ct"), (mask.astype(np.uint8), "mask")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING)
        paths.append(folder / f"{name}_{suffix}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    return paths[0], paths[1]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--radius", type=float, default=22.0, help="tumour radius in mm")
    parser.add_argument("--unit-size", type=float, default=8.0)
    parser.add_argument(
        "--direct-units",
        type=int,
        default=10,
        help="units timed with the whole-volume pyradiomics call",
    )
    parser.add_argument("--segvol", action="store_true", help="also time segvol-vit (slow on CPU)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_pyradiomics()
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", RandomWeightsWarning)
    encoders3d = {"vit3d-tiny": build_volume_encoder("vit3d-tiny", random_weights=True)}
    if args.segvol:
        encoders3d["segvol-vit"] = build_volume_encoder("segvol-vit", random_weights=True)
    resnet = build_encoder("timm:resnet18", random_weights=True)
    radiomics = RadiomicsExtractor(modality="CT")
    direct = featureextractor.RadiomicsFeatureExtractor(str(DEFAULT_PARAMS["CT"]))

    rows: dict[str, list[tuple[int, float]]] = {}

    def record(step: str, n: int, seconds: float) -> None:
        rows.setdefault(step, []).append((n, seconds))

    with tempfile.TemporaryDirectory() as tmp:
        files = [
            write_subject(Path(tmp), f"S{i}", args.radius, seed=i) for i in range(args.subjects)
        ]
        volumes = []
        for i, (ct, mask) in enumerate(files):
            volume, seconds = timed(lambda: load_volume(f"S{i}", [ct], mask, modality="CT"))
            record("load + resample to 1 mm", 1, seconds)
            volumes.append(volume)
        model, seconds = timed(
            lambda: HabitatModel.fit([(v.normalised, v.mask) for v in volumes], k_range=[3], seed=0)
        )
        print(f"habitat fit on {len(volumes)} subjects (K = 3): {seconds:.2f} s")
        for volume in volumes:
            grid, seconds = timed(lambda: grid_units(volume.mask, 1.0, size_mm=args.unit_size))
            record(f"grid units ({args.unit_size:g} mm)", len(grid), seconds)
            habitats, seconds = timed(
                lambda: habitat_units(model.transform(volume.normalised, volume.mask))
            )
            record("habitat units", len(habitats), seconds)

            (_, names), seconds = timed(lambda: radiomics.extract(volume, grid))
            record(f"pyradiomics, unit box ({len(names)} features)", len(grid), seconds)
            reference = volume.reference_image()
            image = sitk.GetImageFromArray(volume.intensity[0])
            image.CopyInformation(reference)
            subset = range(min(args.direct_units, len(grid)))

            def whole_volume_calls() -> None:
                for i in subset:
                    unit = sitk.GetImageFromArray((grid.labels == i + 1).astype(np.uint8))
                    unit.CopyInformation(reference)
                    direct.execute(image, unit, label=1)

            _, seconds = timed(whole_volume_calls)
            record("pyradiomics, whole volume (direct call)", len(subset), seconds)
            _, seconds = timed(lambda: radiomics.extract(volume, habitats))
            record("pyradiomics on habitat units", len(habitats), seconds)
            region = grid.labels > 0
            for name, encoder in encoders3d.items():
                tokens, seconds = timed(
                    lambda: encode_volume(encoder, volume.normalised, region, batch_size=1)
                )
                _, more = timed(lambda: unit_features(tokens, grid))
                record(f"{name} (3D, {encoder.dim}-d)", len(grid), seconds + more)
            tokens, seconds = timed(
                lambda: encode_slices(
                    resnet, volume.normalised, region, modality="CT", tile=32, batch_size=32
                )
            )
            _, more = timed(lambda: unit_features(tokens, grid))
            record(f"timm:resnet18 (2D slices, {resnet.dim}-d)", len(grid), seconds + more)

    print(
        f"\n{args.subjects} subject(s), tumour radius {args.radius:g} mm, "
        f"{args.threads} torch thread(s); mean per subject"
    )
    print(f"| {'step':<44} | {'units':>6} | {'seconds':>8} | {'units/s':>8} |")
    print(f"|{'-' * 46}|{'-' * 8}|{'-' * 10}|{'-' * 10}|")
    for step, values in rows.items():
        n = np.mean([v[0] for v in values])
        seconds = np.mean([v[1] for v in values])
        rate = n / seconds if seconds > 0 else float("inf")
        print(f"| {step:<44} | {n:>6.0f} | {seconds:>8.2f} | {rate:>8.1f} |")


if __name__ == "__main__":
    main()
