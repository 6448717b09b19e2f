"""Benchmark: ``training.precision: bf16`` against fp32, speed and downstream C-index over seeds.

For each seed (``--seeds``; the seed sets the splits, the initial weights, the batch order and
the dropout, so each seed is one repeat of the 5-fold cross-validation) and each aggregator,
``radiograph train`` runs the 5 folds at fp32 and at bf16 on the same planted-signal cohort
(``make_planted_cohort``: 205 subjects x ``--nodes`` pathology nodes of ``--dim`` features,
the focal planted region of ``docs/sparra.md``, 40% censored). Each fold is scored the paper's
way: the test C-index (Harrell) of ridge CoxPH with inner-CV alpha (``make_baseline("coxph")``, via
``sparra_epoch.downstream_c``) fitted on the fold's training subject vectors. The paired
difference bf16 - fp32 over seeds x folds gets the corrected resampled t-test
(:func:`radiograph.stats.compare_cv`, Nadeau & Bengio 2003), and the table gives the training
seconds per fold of each precision. Mean pooling is left out: its subject vectors are the node
features' means, computed in float32 whatever the precision.

Usage:
    python benchmarks/precision.py                          # 3 seeds, SPARRA and ABMIL
    python benchmarks/precision.py --seeds 0,1,2,3,4 --dim 1024 --nodes 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from radiograph.stats import compare_cv
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort
from radiograph.train.config import TrainConfig
from radiograph.train.trainer import run_cross_validation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparra_epoch import downstream_c  # noqa: E402 - the benchmarks' shared scoring

PRECISIONS = ("fp32", "bf16")
N_TRAIN, N_TEST = 164, 41


def fold_scores(cohort, config: TrainConfig) -> tuple[list[float], float]:
    """Downstream test C-index of each fold of ``config``, and the mean seconds per fold."""
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_cross_validation(config, progress=False)
    scores = []
    for result in results:
        stored = np.load(result.fold_dir / "embeddings.npz")
        rows = np.array([index[s] for s in stored["subject_ids"]])
        scores.append(
            downstream_c(stored["x"], cohort, rows, stored["split"] == "test", config.seed)
        )
    return scores, float(np.mean([r.seconds for r in results]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (repeats)")
    parser.add_argument("--aggregators", default="sparra,abmil")
    parser.add_argument("--nodes", type=int, default=300, help="pathology nodes per subject")
    parser.add_argument("--dim", type=int, default=1024, help="node feature dimension")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    cohort = make_planted_cohort(PlantedParams(n_nodes=args.nodes, dim=args.dim), seed=0)
    print(
        f"precision: {cohort.params.n_subjects} subjects x {args.nodes} nodes x {args.dim}-d, "
        f"5 folds x {args.epochs} epochs, seeds {seeds}, {args.device}, "
        f"{torch.get_num_threads()} threads; downstream ridge CoxPH test C-index"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs_dir, manifest = cohort.write(tmp)
        for name in args.aggregators.split(","):
            scores = {p: [] for p in PRECISIONS}
            seconds = {p: [] for p in PRECISIONS}
            for seed in seeds:
                for precision in PRECISIONS:
                    config = TrainConfig(
                        graphs_dir=graphs_dir,
                        manifest=manifest,
                        out_dir=Path(tmp) / f"{name}_{precision}_{seed}",
                        aggregator=name,
                        seed=seed,
                        epochs=args.epochs,
                        precision=precision,
                        device=args.device,
                    )
                    start = time.perf_counter()
                    fold, per_fold = fold_scores(cohort, config)
                    scores[precision].append(fold)
                    seconds[precision].append(per_fold)
                    print(
                        f"  {name} seed {seed} {precision}: C "
                        + " ".join(f"{c:.3f}" for c in fold)
                        + f" ({time.perf_counter() - start:.0f} s)",
                        flush=True,
                    )
            test = compare_cv(np.array(scores["bf16"]), np.array(scores["fp32"]), N_TRAIN, N_TEST)
            rows.append(
                (
                    name,
                    np.array(scores["fp32"]),
                    np.array(scores["bf16"]),
                    test,
                    np.mean(seconds["fp32"]),
                    np.mean(seconds["bf16"]),
                )
            )
    print(
        "| aggregator | fp32 C | bf16 C | bf16 - fp32 [95% CI] | p | s/fold fp32 | "
        "s/fold bf16 | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, fp32, bf16, test, s32, s16 in rows:
        print(
            f"| {name} | {fp32.mean():.3f} ± {fp32.std(ddof=1):.3f} | "
            f"{bf16.mean():.3f} ± {bf16.std(ddof=1):.3f} | {test.difference:+.3f} "
            f"[{test.ci_low:+.3f}, {test.ci_high:+.3f}] | {test.p_value:.2f} | {s32:.1f} | "
            f"{s16:.1f} | {s32 / s16:.2f} |"
        )
    print(
        "(C: mean ± sd over seeds x folds; the difference's interval and p from the corrected "
        "resampled t-test over the paired folds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
