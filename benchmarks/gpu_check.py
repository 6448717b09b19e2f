"""GPU checks end to end: each stage on the device against the same stage on the CPU, and the
throughput goals of issue 21. ``benchmarks/gpu_check.sh`` runs it after the CUDA tests.

Part ``encoders`` (goal on one large GPU: a UNI-size ViT-L/16 encodes >= 2,000 patches/s end to
end, tile reading never the bottleneck): on synthetic pyramidal slides of ``--side`` px, the
rate of tile reading alone (the extraction's DataLoader, its default readers, pinned memory on
CUDA), of the encoder alone (random weights, float16 autocast on CUDA, batch ``--batch``), and
of whole slides through :func:`~radiograph.pathology.extract.extract_slide`.

Part ``study``: a small synthetic study (``--subjects`` subjects: slides and CT; pathology
features from ``--study-encoder``, radiology from the 3D ViT ``vit3d-tiny``, random weights,
SlideGraph graphs, Mean / ABMIL / SPARRA, ``--folds`` folds x ``--epochs`` epochs) run once
with every stage on the CPU, then the extraction and the training again on ``--device`` from
the same cohort and the CPU's graphs. Printed: each stage's seconds on both, the largest
relative difference of the features (float16 autocast on CUDA against float32), the CPU
checkpoints evaluated on the device against their CPU predictions, and the device-trained
models against the CPU-trained ones (Spearman correlation of the risks, test C-index).

With ``--device cpu`` (no GPU) both runs are on the CPU: the plumbing is exercised and every
difference must be 0 (``tests/nn/test_cuda_paths.py`` runs it so, small).

Usage:
    python benchmarks/gpu_check.py --device cuda                  # both parts
    python benchmarks/gpu_check.py --device cpu --part study --subjects 6 --folds 2 --epochs 1 \
        --slide-size 1200 800
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import spearmanr
from torch.utils.data import DataLoader

from radiograph.devices import resolve_device
from radiograph.encoders import RandomWeightsWarning, build_encoder
from radiograph.io.features import read_features
from radiograph.pathology.extract import (
    ExtractionConfig,
    SlideJob,
    TileDataset,
    default_num_workers,
    extract_slide,
)
from radiograph.pathology.slide import Slide, write_pyramidal_tiff
from radiograph.pathology.tiling import tile_grid
from radiograph.pathology.tissue import compute_tissue_mask
from radiograph.runner import default_backend
from radiograph.stats import harrell_c
from radiograph.study import (
    build_graphs,
    extract_pathology,
    extract_radiology,
    prepare_cohort,
    train_models,
)
from radiograph.study_config import StudyConfig, load_study_config
from radiograph.train.data import load_graph_cohort
from radiograph.train.trainer import load_fold_model, predict

ENCODER_GOAL = 2000.0
"""Patches per second end to end for the UNI-size encoder on one large GPU (issue 21)."""


def _slides(folder: Path, count: int, side: int) -> list[Path]:
    """``count`` synthetic H&E-like pyramidal slides of ``side`` x ``side`` px at 0.5 um/px."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    disk = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (0.45 * side) ** 2
    paths = []
    for i in range(count):
        noise = rng.integers(0, 60, size=(side, side, 3), dtype=np.uint8)
        rgb = np.where(
            disk[..., None], np.array([200, 110, 170], np.uint8) - noise // 2, np.uint8(240)
        ).astype(np.uint8)
        paths.append(write_pyramidal_tiff(folder / f"slide{i}.svs", rgb, mpp=0.5))
    return paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encoder_throughput(
    device: torch.device, encoder_name: str, slides: int, side: int, batch: int
) -> dict[str, float]:
    """Patches per second of tile reading alone, of the encoder alone and end to end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        encoder = build_encoder(encoder_name, random_weights=True).to(device).eval()
    workers = default_num_workers(device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _slides(Path(tmp), slides, side)
        read = patches = 0.0
        for path in paths:
            with Slide(path) as slide:
                grid = tile_grid(slide, compute_tissue_mask(slide, mask_mpp=112.0 / 16))
            dataset = TileDataset(path, 0.5, grid)
            loader = DataLoader(
                dataset, batch_size=batch, num_workers=workers, pin_memory=device.type == "cuda"
            )
            start = time.perf_counter()
            for tiles in loader:
                patches += len(tiles)
            read += time.perf_counter() - start
            dataset.close()
        x = torch.randn(batch, 3, encoder.input_size, encoder.input_size, device=device)
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda")
        with torch.inference_mode(), autocast:
            encoder(x)
            _sync(device)
            runs, start = 0, time.perf_counter()
            while runs < 3 or time.perf_counter() - start < 2.0:
                encoder(x)
                runs += 1
            _sync(device)
        encode = runs * batch / (time.perf_counter() - start)
        config = ExtractionConfig(
            encoder=encoder_name, random_weights=True, batch_size=batch, device=str(device)
        )
        start, done = time.perf_counter(), 0
        for path in paths:
            job = SlideJob("S", path, Path(tmp) / f"{path.stem}.h5", Path(tmp) / f"{path.stem}.png")
            done += len(read_features(extract_slide(job, config, encoder, progress=False)).coords)
        end_to_end = done / (time.perf_counter() - start)
    return {
        "patches": patches,
        "readers": workers,
        "read": patches / read,
        "encode": encode,
        "end_to_end": end_to_end,
    }


def study_yaml(folder: Path, device: str, args: argparse.Namespace) -> StudyConfig:
    """The small study's config, all stages on ``device``, under ``folder``."""
    raw = {
        "out_dir": str(folder),
        "cohort": {
            "synthetic": {"subjects": args.subjects, "seed": 0, "slide_size": list(args.slide_size)}
        },
        "pathology": {
            "encoder": args.study_encoder,
            "random_weights": args.study_encoder != "efficientnet-lite0",
            "device": device,
        },
        "radiology": {
            "features": "vit3d-tiny",
            "random_weights": True,
            "units": "grid",
            "unit_size_mm": 8,
            "device": device,
        },
        "graphs": {"method": "slidegraph"},
        "training": {
            "folds": args.folds,
            "epochs": args.epochs,
            "batch_size": 8,
            "device": device,
            "seed": 0,
        },
        "aggregators": ["mean", "abmil", "sparra"],
        "modality_sets": [["radiology", "pathology"]],
        "workers": 1,
    }
    path = folder.parent / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_study_config(path)


def run_stages(config: StudyConfig, stages: tuple[str, ...]) -> dict[str, float]:
    """Run ``stages`` of the small study in order; returns seconds per stage."""
    backend = default_backend(1)
    seconds = {}
    manifest = prepare_cohort(config, backend)
    steps = {
        "pathology": lambda: extract_pathology(config, manifest, backend, False),
        "radiology": lambda: extract_radiology(config, manifest, backend, False),
        "graphs": lambda: build_graphs(config, backend, False),
        "training": lambda: train_models(config, False),
    }
    for stage in stages:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            steps[stage]()
        seconds[stage] = time.perf_counter() - start
    return seconds


def feature_difference(cpu: Path, other: Path, modality: str) -> float:
    """Largest |a - b| / max |a| over the subjects' ``modality`` feature files."""
    worst = 0.0
    for path in sorted((cpu / "features" / modality).rglob("*.h5")):
        a = read_features(path).features.astype(np.float64)
        b = read_features(other / path.relative_to(cpu)).features.astype(np.float64)
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)))
    return worst


def checkpoints_on_device(config: StudyConfig, device: torch.device) -> pd.DataFrame:
    """The CPU-trained fold models evaluated on ``device``: per aggregator and fold, the largest
    risk difference against their CPU predictions and the Spearman correlation."""
    rows = []
    for aggregator in config.aggregators:
        train_config = config.train_config(aggregator, ("radiology", "pathology"), 0)
        cohort = load_graph_cohort(
            train_config.graphs_dir,
            _manifest(config),
            train_config.modalities,
            "survival",
            progress=False,
        )
        for fold_dir in sorted(train_config.model_dir.glob("fold_*")):
            saved = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
            records = cohort.select(saved["subject_id"].tolist())
            model = load_fold_model(fold_dir / "checkpoint.pt", str(device))
            risk = predict(model, records, 8, device).prediction
            cpu = saved.set_index("subject_id").loc[[r.subject_id for r in records], "risk"]
            rows.append(
                {
                    "aggregator": aggregator,
                    "fold": fold_dir.name,
                    "max_abs_diff": float(np.abs(risk - cpu.to_numpy()).max()),
                    "spearman": float(spearmanr(risk, cpu.to_numpy()).correlation),
                }
            )
    return pd.DataFrame(rows)


def trained_models(cpu: StudyConfig, other: StudyConfig) -> pd.DataFrame:
    """Models trained on the device against those trained on the CPU (same graphs, seeds and
    splits): Spearman correlation of all risks, and each one's test C-index."""
    rows = []
    for aggregator in cpu.aggregators:
        dirs = [
            c.train_config(aggregator, ("radiology", "pathology"), 0).model_dir
            for c in (cpu, other)
        ]
        for fold_dir in sorted(dirs[0].glob("fold_*")):
            a, b = (
                pd.read_csv(
                    d / fold_dir.name / "predictions.csv", dtype={"subject_id": str}
                ).set_index("subject_id")
                for d in dirs
            )
            b = b.loc[a.index]
            test = a["split"] == "test"
            rows.append(
                {
                    "aggregator": aggregator,
                    "fold": fold_dir.name,
                    "spearman": float(spearmanr(a["risk"], b["risk"]).correlation),
                    "c_test_cpu": harrell_c(a["time"][test], a["event"][test], a["risk"][test]),
                    "c_test_device": harrell_c(b["time"][test], b["event"][test], b["risk"][test]),
                }
            )
    return pd.DataFrame(rows)


def _manifest(config: StudyConfig):
    from radiograph.manifest import load_manifest

    return load_manifest(config.manifest_path, check_files=False)


def small_study(folder: Path, device: torch.device, args: argparse.Namespace) -> dict:
    """The study part (module docstring); returns its tables and seconds."""
    cpu = study_yaml(folder / "cpu", "cpu", args)
    seconds = {"cpu": run_stages(cpu, ("pathology", "radiology", "graphs", "training"))}
    other = study_yaml(folder / "device", str(device), args)
    shutil.copytree(cpu.out_dir / "cohort", other.out_dir / "cohort")
    shutil.copytree(cpu.graphs_dir, other.graphs_dir)
    seconds["device"] = run_stages(other, ("pathology", "radiology", "training"))
    return {
        "seconds": pd.DataFrame(seconds),
        "features": {
            m: feature_difference(cpu.out_dir, other.out_dir, m) for m in ("pathology", "radiology")
        },
        "checkpoints": checkpoints_on_device(cpu, device),
        "trained": trained_models(cpu, other),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto")
    parser.add_argument("--part", default="encoders,study", help="encoders, study (comma list)")
    parser.add_argument("--encoder", default="uni", help="encoders: the patch encoder timed")
    parser.add_argument("--slides", type=int, default=4, help="encoders: synthetic slides")
    parser.add_argument("--side", type=int, default=8192, help="encoders: slide side in px")
    parser.add_argument("--batch", type=int, default=256, help="encoders: patches per batch")
    parser.add_argument("--subjects", type=int, default=16, help="study: synthetic subjects")
    parser.add_argument(
        "--study-encoder", default="efficientnet-lite0", help="study: pathology encoder"
    )
    parser.add_argument(
        "--slide-size",
        type=int,
        nargs=2,
        default=(3000, 2000),
        metavar=("W", "H"),
        help="study: slide size in px at 0.5 um/px",
    )
    parser.add_argument("--folds", type=int, default=3, help="study: folds")
    parser.add_argument("--epochs", type=int, default=5, help="study: epochs")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        print(
            f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )
    else:
        print(f"device: {device} (no GPU: both runs on the CPU, every difference should be 0)")
    parts = args.part.split(",")
    if "encoders" in parts:
        rates = encoder_throughput(device, args.encoder, args.slides, args.side, args.batch)
        verdict = "met" if rates["end_to_end"] >= ENCODER_GOAL else "missed"
        print(
            f"\nencoders: {args.encoder}, {rates['patches']:.0f} patches, "
            f"{rates['readers']} tile readers, batch {args.batch}"
        )
        print(f"  tile reading alone {rates['read']:8.0f} patches/s")
        print(f"  encoder alone      {rates['encode']:8.0f} patches/s")
        print(
            f"  end to end         {rates['end_to_end']:8.0f} patches/s "
            f"(goal {ENCODER_GOAL:.0f} on one large GPU: {verdict}; reading is "
            f"{'not ' if rates['read'] > rates['encode'] else ''}the bottleneck)"
        )
    if "study" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            result = small_study(Path(tmp), device, args)
        print(
            f"\nstudy: {args.subjects} subjects, {args.folds} folds x {args.epochs} epochs; "
            "stage seconds"
        )
        print(result["seconds"].round(2).to_string())
        print(
            "largest relative feature difference, device vs CPU: "
            + ", ".join(f"{m} {v:.2e}" for m, v in result["features"].items())
        )
        print("CPU checkpoints evaluated on the device (risk differences):")
        print(result["checkpoints"].to_string(index=False, float_format="%.3g"))
        print("models trained on the device vs on the CPU:")
        print(result["trained"].to_string(index=False, float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
