"""SPARRA and ABMIL on a focal planted signal, judged the paper's way: SPARRA's selection over
many seeds, and the subject vectors scored by a downstream ridge CoxPH.

The focal cohort (:meth:`PlantedParams.focal`, cohort seed 0, 64-d node features, marker shift
6 SD): each graph has a compact region of 2-4% of its nodes marked along one direction u,
whose appearance along an orthogonal direction v sets the hazard (log hazard ratio 1.5 per SD),
and a distractor region of the same size marked along u' with the same appearance direction as
noise. Mean pooling sees v only as the sum of the region's and the distractor's appearance; a
selection that keeps the region's nodes hands the downstream model the prognostic appearance
alone. SPARRA's two TopK(0.2) layers keep k^2 = 4% of the nodes. Training: the paper's settings
except lr = 1e-3 (20 epochs, batch 32, dropout 0.5; at 3e-4 the few dozen steps barely move
the weights), one torch thread (OpenMP threads waiting for each other on a shared 2-core
machine made a run 10x slower).

Selection (``selection`` fixture: 64 subjects x 250 nodes, SPARRA trained on all of them,
training seeds 0-11; importance on the training subjects). Measured over seeds 0-39 (1
thread): the mean share of a graph's importance on the region ("mass") is bimodal: < 0.05 in
21 runs (the region dropped), 0.30-0.68 in 14 (found: mass >= 0.25), 0.09-0.22 in 5; the
distractor got mass >= 0.25 in 7 runs, so the selection keeps whichever marked nodes the
initial weights and the dropout stream favour, not the prognostic ones. In the found runs the
region's share among the kept nodes was 10-23x its node share (0.030). Seeds 0-11: found in 4
(seeds 0, 3, 8, 11). The tests assert, with binomial margins for 12 runs of a 35% basin
(P(0 found) = 0.6%, P(>= 9) = 0.6%): found in 1 to 8 of 12 runs, the region dropped
(mass < 0.05) in at least one, and enrichment >= 8x in every run that finds it.

Downstream (``cv`` fixture: the focal cohort of ``benchmarks/sparra_evidence.py``, 120
subjects x 200 nodes, fold 0 of the 5-fold split of each of the seeds 0-4; Mean pooling = the
per-subject mean of the node features, no trained head; ridge CoxPH with inner-CV alpha and
univariate screening on each aggregator's training-fold vectors, Harrell's C on the test fold).
Measured over the benchmark's 25 folds (5 seeds x 5 folds; its ridge-only run of 2026-11-30,
two torch threads): Mean 0.489 (SD 0.064 over folds),
region mean 0.741 (region minus Mean: 0.252, SD 0.088, min 0.048); SPARRA kept the region
(mass >= 0.25) in 6 of 25 runs, which scored 0.63-0.75 (mean 0.704; Mean on the same folds
0.537), the other 19 0.493 on average. Fold 0 of seeds 0-4 (the runs of this test; the same
numbers as the benchmark's): Mean 0.520, 0.540, 0.423, 0.642, 0.419; region 0.795, 0.840,
0.601, 0.757, 0.820; SPARRA 0.754, 0.743, 0.381, 0.630, 0.293 with mass 0.52, 0.58, 0.05,
0.38, 0.00. The tests assert the mean over the five folds: Mean <= 0.6 and region - Mean >= 0.1
(both 3.9 standard errors of a five-fold mean from the measured means); the runs that keep the
region score >= 0.1 above those that drop it and >= 0.05 above Mean on their folds (measured
0.37 and 0.14 here; 0.21 and 0.17 over the 25 folds, per found run 0.14-0.24 and one -0.01).
Should all five runs fall in one basin (on another platform, rounding can move a run to the
other basin; 1 in 4 for five runs of a 24% basin) that test is skipped, saying so.

ABMIL, same folds: over the benchmark's 25, 0.646 (SD 0.113), ABMIL minus Mean 0.157 (SD 0.109,
above 0 in 23 of 25; 95% CI of the corrected resampled t-test 0.035-0.278); attention mass on
the region 0.454 (SD 0.315, 0.02-0.92), on the distractor 0.020 (SD 0.018, at most 0.063).
Fold 0 of seeds 0-4: ABMIL 0.772, 0.733, 0.583, 0.636, 0.707 (minus Mean: mean 0.177), mass on
the region 0.78, 0.19, 0.73, 0.16, 0.61, on the distractor 0.00-0.02. The test asserts the
mean over the five folds: ABMIL - Mean > 0 (3.2 standard errors of a five-fold mean below the
measured 0.157), mass on the region >= 0.1 (2.5 SE below 0.454) and on the distractor <= 0.05
(3.7 SE above 0.020).

CPU time of this file (one thread; a trained fold costs ABMIL 8-9 s of CPU, SPARRA 5 s): 79 s
before the ABMIL runs were added, at load ~11; with them 180-255 s measured at load 10-16 on the
shared 2-core machine (wall 9-14 min), about 125 s expected on an idle one (not measured).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sksurv.util import Surv

from radiograph.nn import build_aggregator
from radiograph.stats import harrell_c
from radiograph.survival.baselines import make_baseline
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort, planted_recovery
from radiograph.train.config import TrainConfig
from radiograph.train.data import SubjectRecord, node_scaling
from radiograph.train.trainer import fit, predict, run_cross_validation

FOUND_MASS = 0.25
"""A run finds the region when the mean share of a graph's importance on it is at least this
(uniform weights give the node share, 0.03)."""

SELECTION_SEEDS = range(12)
CV_SEEDS = range(5)
LR = 1e-3


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def selection(one_thread):
    """Per training seed: the region's and the distractor's recovery on the training subjects."""
    cohort = make_planted_cohort(PlantedParams.focal(n_subjects=64, n_nodes=250, dim=64), seed=0)
    graphs = cohort.graphs["pathology"]
    records = [
        SubjectRecord(
            s, s, float(cohort.time[i]), int(cohort.event[i]), None, {"pathology": graphs[i]}
        )
        for i, s in enumerate(cohort.subject_ids)
    ]
    config = TrainConfig(graphs_dir=".", manifest=".", out_dir=".", lr=LR)
    runs = []
    for seed in SELECTION_SEEDS:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_aggregator("sparra", {"pathology": 64}, dropout=config.dropout)
            model.set_node_scaling(node_scaling(records, ["pathology"]))
            fit(
                model,
                records,
                config,
                device=torch.device("cpu"),
                generator=torch.Generator().manual_seed(seed),
                progress=False,
            )
        importance = [
            p["pathology"]
            for p in predict(model, records, config.batch_size, torch.device("cpu")).importance
        ]
        region = planted_recovery(importance, [g.planted.numpy() for g in graphs])
        distractor = planted_recovery(importance, [g.distractor.numpy() for g in graphs])
        runs.append(
            {
                "seed": seed,
                "mass": region["mass"],
                "precision": region["precision"],
                "node_share": region["node_share"],
                "distractor_mass": distractor["mass"],
            }
        )
    for run in runs:
        print(
            ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items()
            )
        )
    return runs


def test_selection_has_two_basins(selection):
    """SPARRA finds the region in some runs and drops it in others; nothing in its objective
    steers the selection to it."""
    mass = np.array([run["mass"] for run in selection])
    found = int((mass >= FOUND_MASS).sum())
    assert 1 <= found <= 8, f"region found in {found} of {len(mass)} runs"
    assert (mass < 0.05).any(), "every run kept part of the region"


def test_runs_that_find_the_region_enrich_it_among_the_kept_nodes(selection):
    found = [run for run in selection if run["mass"] >= FOUND_MASS]
    assert found
    for run in found:
        assert run["precision"] >= 8 * run["node_share"], run


@pytest.fixture(scope="module")
def cv(one_thread, tmp_path_factory):
    """Fold 0 of each seed's 5-fold split: the test C-index of ridge CoxPH on the subject vectors
    of Mean pooling, of the oracle region mean, of SPARRA and of ABMIL, and the importance
    (SPARRA) or attention (ABMIL) mass of the trained models on the region and the distractor."""
    root = tmp_path_factory.mktemp("focal")
    cohort = make_planted_cohort(PlantedParams.focal(n_subjects=120, n_nodes=200, dim=64), seed=0)
    graphs_dir, manifest = cohort.write(root)
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    graphs = cohort.graphs["pathology"]
    untrained = {
        "mean": np.stack([g.x.double().mean(0).numpy() for g in graphs]),
        "region": np.stack([g.x[g.planted].double().mean(0).numpy() for g in graphs]),
    }
    y = Surv.from_arrays(cohort.event.astype(bool), cohort.time)
    runs = []
    for seed in CV_SEEDS:
        run = {"seed": seed}
        for aggregator in ("sparra", "abmil"):
            config = TrainConfig(
                graphs_dir=graphs_dir,
                manifest=manifest,
                out_dir=root / f"{aggregator}_{seed}",
                aggregator=aggregator,
                lr=LR,
                run_folds=(0,),
                seed=seed,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run_cross_validation(config, progress=False)[0]
            stored = np.load(result.fold_dir / "embeddings.npz")
            rows = np.array([index[s] for s in stored["subject_ids"]])
            test = stored["split"] == "test"
            vectors = {aggregator: stored["x"]}
            if aggregator == "sparra":
                vectors.update({k: v[rows] for k, v in untrained.items()})
                run["own_head"] = result.metrics["c_index_test"]
            for name, x in vectors.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = make_baseline("coxph", seed=seed).fit(x[~test], y[rows][~test])
                run[name] = harrell_c(
                    cohort.time[rows][test], cohort.event[rows][test], model.predict(x[test])
                )
            test_ids = stored["subject_ids"][test]
            importance = [
                np.load(result.fold_dir / "importance" / f"{s}.npz")["pathology_importance"]
                for s in test_ids
            ]
            for mask in ("planted", "distractor"):
                truth = [getattr(graphs[index[s]], mask).numpy() for s in test_ids]
                recovery = planted_recovery(importance, truth)
                run[f"{aggregator}_{mask}_mass"] = recovery["mass"]
                run["node_share"] = recovery["node_share"]
        runs.append(run)
        print(
            ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items()
            )
        )
    return runs


def test_mean_pooling_cannot_see_a_focal_signal_that_a_selection_can(cv):
    """The cohort's regime: Mean pooling's subject vectors score near chance downstream, the
    mean over the prognostic region's nodes (a perfect selection) far above them."""
    mean = np.mean([run["mean"] for run in cv])
    region = np.mean([run["region"] for run in cv])
    assert mean <= 0.6
    assert region - mean >= 0.1


def test_sparra_scores_like_the_oracle_selection_when_it_keeps_the_region(cv):
    """Downstream C of SPARRA's subject vectors follows its selection: the runs that keep the
    region score far above those that drop it."""
    found = [run for run in cv if run["sparra_planted_mass"] >= FOUND_MASS]
    dropped = [run for run in cv if run["sparra_planted_mass"] < FOUND_MASS]
    if not found or not dropped:
        pytest.skip(f"all {len(cv)} runs fell in one basin ({len(found)} found the region)")
    sparra_found = np.mean([run["sparra"] for run in found])
    assert sparra_found - np.mean([run["sparra"] for run in dropped]) >= 0.1
    assert sparra_found - np.mean([run["mean"] for run in found]) >= 0.05


def test_abmil_is_ahead_of_mean_pooling_and_attends_to_the_region(cv):
    """ABMIL's softmax attention gets a gradient through every node: its subject vectors score
    above Mean pooling's downstream, and its attention sits on the prognostic region, not on the
    equally conspicuous distractor."""
    assert np.mean([run["abmil"] - run["mean"] for run in cv]) > 0
    assert np.mean([run["abmil_planted_mass"] for run in cv]) >= 0.1
    assert np.mean([run["abmil_distractor_mass"] for run in cv]) <= 0.05
