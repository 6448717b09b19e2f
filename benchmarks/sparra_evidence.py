"""Benchmark: which aggregator wins on which kind of signal, judged the paper's way.

Two planted cohorts (:mod:`radiograph.synth.planted_graphs`): ``abundance`` (the hazard is set
by how much of the tissue carries a pattern; a mean of node features is close to sufficient)
and ``focal`` (the hazard is set by what a small marked region looks like, with a distractor
region of the same size; the signal lives in a 3-d subspace of the features). On each, four
aggregators: Mean pooling (no training, no head: the per-subject mean of the node features),
ABMIL, SPARRA with the paper's settings and SPARRA with the ``reference`` preset, each trained
by ``radiograph train`` (lr 1e-3, otherwise the paper's settings: 20 epochs, batch 32, dropout
0.5, cosine schedule) over ``--seeds`` repeats of 5-fold cross-validation (new patient-level
splits per seed, shared by the four aggregators).

Scoring is the paper's (section 3.2): every aggregator's subject vectors go to the downstream
survival models (``--models``; default the study's four: RSF, ridge CoxPH, Coxnet, FSVM), each
tuned by inner 5-fold CV on the training fold after univariate Cox screening (p < 0.2), and
scored by Harrell's C on the test fold. The trained models' own Cox heads are printed as a
training diagnostic only.

The table: per cohort and aggregator, the mean C-index over seeds x folds of the mean over the
downstream models, and the paired difference to Mean with the corrected resampled t-test
(Nadeau & Bengio 2003; :func:`radiograph.report.comparisons.cross_validated_comparisons`).
Selection stability: per trained run, the share of the prognostic region (the planted blob or
the focal region) among the nodes SPARRA keeps and the importance (SPARRA) or attention (ABMIL)
mass on it, beside the mass on the distractor; across runs, how often the mass on the region
reaches :data:`FOUND_MASS`.

Sizes are set by the flags; the defaults are the recorded run's (120 subjects; abundance 150
nodes x 32-d, focal 200 nodes x 64-d), which took 50 (focal) and 48 (abundance) minutes as two
processes of one thread each on the 2-core CPU (``benchmarks/README.md``). The focal cohort at
``PlantedParams.focal()``'s own defaults (``--focal-nodes 2000 --focal-dim 256``) took 99
minutes with two threads; its table is recorded beside the others. ``--out`` keeps the
trained folds, so ``--rescore`` can score them again with other downstream models.

Usage:
    # the recorded run: the two cohorts side by side, one thread each
    python benchmarks/sparra_evidence.py --cohorts focal --threads 1 --out runs/evidence_focal
    python benchmarks/sparra_evidence.py --cohorts abundance --threads 1 --out runs/evidence_ab
    # the focal cohort at the generator's defaults (99 minutes on 2 cores; resumes with --out)
    python benchmarks/sparra_evidence.py --cohorts focal --focal-nodes 2000 --focal-dim 256 \
        --threads 2 --out runs/evidence_focal_2000
    python benchmarks/sparra_evidence.py --out runs/evidence --rescore --models rsf  # no training
    python benchmarks/sparra_evidence.py --seeds 2 --folds 5 --models coxph   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sksurv.util import Surv

from radiograph.io.atomic import read_json, write_json
from radiograph.report.comparisons import AVG, cross_validated_comparisons
from radiograph.stats import harrell_c
from radiograph.survival.baselines import BASELINES, run_baselines
from radiograph.synth.planted_graphs import (
    PlantedCohort,
    PlantedParams,
    make_planted_cohort,
    planted_recovery,
)
from radiograph.train.config import TrainConfig
from radiograph.train.splits import load_or_create_splits
from radiograph.train.trainer import run_cross_validation

AGGREGATORS = {
    "mean": None,
    "region": None,
    "abmil": ("abmil", {}),
    "sparra": ("sparra", {}),
    "sparra_ref": ("sparra", {"preset": "reference"}),
}
"""Aggregator name in the tables -> (``TrainConfig.aggregator``, ``aggregator_options``).
Untrained: ``mean`` (mean pooling) and, on the focal cohort only, ``region``: the mean over the
prognostic region's nodes, read from the ground truth (what a perfect selection would hand to
the downstream models; a ceiling, not an aggregator)."""

FOUND_MASS = 0.25
"""A run "finds" the region when the mean share of a test graph's importance on it is at least
this (the region holds 2-4% of the nodes, so uniform weights give it ~0.03)."""

BASELINE_SETTINGS = {
    "grids": {"rsf": {"max_depth": [2, 4]}, "fsvm": {"alpha": [0.015625, 0.25, 4.0, 64.0]}},
    "model_params": {
        "rsf": {"n_estimators": 100, "min_samples_split": 10, "min_samples_leaf": 5},
        "coxnet": {"n_alphas": 10},
    },
}
"""Downstream grids and sizes: the study's ``synthetic_205.yaml`` with RSF at 100 trees and two
depths, to fit the time budget."""


def make_cohorts(args: argparse.Namespace) -> dict[str, PlantedCohort]:
    """The two cohorts at the sizes of ``args`` (same subjects count and cohort seed)."""
    abundance = PlantedParams(
        n_subjects=args.subjects, n_nodes=args.abundance_nodes, dim=args.abundance_dim
    )
    focal = PlantedParams.focal(
        n_subjects=args.subjects, n_nodes=args.focal_nodes, dim=args.focal_dim
    )
    return {
        name: make_planted_cohort(params, seed=args.cohort_seed)
        for name, params in (("abundance", abundance), ("focal", focal))
    }


def _written(cohort: PlantedCohort, folder: Path, seed: int) -> tuple[Path, Path]:
    """``(graphs_dir, manifest)`` of the cohort under ``folder``: written, unless an earlier run
    of the same cohort (its parameters and seed in ``cohort.json``) left them there. Rewriting
    them would give the files new times, and the trainer would then retrain every kept fold
    instead of resuming."""
    record = folder / "cohort.json"
    settings = json.loads(json.dumps({"params": dataclasses.asdict(cohort.params), "seed": seed}))
    if record.is_file() and read_json(record) == settings:
        return folder / "graphs", folder / "manifest.csv"
    paths = cohort.write(folder)
    write_json(record, settings)
    return paths


def _untrained_vectors(cohort: PlantedCohort, name: str) -> np.ndarray:
    """(n, d) per-subject mean of the pathology node features (``mean``: mean pooling, no head)
    or of the planted region's nodes (``region``)."""
    graphs = cohort.graphs["pathology"]
    if name == "mean":
        return np.stack([g.x.double().mean(0).numpy() for g in graphs])
    return np.stack([g.x[g.planted].double().mean(0).numpy() for g in graphs])


def _fold_vectors(fold_dir: Path, index: dict[str, int], n: int) -> np.ndarray:
    """(n, D) subject vectors of one fold's ``embeddings.npz`` in cohort order."""
    stored = np.load(fold_dir / "embeddings.npz")
    x = np.full((n, stored["x"].shape[1]), np.nan)
    x[[index[s] for s in stored["subject_ids"]]] = stored["x"]
    return x


def _own_head_c(fold_dir: Path) -> float:
    """Harrell's C of the trained model's own Cox head on the fold's test subjects (a training
    diagnostic), from its ``predictions.csv``."""
    table = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    test = table[table["split"] == "test"]
    return harrell_c(test["time"], test["event"], test["risk"])


def _recovery(fold_dir: Path, cohort: PlantedCohort, test: list[str]) -> dict[str, float]:
    """Selection stability on the fold's test subjects: region and distractor recovery."""
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    importance = [
        np.load(fold_dir / "importance" / f"{s}.npz")["pathology_importance"] for s in test
    ]
    graphs = [cohort.graphs["pathology"][index[s]] for s in test]
    region = planted_recovery(importance, [g.planted.numpy() for g in graphs])
    distractors = [g.distractor.numpy() for g in graphs]
    distractor_mass = (
        planted_recovery(importance, distractors)["mass"]
        if any(d.any() for d in distractors)
        else float("nan")
    )
    return {
        "precision": region["precision"],
        "mass": region["mass"],
        "node_share": region["node_share"],
        "enrichment": region["enrichment"],
        "distractor_mass": distractor_mass,
    }


def _downstream(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    args: argparse.Namespace,
) -> list[dict]:
    """Test C-index of each downstream model of ``args.models`` fitted on the training rows. A
    fit that fails (Coxnet's path diverging, "weights are too large") is recorded as NaN and
    named on stderr, as the study does; the average over models then skips it."""
    rows = []
    for model in args.models:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = run_baselines(
                    x, y, [(train, test)], names=[model], seed=seed, **BASELINE_SETTINGS
                )
            value = float(table.loc[table["metric"] == "c_index", "value"].iloc[0])
        except (ValueError, ArithmeticError) as err:
            print(
                f"    {model} failed, C-index N/A: {str(err).strip().splitlines()[0]}",
                file=sys.stderr,
            )
            value = float("nan")
        rows.append({"model": model, "metric": "c_index", "value": value})
    return rows


def run_cohort(
    name: str, cohort: PlantedCohort, root: Path, args: argparse.Namespace
) -> tuple[list[dict], list[dict], list[dict]]:
    """Every aggregator x seed x fold of one cohort.

    Returns:
        Downstream results (long: seed, fold, modality = cohort, aggregator, model, metric,
        value), fold sizes, and per trained run the own-head C-index and the selection
        stability.
    """
    if not args.rescore:
        graphs_dir, manifest = _written(cohort, root / name, args.cohort_seed)
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    n = len(cohort.subject_ids)
    y = Surv.from_arrays(cohort.event.astype(bool), cohort.time)
    patients = [f"P{s[1:]}" for s in cohort.subject_ids]
    strata = [str(e) for e in cohort.event]
    results, sizes, runs = [], [], []
    for seed in range(args.seeds):
        splits_path = root / name / f"splits_seed_{seed}.json"
        folds = load_or_create_splits(
            splits_path, cohort.subject_ids, patients, strata, args.folds, seed
        )
        for fold, split in enumerate(folds):
            sizes.append(
                {
                    "seed": seed,
                    "fold": fold,
                    "n_train": len(split["train"]),
                    "n_test": len(split["test"]),
                }
            )
        for aggregator, spec in AGGREGATORS.items():
            if aggregator == "region" and cohort.params.signal != "focal":
                continue
            start = time.perf_counter()
            fold_dirs = None
            if spec is not None:
                out_dir = root / name / aggregator / f"seed_{seed}"
                fold_dirs = [
                    out_dir / spec[0] / "pathology" / f"fold_{k}" for k in range(args.folds)
                ]
            if fold_dirs is not None and not args.rescore:
                config = TrainConfig(
                    graphs_dir=graphs_dir,
                    manifest=manifest,
                    out_dir=out_dir,
                    aggregator=spec[0],
                    aggregator_options=dict(spec[1]),
                    lr=args.lr,
                    epochs=args.epochs,
                    folds=args.folds,
                    seed=seed,
                    splits=splits_path,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    done = run_cross_validation(config, progress=False)
                fold_dirs = [r.fold_dir for r in done]
            for fold, split in enumerate(folds):
                train = np.array([index[s] for s in split["train"]])
                test = np.array([index[s] for s in split["test"]])
                if fold_dirs is None:
                    x = _untrained_vectors(cohort, aggregator)
                else:
                    x = _fold_vectors(fold_dirs[fold], index, n)
                    row = {
                        "cohort": name,
                        "aggregator": aggregator,
                        "seed": seed,
                        "fold": fold,
                        "own_head_c": _own_head_c(fold_dirs[fold]),
                    }
                    row.update(_recovery(fold_dirs[fold], cohort, split["test"]))
                    runs.append(row)
                key = {"fold": fold, "seed": seed, "modality": name, "aggregator": aggregator}
                results += [{**key, **row} for row in _downstream(x, y, train, test, seed, args)]
            print(
                f"  {name} seed {seed} {aggregator}: {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    return results, sizes, runs


def summary_table(results: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """Per cohort and aggregator: mean (SD) over seeds x folds of the average downstream C, and
    the paired difference to Mean with its interval and the corrected resampled t-test."""
    comparisons = cross_validated_comparisons(results, sizes)
    comparisons = comparisons[comparisons["model"] == AVG]
    per_fold = (
        results.groupby(["modality", "aggregator", "seed", "fold"])["value"]
        .mean()
        .rename("c")
        .reset_index()
    )
    rows = []
    for (cohort, aggregator), block in per_fold.groupby(["modality", "aggregator"], sort=False):
        row = {
            "cohort": cohort,
            "aggregator": aggregator,
            "c_mean": block["c"].mean(),
            "c_sd": block["c"].std(ddof=1),
            "runs": len(block),
        }
        if aggregator != "mean":
            match = comparisons[
                (comparisons["modality"] == cohort)
                & (comparisons["aggregator_a"].isin([aggregator, "mean"]))
                & (comparisons["aggregator_b"].isin([aggregator, "mean"]))
            ]
            cmp = match.iloc[0]
            sign = 1.0 if cmp["aggregator_a"] == aggregator else -1.0
            low, high = sorted((sign * cmp["ci_low"], sign * cmp["ci_high"]))
            row.update(diff=sign * cmp["difference"], ci_low=low, ci_high=high, p=cmp["p_value"])
        rows.append(row)
    return pd.DataFrame(rows)


def stability_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cohort and trained aggregator: own-head C (diagnostic), precision (SPARRA: share of
    the region among the kept nodes; ABMIL keeps every node) and mass on the region (median and
    range over runs), mass on the distractor, share of runs that find the region (mass >=
    :data:`FOUND_MASS`) and the distractor (the same on the distractor)."""
    rows = []
    for (cohort, aggregator), block in runs.groupby(["cohort", "aggregator"], sort=False):
        distractor = block["distractor_mass"].dropna()
        rows.append(
            {
                "cohort": cohort,
                "aggregator": aggregator,
                "runs": len(block),
                "own_head_c": block["own_head_c"].mean(),
                "node_share": block["node_share"].mean(),
                "precision_median": block["precision"].median(),
                "mass_median": block["mass"].median(),
                "mass_min": block["mass"].min(),
                "mass_max": block["mass"].max(),
                "found": float((block["mass"] >= FOUND_MASS).mean()),
                "distractor_mass_median": distractor.median() if len(distractor) else np.nan,
                "distractor_found": (
                    float((distractor >= FOUND_MASS).mean()) if len(distractor) else np.nan
                ),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="repeats of the cross-validation")
    parser.add_argument("--folds", type=int, default=5, help="outer folds")
    parser.add_argument("--subjects", type=int, default=120, help="subjects per cohort")
    parser.add_argument("--abundance-nodes", type=int, default=150)
    parser.add_argument("--abundance-dim", type=int, default=32)
    parser.add_argument("--focal-nodes", type=int, default=200)
    parser.add_argument("--focal-dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(BASELINES),
        choices=BASELINES,
        help="downstream survival models",
    )
    parser.add_argument(
        "--cohorts", nargs="+", default=["abundance", "focal"], choices=["abundance", "focal"]
    )
    parser.add_argument("--cohort-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the runs and write results.csv / runs.csv here"
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="train nothing: score the trained folds an earlier run kept in --out "
        "(same sizes and seeds) with --models",
    )
    args = parser.parse_args(argv)
    if args.rescore and args.out is None:
        parser.error("--rescore needs --out (the folder of the earlier run)")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cohorts = {k: v for k, v in make_cohorts(args).items() if k in args.cohorts}
    for name, cohort in cohorts.items():
        p = cohort.params
        print(
            f"{name}: {p.n_subjects} subjects x {p.n_nodes} nodes, {p.dim}-d, oracle C "
            f"{harrell_c(cohort.time, cohort.event, cohort.risk):.3f}, "
            f"{cohort.event.mean():.0%} events",
            flush=True,
        )
    print(
        f"{args.seeds} seeds x {args.folds} folds; downstream {', '.join(args.models)}; "
        f"lr {args.lr:g}, {args.epochs} epochs",
        flush=True,
    )
    results, sizes, runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name, cohort in cohorts.items():
            r, s, u = run_cohort(name, cohort, root, args)
            results += r
            sizes += [dict(row, cohort=name) for row in s]
            runs += u
        results, sizes, runs = pd.DataFrame(results), pd.DataFrame(sizes), pd.DataFrame(runs)
        if args.out is not None:
            results.to_csv(args.out / "results.csv", index=False)
            runs.to_csv(args.out / "runs.csv", index=False)
    pd.set_option("display.width", 160)
    for name in cohorts:
        table = summary_table(results[results["modality"] == name], sizes[sizes["cohort"] == name])
        failed = int(results.loc[results["modality"] == name, "value"].isna().sum())
        print(
            f"\n{name}: downstream C-index (mean of {len(args.models)} models; {failed} failed "
            "fits left out), mean (SD) over seeds x folds; difference to Mean, 95% CI, "
            "corrected resampled t-test"
        )
        print(table.round(3).to_string(index=False))
    print(
        "\nSelection (test subjects): share of the region among the kept nodes, importance "
        f"(attention) mass on the region and on the distractor; found = mass >= {FOUND_MASS}"
    )
    print(stability_table(runs).round(3).to_string(index=False))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
