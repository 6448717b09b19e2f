"""SPARRA on a focal planted signal, judged the paper's way: selection over many seeds, and
subject vectors scored by a downstream ridge CoxPH.

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
(P(0 found) = 0.6%, P(>= 9) = 0.3%): found in 1 to 8 of 12 runs, the region dropped
(mass < 0.05) in at least one, and enrichment >= 8x in every run that finds it.

Downstream (``cv`` fixture: the focal cohort of ``benchmarks/sparra_evidence.py``, 120
subjects x 200 nodes, fold 0 of the 5-fold split of each of the seeds 0-4; Mean pooling = the
per-subject mean of the node features, no trained head; ridge CoxPH with inner-CV alpha and
univariate screening on each aggregator's training-fold vectors, Harrell's C on the test fold).
DOWNSTREAM_MEASURED
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
    records = [SubjectRecord(s, s, float(cohort.time[i]), int(cohort.event[i]), None,
                             {"pathology": graphs[i]}) for i, s in enumerate(cohort.subject_ids)]
    config = TrainConfig(graphs_dir=".", manifest=".", out_dir=".", lr=LR)
    runs = []
    for seed in SELECTION_SEEDS:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = build_aggregator("sparra", {"pathology": 64}, dropout=config.dropout)
            model.set_node_scaling(node_scaling(records, ["pathology"]))
            fit(model, records, config, device=torch.device("cpu"),
                generator=torch.Generator().manual_seed(seed), progress=False)
        importance = [p["pathology"] for p in
                      predict(model, records, config.batch_size, torch.device("cpu")).importance]
        region = planted_recovery(importance, [g.planted.numpy() for g in graphs])
        distractor = planted_recovery(importance, [g.distractor.numpy() for g in graphs])
        runs.append({"seed": seed, "mass": region["mass"], "precision": region["precision"],
                     "node_share": region["node_share"], "distractor_mass": distractor["mass"]})
    for run in runs:
        print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in run.items()))
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
