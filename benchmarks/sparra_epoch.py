"""Benchmark: SPARRA training speed at the paper's cohort size, and the planted-signal run.

Part ``speed``: one training epoch (164 training subjects, the paper's fold size, batch 32)
and one prediction pass over 205 subjects, each with 10k pathology nodes (2D) and 2k radiology
nodes (3D) (``--nodes``, ``--nodes-radiology``: the sizes of a TCGA-KIRC-like cohort, see
``benchmarks/README.md``), node features of ``--dims`` dimensions (32,32 by default; the
paper's UNI and SegVol ViT give 1024,768), for SPARRA and, side by side in the same run, its
peers Mean pooling and ABMIL. Each aggregator is timed as the earlier code (``--baseline``, a
git revision of ``radiograph/nn``) and as today's at each ``--precision``, all from the same
initial weights, on ``--device`` (CPU, or CUDA when present). Graphs come from
:func:`make_planted_cohort` with 6 nearest neighbours per node (the degree of a Delaunay graph)
and are held in memory, so the time is the model's, not the disk's. Two epochs are timed (one
``fit`` call): the first pays for the first touch of memory, the second is the steady state;
with wall time, the process CPU time (less sensitive to other jobs on a shared machine) and the
peak memory (resident memory above the graphs, or CUDA memory allocated). The projection for
``radiograph train`` is ``5 folds x (first epoch + 19 steady epochs + 1 prediction pass)``; the
goals: 10 minutes at 32-d on a 2-core CPU, at least 2x the earlier code at the real dimensions,
2 minutes on a GPU. By default the epoch is timed on ``--subjects 64`` and scaled linearly to
164 (batches are independent); ``--full`` times all 205 subjects.

Part ``planted``: ``radiograph train`` end to end on the abundance planted-signal cohort (205
subjects x 300 pathology nodes, 32-d, planted fraction 0-4%, or 0-12% with
``--max-fraction 0.12``), SPARRA with lr 1e-3 and otherwise the paper's settings. Per fold,
scored the paper's way: the test C-index of ridge CoxPH (inner-CV alpha) on SPARRA's subject
vectors and on Mean pooling's (the per-subject mean of the node features, no trained head),
beside the oracle (true risk) and SPARRA's own Cox head (a training diagnostic); and SPARRA's
selection on the test subjects (share of planted nodes among the kept ones, enrichment,
importance mass on the planted nodes beside their node share, recall, pooled AUROC). Fold 0
by default, all 5 with ``--full``; ``--restarts N`` keeps SPARRA's best of N initialisations.
The repeated, paired comparison of all aggregators on both planted cohorts is
``benchmarks/sparra_evidence.py``.

Usage:
    python benchmarks/sparra_epoch.py                       # both parts, small (a few minutes)
    python benchmarks/sparra_epoch.py --full                # 205 subjects timed, 5 folds planted
    python benchmarks/sparra_epoch.py --part speed --dims 1024,768 --subjects 32 \
        --precision fp32,bf16                               # the paper's dimensions
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from sksurv.util import Surv

from radiograph.devices import resolve_device
from radiograph.nn import build_aggregator
from radiograph.stats import harrell_c
from radiograph.survival.baselines import make_baseline
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort, planted_recovery
from radiograph.train.config import TrainConfig
from radiograph.train.data import SubjectRecord, node_scaling
from radiograph.train.trainer import aggregator_options, fit, predict, run_cross_validation

ROOT = Path(__file__).resolve().parents[1]
AGGREGATORS = ("sparra", "abmil", "mean")
PAPER_SUBJECTS, PAPER_TRAIN, FOLDS, EPOCHS = 205, 164, 5, 20


def _records(cohort) -> list[SubjectRecord]:
    records = []
    for i, sid in enumerate(cohort.subject_ids):
        graphs = {m: g[i] for m, g in cohort.graphs.items() if g[i] is not None}
        records.append(
            SubjectRecord(sid, sid, float(cohort.time[i]), int(cohort.event[i]), None, graphs)
        )
    return records


BASELINE_REV = "6a28b96"
"""The commit whose ``radiograph/nn`` is the peer "today's code" of the speed part: the models
before the exact speed-ups of issue 21 (cached propagation matrices with their transposes, the
fused encoder and gated attention, one allocation for the standardised features), trained by
:func:`fit` without host-memory reuse. ``--baseline none`` leaves it out."""


@dataclass(frozen=True)
class Implementation:
    """One column of the speed table: how to build, train and run a model."""

    label: str
    build: Callable[..., torch.nn.Module]
    fit: Callable[..., list[dict[str, float]]]
    predict: Callable[..., object]
    precision: str


def load_baseline_nn(rev: str, folder: Path) -> ModuleType:
    """``radiograph/nn`` as of git revision ``rev``, importable as the package ``baseline_nn``
    (its ``radiograph.nn`` imports rewritten), written under ``folder``."""
    package = folder / "baseline_nn"
    package.mkdir()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:radiograph/nn"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in (n for n in listing if n.endswith(".py")):
        source = subprocess.run(
            ["git", "show", f"{rev}:radiograph/nn/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (package / name).write_text(source.replace("radiograph.nn", "baseline_nn"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("baseline_nn")


def implementations(args: argparse.Namespace, folder: Path) -> list[Implementation]:
    """The baseline (unless ``--baseline none``) and today's code at each ``--precision``."""
    out = []
    if args.baseline != "none":
        baseline = load_baseline_nn(args.baseline, folder)
        # fit and predict without host-memory reuse (their undecorated bodies), at fp32
        out.append(
            Implementation(
                f"before ({args.baseline})",
                baseline.build_aggregator,
                fit.__wrapped__,
                predict.__wrapped__,
                "fp32",
            )
        )
    for precision in args.precision.split(","):
        out.append(Implementation(precision, build_aggregator, fit, predict, precision))
    return out


def _rss_gib(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak) in GiB."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 2**20


def _reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator statistics, or the kernel's VmHWM)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")


def _peak_gib(device: torch.device, floor: float) -> float:
    """Peak memory since :func:`_reset_peak` above ``floor`` (GiB): CUDA memory allocated, or the
    process's resident memory above the resident data."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**30 - floor
    return _rss_gib("VmHWM") - floor


def speed(args: argparse.Namespace) -> None:
    n = PAPER_SUBJECTS if args.full else args.subjects
    dim, dim_radiology = (int(d) for d in args.dims.split(","))
    device = resolve_device(args.device)
    start = time.perf_counter()
    cohort = make_planted_cohort(
        PlantedParams(
            n_subjects=n,
            n_nodes=args.nodes,
            n_nodes_radiology=args.nodes_radiology,
            dim=dim,
            dim_radiology=dim_radiology,
            knn=6,
        ),
        seed=0,
    )
    records = _records(cohort)
    n_train = round(n * PAPER_TRAIN / PAPER_SUBJECTS)
    train = records[:n_train]
    modalities = ("pathology", "radiology")
    print(
        f"speed: {n} subjects x ({args.nodes} pathology {dim}-d + {args.nodes_radiology} "
        f"radiology {dim_radiology}-d nodes), {n_train} trained per epoch, batch 32, "
        f"{device}, {torch.get_num_threads()} threads; graphs made in "
        f"{time.perf_counter() - start:.0f} s; load average "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
    )
    in_dims = {"pathology": dim, "radiology": dim_radiology}
    scaling = node_scaling(train, modalities)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        impls = implementations(args, Path(tmp))
        for name in args.aggregators.split(","):
            config = TrainConfig(
                graphs_dir=".",
                manifest=".",
                out_dir=".",
                aggregator=name,
                modalities=modalities,
                epochs=2,
            )
            torch.manual_seed(0)
            state = build_aggregator(name, in_dims, **aggregator_options(config)).state_dict()
            base = None
            for impl in impls:
                model = impl.build(name, in_dims, **aggregator_options(config))
                model.load_state_dict(state)
                model.set_node_scaling(scaling)
                model = model.to(device)
                floor = (
                    torch.cuda.memory_allocated(device) / 2**30
                    if device.type == "cuda"
                    else _rss_gib()
                )
                _reset_peak(device)
                cpu = time.process_time()
                log = impl.fit(
                    model,
                    train,
                    dataclasses.replace(config, precision=impl.precision),
                    device=device,
                    generator=torch.Generator().manual_seed(0),
                    progress=False,
                )
                cpu = (time.process_time() - cpu) / len(log) * PAPER_TRAIN / n_train
                first, epoch = (row["seconds"] * PAPER_TRAIN / n_train for row in log)
                t0 = time.perf_counter()
                impl.predict(model, records, 32, device, impl.precision)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                pred = (time.perf_counter() - t0) * PAPER_SUBJECTS / n
                peak = _peak_gib(device, floor)
                project = FOLDS * (first + (EPOCHS - 1) * epoch + pred)
                base = base or (epoch, cpu)
                rows.append(
                    (
                        name,
                        impl.label,
                        first,
                        epoch,
                        cpu,
                        pred,
                        project,
                        peak,
                        base[0] / epoch,
                        base[1] / cpu,
                    )
                )
                del model
    print(
        "| aggregator | code | epoch 1 (s) | epoch 2 (s) | CPU s/epoch | predict (s) | "
        "5 x 20 (min) | peak GiB | speed-up wall / CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, label, first, epoch, cpu, pred, project, peak, ratio, cpu_ratio in rows:
        print(
            f"| {name} | {label} | {first:.2f} | {epoch:.2f} | {cpu:.2f} | {pred:.2f} | "
            f"{project / 60:.1f} | {peak:.2f} | {ratio:.2f} / {cpu_ratio:.2f} |"
        )
    print(
        f"(times scaled to {PAPER_TRAIN} trained / {PAPER_SUBJECTS} predicted subjects; "
        f"5 x 20 = 5 folds x (epoch 1 + 19 x epoch 2 + predict), goal at 32-d 10 min; "
        f"CPU s/epoch: process CPU time, all threads; peak: "
        + (
            "CUDA memory allocated"
            if device.type == "cuda"
            else "resident memory above the resident graphs"
        )
        + "; speed-up: epoch 2 and CPU time against the first row of the aggregator)"
    )


def downstream_c(x: np.ndarray, cohort, rows: np.ndarray, is_test: np.ndarray, seed: int) -> float:
    """Harrell's C on the test rows of ridge CoxPH (inner-CV alpha, univariate screening) fitted
    on the training rows of the subject vectors ``x`` (the paper's scoring, section 3.2)."""
    y = Surv.from_arrays(cohort.event[rows].astype(bool), cohort.time[rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_baseline("coxph", seed=seed).fit(x[~is_test], y[~is_test])
        risk = model.predict(x[is_test])
    return harrell_c(cohort.time[rows][is_test], cohort.event[rows][is_test], risk)


def planted(args: argparse.Namespace) -> None:
    folds = tuple(range(FOLDS)) if args.full else (0,)
    params = PlantedParams(max_fraction=args.max_fraction, amplitude=args.amplitude)
    cohort = make_planted_cohort(params, seed=args.seed)
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    mean_vectors = np.stack([g.x.double().mean(0).numpy() for g in cohort.graphs["pathology"]])
    with tempfile.TemporaryDirectory() as tmp:
        graphs_dir, manifest = cohort.write(tmp)
        config = TrainConfig(
            graphs_dir=graphs_dir,
            manifest=manifest,
            out_dir=Path(tmp),
            aggregator="sparra",
            lr=1e-3,
            run_folds=folds,
            seed=args.seed,
            restarts=args.restarts,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = run_cross_validation(config, progress=False)
        print(
            f"planted: sparra trained on {len(folds)} fold(s) in {time.perf_counter() - t0:.0f} s"
        )
        print(
            f"planted: {params.n_subjects} subjects x {params.n_nodes} nodes, planted fraction "
            f"0-{params.max_fraction:.0%} shifted {params.amplitude:g} SD, log hazard "
            f"{params.strength} x fraction / {params.max_fraction:.0%}, cohort seed "
            f"{args.seed}, SPARRA best of {args.restarts} restart(s) per fold; C-index of "
            "ridge CoxPH on each aggregator's subject vectors (Mean: mean pooling, no head); "
            "SPARRA's own head as a diagnostic"
        )
        names = (
            "oracle",
            "SPARRA",
            "Mean",
            "own head",
            "precision",
            "enrich",
            "mass",
            "share",
            "recall",
            "AUROC",
        )
        print("fold  " + "  ".join(f"{n:>9}" for n in names))
        table = []
        for result in results:
            stored = np.load(result.fold_dir / "embeddings.npz")
            rows = np.array([index[s] for s in stored["subject_ids"]])
            is_test = stored["split"] == "test"
            test = [s for s, t in zip(stored["subject_ids"], is_test) if t]
            oracle = harrell_c(
                cohort.time[rows][is_test], cohort.event[rows][is_test], cohort.risk[rows][is_test]
            )
            rec = planted_recovery(
                [
                    np.load(result.fold_dir / "importance" / f"{s}.npz")["pathology_importance"]
                    for s in test
                ],
                [cohort.graphs["pathology"][index[s]].planted.numpy() for s in test],
            )
            row = [
                oracle,
                downstream_c(stored["x"], cohort, rows, is_test, args.seed),
                downstream_c(mean_vectors[rows], cohort, rows, is_test, args.seed),
                result.metrics["c_index_test"],
                rec["precision"],
                rec["enrichment"],
                rec["mass"],
                rec["node_share"],
                rec["recall"],
                rec["auroc"],
            ]
            table.append(row)
            print(f"{result.fold:>4}  " + "  ".join(f"{v:>9.3f}" for v in row))
        if len(table) > 1:
            print("mean  " + "  ".join(f"{v:>9.3f}" for v in np.mean(table, axis=0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("speed", "planted", "both"), default="both")
    parser.add_argument(
        "--full", action="store_true", help="time all 205 subjects; run all 5 planted folds"
    )
    parser.add_argument(
        "--subjects",
        type=int,
        default=64,
        help="subjects timed when not --full (scaled to 164 / 205)",
    )
    parser.add_argument("--nodes", type=int, default=10_000, help="pathology nodes per subject")
    parser.add_argument(
        "--nodes-radiology", type=int, default=2_000, help="radiology nodes per subject"
    )
    parser.add_argument(
        "--dims",
        default="32,32",
        help="pathology,radiology node feature dimensions (the paper's UNI and "
        "SegVol ViT: 1024,768)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--aggregators",
        default=",".join(AGGREGATORS),
        help="speed: aggregators to time, comma-separated",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        help="speed: training.precision values of today's code, comma-separated "
        "(fp32, bf16; fp16 on CUDA)",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REV,
        help="speed: git revision of the earlier radiograph/nn timed beside "
        "today's code, or 'none'",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="planted cohort and training seed")
    parser.add_argument(
        "--max-fraction",
        type=float,
        default=0.04,
        help="planted: upper end of the planted fraction per graph (0.04 = "
        "k^2, the share SPARRA keeps; 0.12 the earlier prototype's)",
    )
    parser.add_argument(
        "--amplitude",
        type=float,
        default=PlantedParams.amplitude,
        help="planted: shift of the planted node features, in background SDs",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="planted: SPARRA initialisations per fold, chosen on held-out training subjects",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("speed", "both"):
        speed(args)
    if args.part in ("planted", "both"):
        planted(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
