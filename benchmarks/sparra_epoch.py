"""Benchmark: SPARRA training speed at the paper's cohort size, and the planted-signal run.

Part ``speed``: one training epoch (164 training subjects, the paper's fold size, batch 32)
and one prediction pass over 205 subjects, each with ~10k pathology nodes (2D) and ~2k
radiology nodes (3D), for SPARRA and, side by side in the same run, its peers Mean pooling and
ABMIL. Graphs come from :func:`make_planted_cohort` with 6 nearest neighbours per node (the
degree of a Delaunay graph) and are held in memory, so the time is the model's, not the disk's.
Two epochs are timed: the first pays for the process's first touch of its memory, the second is
the steady state. The projection for ``radiograph train`` is ``5 folds x (first epoch + 19
steady epochs + 1 prediction pass)``;
the goal is 10 minutes on a 2-core CPU. By default the epoch is timed on ``--subjects 64`` and
scaled linearly to 164 (batches are independent); ``--full`` times all 205 subjects.

Part ``planted``: ``radiograph train`` end to end on the planted-signal cohort at the
SPARRA.md prototype size (205 subjects x 300 pathology nodes, 32-d, planted fraction 0-4%, or
the prototype's 0-12% with ``--max-fraction 0.12``),
SPARRA and Mean with lr 1e-3 and otherwise the paper's settings; per fold the test C-index of
SPARRA, Mean and the oracle (true risk), and SPARRA's node-importance recovery on the test
subjects (pooled AUROC, enrichment of planted nodes among the kept ones, recall). Fold 0 by
default, all 5 with ``--full``; ``--restarts N`` keeps SPARRA's best of N initialisations.

Usage:
    python benchmarks/sparra_epoch.py                       # both parts, small (a few minutes)
    python benchmarks/sparra_epoch.py --full                # 205 subjects timed, 5 folds planted
    python benchmarks/sparra_epoch.py --part speed --dim 1024 --dim-radiology 768 --subjects 16
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sksurv.metrics import concordance_index_censored

from radiograph.nn import build_aggregator
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort, planted_recovery
from radiograph.train.config import TrainConfig
from radiograph.train.data import SubjectRecord
from radiograph.train.trainer import aggregator_options, fit, predict, run_cross_validation

AGGREGATORS = ("sparra", "abmil", "mean")
PAPER_SUBJECTS, PAPER_TRAIN, FOLDS, EPOCHS = 205, 164, 5, 20
GOAL_SECONDS = 600.0


def _records(cohort) -> list[SubjectRecord]:
    records = []
    for i, sid in enumerate(cohort.subject_ids):
        graphs = {m: g[i] for m, g in cohort.graphs.items() if g[i] is not None}
        records.append(SubjectRecord(sid, sid, float(cohort.time[i]), int(cohort.event[i]), None,
                                     graphs))
    return records


def speed(args: argparse.Namespace) -> None:
    n = PAPER_SUBJECTS if args.full else args.subjects
    start = time.perf_counter()
    cohort = make_planted_cohort(
        PlantedParams(n_subjects=n, n_nodes=args.nodes, n_nodes_radiology=args.nodes_radiology,
                      dim=args.dim, dim_radiology=args.dim_radiology, knn=6),
        seed=0,
    )
    records = _records(cohort)
    n_train = round(n * PAPER_TRAIN / PAPER_SUBJECTS)
    print(f"speed: {n} subjects x ({args.nodes} pathology {args.dim}-d + {args.nodes_radiology} "
          f"radiology {args.dim_radiology}-d nodes), {n_train} trained per epoch, batch 32, "
          f"{torch.get_num_threads()} threads; graphs made in {time.perf_counter() - start:.0f} s")
    in_dims = {"pathology": args.dim, "radiology": args.dim_radiology}
    rows = []
    for name in AGGREGATORS:
        config = TrainConfig(graphs_dir=".", manifest=".", out_dir=".", aggregator=name,
                             modalities=("pathology", "radiology"), epochs=2)
        torch.manual_seed(0)
        model = build_aggregator(name, in_dims, **aggregator_options(config))
        generator = torch.Generator().manual_seed(0)
        log = fit(model, records[:n_train], config, device=torch.device("cpu"),
                  generator=generator, progress=False)
        first, epoch = (row["seconds"] * PAPER_TRAIN / n_train for row in log)
        t0 = time.perf_counter()
        predict(model, records, 32, torch.device("cpu"))
        pred = (time.perf_counter() - t0) * PAPER_SUBJECTS / n
        project = FOLDS * (first + (EPOCHS - 1) * epoch + pred)
        rows.append((name, first, epoch, pred, project))
    print(f"{'aggregator':>10}  {'epoch 1 (s)':>11}  {'epoch 2 (s)':>11}  {'predict (s)':>11}  "
          f"{'5 folds x 20 epochs (min)':>25}  goal 10 min")
    for name, first, epoch, pred, project in rows:
        verdict = "met" if project <= GOAL_SECONDS else "missed"
        print(f"{name:>10}  {first:>11.2f}  {epoch:>11.2f}  {pred:>11.2f}  "
              f"{project / 60:>25.1f}  {verdict}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"(times scaled to {PAPER_TRAIN} trained / {PAPER_SUBJECTS} predicted subjects; "
          f"peak memory {peak:.1f} GiB)")


def planted(args: argparse.Namespace) -> None:
    folds = tuple(range(FOLDS)) if args.full else (0,)
    params = PlantedParams(max_fraction=args.max_fraction, amplitude=args.amplitude)
    cohort = make_planted_cohort(params, seed=args.seed)
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    with tempfile.TemporaryDirectory() as tmp:
        graphs_dir, manifest = cohort.write(tmp)
        results = {}
        for name in ("sparra", "mean"):
            config = TrainConfig(graphs_dir=graphs_dir, manifest=manifest, out_dir=Path(tmp) / name,
                                 aggregator=name, lr=1e-3, run_folds=folds, seed=args.seed,
                                 restarts=args.restarts if name == "sparra" else 1)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[name] = run_cross_validation(config, progress=False)
            print(f"planted: {name} trained on {len(folds)} fold(s) in "
                  f"{time.perf_counter() - t0:.0f} s")
        print(f"planted: {params.n_subjects} subjects x {params.n_nodes} nodes, planted fraction "
              f"0-{params.max_fraction:.0%} shifted {params.amplitude:g} SD, log hazard {params.strength} x fraction / "
              f"{params.max_fraction:.0%}, cohort seed {args.seed}, "
              f"SPARRA best of {args.restarts} restart(s) per fold")
        print(f"{'fold':>4}  {'oracle':>6}  {'SPARRA':>6}  {'Mean':>6}  {'AUROC':>6}  "
              f"{'AUROC/graph':>11}  {'precision':>9}  {'base':>5}  {'enrich':>6}  {'recall':>6}")
        table = []
        for sparra, mean in zip(results["sparra"], results["mean"]):
            preds = pd.read_csv(sparra.fold_dir / "predictions.csv", dtype={"subject_id": str})
            test = preds.loc[preds.split == "test", "subject_id"].tolist()
            rows = [index[s] for s in test]
            oracle = concordance_index_censored(cohort.event[rows].astype(bool),
                                                cohort.time[rows], cohort.risk[rows])[0]
            rec = planted_recovery(
                [np.load(sparra.fold_dir / "importance" / f"{s}.npz")["pathology_importance"]
                 for s in test],
                [cohort.graphs["pathology"][index[s]].planted.numpy() for s in test],
            )
            row = [oracle, sparra.metrics["c_index_test"], mean.metrics["c_index_test"],
                   rec["auroc"], rec["auroc_per_graph"], rec["precision"], rec["base_rate"],
                   rec["enrichment"], rec["recall"]]
            table.append(row)
            print(f"{sparra.fold:>4}  " + "  ".join(
                f"{v:>{w}.3f}" for v, w in zip(row, (6, 6, 6, 6, 11, 9, 5, 6, 6))))
        if len(table) > 1:
            means = np.mean(table, axis=0)
            print("mean  " + "  ".join(
                f"{v:>{w}.3f}" for v, w in zip(means, (6, 6, 6, 6, 11, 9, 5, 6, 6))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("speed", "planted", "both"), default="both")
    parser.add_argument("--full", action="store_true",
                        help="time all 205 subjects; run all 5 planted folds")
    parser.add_argument("--subjects", type=int, default=64,
                        help="subjects timed when not --full (scaled to 164 / 205)")
    parser.add_argument("--nodes", type=int, default=10_000, help="pathology nodes per subject")
    parser.add_argument("--nodes-radiology", type=int, default=2_000,
                        help="radiology nodes per subject")
    parser.add_argument("--dim", type=int, default=32, help="pathology feature dimension")
    parser.add_argument("--dim-radiology", type=int, default=32,
                        help="radiology feature dimension")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="planted cohort and training seed")
    parser.add_argument("--max-fraction", type=float, default=0.04,
                        help="planted: upper end of the planted fraction per graph (0.12 is the "
                             "SPARRA.md prototype's cohort, 0.04 = k^2 keeps AUROC ~1 reachable)")
    parser.add_argument("--amplitude", type=float, default=PlantedParams.amplitude,
                        help="planted: shift of the planted node features, in background SDs")
    parser.add_argument("--restarts", type=int, default=1,
                        help="planted: SPARRA initialisations per fold, chosen on held-out "
                             "training subjects")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part in ("speed", "both"):
        speed(args)
    if args.part in ("planted", "both"):
        planted(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
