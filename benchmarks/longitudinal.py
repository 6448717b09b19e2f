"""Benchmark: volumes per second of the longitudinal study's MRI model (issue 20, seed 002).

For each device (the CPU with ``--threads`` threads; CUDA with fp32, bf16 and fp16 when
present), encoder (``small`` 3-layer CNN, ``resnet`` = torchvision r3d_18) and volume size
(``--sizes``, cubes), the MRI model (:class:`radiograph.nn.longitudinal.MRPModel`, the study's
widths, no clinical input) is timed on batches of ``--batch`` one-volume patients, the way
:func:`radiograph.longitudinal.train.fit_model` and ``predict`` run it: a training step
(forward under :func:`radiograph.devices.autocast`, float32 loss, loss-scaled backward, AdamW
step) and an inference forward pass. Each figure is timed over at least ``--seconds`` seconds
after one warm-up step (CUDA synchronised). The host's batch building (subset draws, collate,
flips: :func:`radiograph.longitudinal.train.training_batches`) is timed too, for 3-volume
patients, to compare with the step time. Prints markdown tables and the load average (the
development machine is shared).

Usage:
    python benchmarks/longitudinal.py                          # CPU, and CUDA when present
    python benchmarks/longitudinal.py --devices cuda --sizes 32,64,96
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from radiograph.devices import autocast, grad_scaler, resolve_device
from radiograph.longitudinal.train import PatientImages, TrainSettings, training_batches
from radiograph.nn.longitudinal import MRPConfig, MRPModel

CUDA_PRECISIONS = ("fp32", "bf16", "fp16")


def _timed(step, device: torch.device, seconds: float) -> float:
    """Seconds per call of ``step`` (one warm-up call, then calls until ``seconds`` pass)."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def model_rates(
    encoder: str, size: int, batch: int, device: torch.device, precision: str, seconds: float
) -> tuple[float, float]:
    """(training, inference) volumes per second of the MRI model on ``device``."""
    torch.manual_seed(0)
    model = MRPModel(MRPConfig("mri", 3, encoder=encoder, feature_dim=32, hidden=32)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = grad_scaler(device, precision)
    images = torch.randn(batch, 1, 1, size, size, size, device=device)
    phase = torch.zeros(batch, 1, dtype=torch.long, device=device)
    mask = torch.ones(batch, 1, dtype=torch.bool, device=device)
    label = (torch.arange(batch, device=device) % 2).float()

    def train_step() -> None:
        with autocast(device, precision):
            out = model(images, phase, mask)
        loss = model.loss(out, label)
        optimiser.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    @torch.no_grad()
    def infer() -> None:
        with autocast(device, precision):
            model(images, phase, mask)

    model.train()
    train = _timed(train_step, device, seconds)
    model.eval()
    return batch / train, batch / _timed(infer, device, seconds)


def host_batch_seconds(size: int, batch: int, seconds: float) -> float:
    """Seconds to build one training batch on the host (3 volumes per patient, flips on)."""
    rng = np.random.default_rng(0)
    patients = [
        PatientImages(
            f"P{i:03d}",
            i % 2,
            tuple((k, rng.standard_normal((size,) * 3).astype(np.float32)) for k in range(3)),
        )
        for i in range(batch)
    ]
    settings = TrainSettings(epochs=10**6, batch_size=batch, device="cpu")
    config = MRPConfig("mri", 3)
    empty = np.zeros((batch, 0), np.float32)
    batches = training_batches(config, patients, empty, empty, settings, rng, pin=False)
    return _timed(lambda: next(batches), torch.device("cpu"), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda / cuda:N")
    parser.add_argument("--encoders", default="small,resnet")
    parser.add_argument("--sizes", default="32,64", help="volume edge lengths (voxels)")
    parser.add_argument("--batch", type=int, default=16, help="volumes per step")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    encoders = args.encoders.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"longitudinal MRI model: batch {args.batch}, torch {torch.__version__}, "
        f"{args.threads} CPU threads, load average {load} (1, 5, 15 min)\n"
    )
    print("| device | precision | encoder | volume | train vol/s | inference vol/s |")
    print("|---|---|---|---|---:|---:|")
    for name in args.devices.split(","):
        device = resolve_device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            print("| cuda | fp32, bf16, fp16 | - | - | CUDA: not available | |")
            continue
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for precision in CUDA_PRECISIONS if device.type == "cuda" else ("fp32",):
            for encoder in encoders:
                for size in sizes:
                    train, infer = model_rates(
                        encoder, size, args.batch, device, precision, args.seconds
                    )
                    print(
                        f"| {label} | {precision} | {encoder} | {size}^3 | {train:.1f} | "
                        f"{infer:.1f} |",
                        flush=True,
                    )
    print(f"\n| host batch build ({args.batch} patients x 3 volumes, flips) | ms per batch |")
    print("|---|---:|")
    for size in sizes:
        ms = 1e3 * host_batch_seconds(size, args.batch, args.seconds)
        print(f"| {size}^3 | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
