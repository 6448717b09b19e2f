"""Patch encoders on this CPU: patches per second against the bound from FLOPs and matmul rate.

For each encoder and batch size the table gives the measured forward rate (inference mode,
preprocessed input, random weights: speed does not depend on the values; batch over the best
time of at least 3 passes, because the machine may be shared) and the bound

    bound (patches/s) = matmul rate (FLOP/s) / FLOPs per patch

where the matmul rate is measured just before each encoder with a plain ``torch.matmul`` of
two square float32 matrices (best of repeated runs), and FLOPs per patch are counted by
``torch.utils.flop_counter`` (2 per multiply-add, convolutions and attention included). A
second table gives the rates of the data side alone: tissue masking + grid, and tile reading
(+ resize) through the DataLoader with 0, 1 and 2 worker processes, on synthetic pyramidal
TIFFs written here (zlib tiles). The last table runs whole demo-sized slides through
``extract_slide`` with the default encoder for two batch sizes and reader-worker counts.

    python benchmarks/encoders.py                                  # a few minutes on 2 cores
    python benchmarks/encoders.py --encoders uni --batch-sizes 1,2,4,8,16,32,64
    python benchmarks/encoders.py --threads 1     # on a shared machine: one thread per process
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from radiograph.encoders import RandomWeightsWarning, build_encoder
from radiograph.io.features import read_features
from radiograph.pathology.extract import ExtractionConfig, SlideJob, TileDataset, extract_slide
from radiograph.pathology.slide import Slide, write_pyramidal_tiff
from radiograph.pathology.tiling import tile_grid
from radiograph.pathology.tissue import compute_tissue_mask

DEFAULT_ENCODERS = (
    "efficientnet-lite0",
    "resnet50-trunc",
    "timm:vit_small_patch16_224",
    "hipt-vit-s16",
    "ctranspath",
    "uni",
)
#: Encoders too slow on a laptop CPU for large batches by default.
SMALL_BATCHES_ONLY = {"uni": (1, 2, 4)}


def matmul_rate(n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of ``torch.matmul`` on two (n, n) float32 matrices (best of repeated runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def flops_per_patch(model: torch.nn.Module, side: int) -> float:
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, side, side))
    return float(counter.get_total_flops())


def forward_rate(model: torch.nn.Module, side: int, batch: int, seconds: float) -> float:
    """Patches per second of ``model`` on (batch, 3, side, side) inputs: batch over the best
    time of at least 3 forward passes (after one warm-up), like the matmul rate."""
    x = torch.randn(batch, 3, side, side)
    best, runs = float("inf"), 0
    with torch.inference_mode():
        model(x)
        deadline = time.perf_counter() + seconds
        while runs < 3 or time.perf_counter() < deadline:
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
            runs += 1
    return batch / best


def bench_encoders(names: list[str], batches: list[int], seconds: float) -> None:
    """One row per encoder and batch size; the matmul rate is re-measured before each encoder
    so that both sides of the ratio see the same machine load."""
    print(f"\nEncoders (forward only, {torch.get_num_threads()} threads, best of >= 3 passes)")
    print(
        f"{'encoder':28s} {'GFLOP/patch':>11s} {'matmul GFLOP/s':>14s} {'batch':>5s} "
        f"{'patches/s':>10s} {'bound':>8s} {'% of bound':>10s}"
    )
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            encoder = build_encoder(name, random_weights=True)
        flops = flops_per_patch(encoder, encoder.input_size)
        rate = matmul_rate()
        bound = rate / flops
        for batch in [b for b in batches if b in SMALL_BATCHES_ONLY.get(name, batches)]:
            measured = forward_rate(encoder, encoder.input_size, batch, seconds)
            print(
                f"{name:28s} {flops / 1e9:11.2f} {rate / 1e9:14.1f} {batch:5d} "
                f"{measured:10.1f} {bound:8.1f} {100 * measured / bound:9.0f}%",
                flush=True,
            )


def bench_data(folder: Path, side: int, seconds: float) -> None:
    """Masking and tile-reading rates on two slides of the same tissue: 0.5 and 0.25 um/px."""
    rng = np.random.default_rng(0)
    print(
        f"\nData side (no encoder): {side}x{side} px slide at 0.5 um/px (and its 0.25 um/px twin)"
    )
    print(f"{'step':44s} {'patches/s':>10s}")
    yy, xx = np.mgrid[0:side, 0:side]
    tissue = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (0.45 * side) ** 2
    for mpp, scale in ((0.5, 1), (0.25, 2)):
        noise = rng.integers(0, 60, size=(side * scale, side * scale, 3), dtype=np.uint8)
        big = np.kron(tissue, np.ones((scale, scale), dtype=bool))
        rgb = np.where(
            big[..., None], np.array([200, 110, 170], np.uint8) - noise // 2, np.uint8(240)
        ).astype(np.uint8)
        path = write_pyramidal_tiff(
            folder / f"slide_{mpp}.svs", rgb, mpp=mpp, downsamples=(1, 4, 16)
        )
        with Slide(path) as slide:
            start = time.perf_counter()
            mask = compute_tissue_mask(slide, mask_mpp=112.0 / 16)
            grid = tile_grid(slide, mask)
            elapsed = time.perf_counter() - start
        candidates = (slide.dimensions[0] // grid.size_level0) * (
            slide.dimensions[1] // grid.size_level0
        )
        print(
            f"{f'tissue mask + grid ({mpp} um/px, {candidates:.0f} grid cells)':44s} "
            f"{candidates / elapsed:10.0f}"
        )
        what = "224 px at level 0" if mpp == 0.5 else "448 px at level 0, resized to 224"
        for workers in (0, 1, 2):
            dataset = TileDataset(path, mpp, grid)
            loader = torch.utils.data.DataLoader(dataset, batch_size=32, num_workers=workers)
            count, start = 0, time.perf_counter()
            while count == 0 or time.perf_counter() - start < seconds:
                for batch in loader:
                    count += len(batch)
            elapsed = time.perf_counter() - start
            dataset.close()
            print(f"{f'read tiles, {what}, {workers} workers':44s} {count / elapsed:10.0f}")


def bench_pipeline(folder: Path, name: str, slides: int, side: int) -> None:
    """Whole slides through :func:`extract_slide` (mask, grid, thumbnail, read, encode, h5),
    as ``extract-pathology`` runs them, for several batch sizes and reader-worker counts."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:side, 0:side]
    disk = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (0.42 * side) ** 2
    paths = []
    for i in range(slides):
        noise = rng.integers(0, 60, size=(side, side, 3), dtype=np.uint8)
        rgb = np.where(
            disk[..., None], np.array([200, 110, 170], np.uint8) - noise // 2, np.uint8(240)
        ).astype(np.uint8)
        paths.append(write_pyramidal_tiff(folder / f"demo{i}.svs", rgb, mpp=0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        encoder = build_encoder(name, random_weights=name != "efficientnet-lite0")
    print(f"\nEnd to end, {slides} slides of {side}x{side} px at 0.5 um/px, {name}")
    print(f"{'batch':>5s} {'workers':>7s} {'patches':>7s} {'seconds':>8s} {'patches/s':>10s}")
    for batch, workers in ((8, 0), (8, 1), (32, 1), (8, 2)):
        config = ExtractionConfig(encoder=name, batch_size=batch, num_workers=workers)
        out = folder / f"out_{batch}_{workers}"
        start, patches = time.perf_counter(), 0
        for path in paths:
            job = SlideJob("S", path, out / f"{path.stem}.h5", out / f"{path.stem}.png")
            patches += len(
                read_features(extract_slide(job, config, encoder, progress=False)).coords
            )
        elapsed = time.perf_counter() - start
        print(
            f"{batch:5d} {workers:7d} {patches:7d} {elapsed:8.1f} {patches / elapsed:10.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoders", default=",".join(DEFAULT_ENCODERS), help="comma-separated registry names"
    )
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument(
        "--slide-side",
        type=int,
        default=4096,
        help="side in pixels of the 0.5 um/px benchmark slide",
    )
    parser.add_argument(
        "--pipeline-slides", type=int, default=4, help="slides of the end-to-end run (0: skip it)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the encoder and matmul runs (default: torch's)",
    )
    parser.add_argument("--skip-encoders", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    if not args.skip_encoders:
        bench_encoders(args.encoders.split(","), batches, args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        bench_data(Path(tmp), args.slide_side, args.seconds)
        if args.pipeline_slides:
            bench_pipeline(Path(tmp), "efficientnet-lite0", args.pipeline_slides, side=2800)


if __name__ == "__main__":
    main()
