"""Planted signal: after training, SPARRA's node importance finds the planted prognostic blob,
and its test C-index is at least Mean pooling's.

Cohort: :func:`make_planted_cohort` with 150 subjects x 150 pathology nodes (32-d features),
cohort seed 0; each graph has a compact blob of 0-4% of its nodes shifted by 6 standard
deviations along a signature, log hazard = 4.8 x fraction / 4%, ~40% censored. The planted
fraction never exceeds k^2 = 4%, the fraction SPARRA's two TopK(0.2) layers keep, so an
importance AUROC near 1 is attainable (SPARRA.md: with p > k^2 the AUROC ceiling is
0.5 + 0.5 k^2 / p).

Training (``radiograph train`` end to end, files and all): the paper's settings except
lr = 1e-3 (as the SPARRA.md prototype; at 3e-4 the 80 steps of 20 epochs on 120 subjects barely
move the weights), 20 epochs, batch 32, dropout 0.5; folds 0 and 1 of the 5-fold split of
seed 0, chosen before looking at any result. SPARRA and Mean are judged on the mean over the
two folds, as SPARRA.md advises (41 or fewer test subjects per fold are noisy).

What SPARRA shows here (measured while writing this test): whether training finds the blob
depends on the initialisation, because TopK passes no gradient through the nodes it drops and
the planted nodes start out dropped. Over 28 initialisations on one cohort of this size it found
the blob in about one in five (then AUROC 0.8-0.95, enrichment ~15-20x, test C-index near the
oracle's); otherwise it kept almost no planted node (AUROC ~0.48). Whether the blob is kept is
settled at initialisation: on a 205-subject cohort with planted fractions up to 12%, the
fraction of kept test nodes that are planted was 0.83 before training and 0.85 after for one
seed, 0.00 and 0.00 for another. So
the test runs the paper's protocol (one run per fold) and the ``restarts`` option (4
initialisations per fold, each scored on a held-out fifth of the training patients, the best
retrained on the whole training fold). Measured on the pre-registered folds: one run per fold,
AUROC 0.48 and 0.48; best of 4, AUROC 0.87 (enrichment 19x, recall 0.77) and 0.48 (best of 8:
the same). The issue's AUROC >=
0.85 target is therefore recorded as two strict expected failures, which turn into failures,
to be promoted, once the method reaches it here. The C-index comparisons
hold: SPARRA's mean test C-index is above Mean pooling's, which barely sees a blob of <= 6 of
150 nodes in a per-subject mean.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sksurv.metrics import concordance_index_censored

from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort, planted_recovery
from radiograph.train.config import TrainConfig
from radiograph.train.trainer import run_cross_validation

FOLDS = (0, 1)
RESTARTS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train SPARRA and Mean on folds 0 and 1; return the cohort and both results."""
    root = tmp_path_factory.mktemp("planted")
    cohort = make_planted_cohort(PlantedParams(n_subjects=150, n_nodes=150), seed=0)
    graphs_dir, manifest = cohort.write(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    results = {}
    runs = {"sparra": ("sparra", 1), "sparra_restarts": ("sparra", RESTARTS), "mean": ("mean", 1)}
    try:
        for name, (aggregator, restarts) in runs.items():
            config = TrainConfig(graphs_dir=graphs_dir, manifest=manifest, out_dir=root / name,
                                 aggregator=aggregator, lr=1e-3, epochs=20, run_folds=FOLDS,
                                 restarts=restarts)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[name] = run_cross_validation(config, progress=False)
    finally:
        torch.set_num_threads(threads)
    return cohort, results


def _test_ids(fold_dir) -> list[str]:
    table = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    return table.loc[table["split"] == "test", "subject_id"].tolist()


def test_oracle_c_index_is_high_enough(trained):
    """The planted hazard is strong enough to be learnable (SPARRA.md: oracle >= 0.75)."""
    cohort, results = trained
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    for result in results["sparra"]:
        rows = [index[s] for s in _test_ids(result.fold_dir)]
        oracle = concordance_index_censored(
            cohort.event[rows].astype(bool), cohort.time[rows], cohort.risk[rows])[0]
        assert oracle >= 0.75


def test_single_run_c_index_at_least_mean_pooling(trained):
    _, results = trained
    sparra = np.mean([r.metrics["c_index_test"] for r in results["sparra"]])
    mean = np.mean([r.metrics["c_index_test"] for r in results["mean"]])
    print(f"test C-index over folds {FOLDS}: SPARRA {sparra:.3f}, Mean {mean:.3f}")
    assert sparra >= mean


def _recovery(cohort, results) -> list[dict[str, float]]:
    """planted_recovery of the test subjects of each fold."""
    index = {s: i for i, s in enumerate(cohort.subject_ids)}
    recoveries = []
    for result in results:
        importance, planted = [], []
        for sid in _test_ids(result.fold_dir):
            arrays = np.load(result.fold_dir / "importance" / f"{sid}.npz")
            importance.append(arrays["pathology_importance"])
            planted.append(cohort.graphs["pathology"][index[sid]].planted.numpy())
        recoveries.append(planted_recovery(importance, planted))
    for fold, rec in zip(FOLDS, recoveries):
        print(f"fold {fold}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items()))
    return recoveries


@pytest.mark.xfail(strict=True, reason="measured: a single run per fold leaves the planted blob "
                   "dropped by TopK on the pre-registered folds (AUROC 0.48, 0.48)")
def test_single_run_importance_ranks_planted_nodes_first(trained):
    """The paper's protocol (one run per fold): pooled test AUROC >= 0.85, enrichment >= 5."""
    cohort, results = trained
    recoveries = _recovery(cohort, results["sparra"])
    assert np.mean([r["auroc"] for r in recoveries]) >= 0.85
    assert np.mean([r["enrichment"] for r in recoveries]) >= 5.0


@pytest.mark.xfail(strict=True, reason="measured: best of 4 restarts chosen on held-out training "
                   "patients gives AUROC 0.87 (fold 0) and 0.48 (fold 1)")
def test_restarts_importance_ranks_planted_nodes_first(trained):
    """Best of 4 restarts (held-out training patients): pooled test AUROC >= 0.85, enrichment
    >= 5."""
    cohort, results = trained
    recoveries = _recovery(cohort, results["sparra_restarts"])
    assert np.mean([r["auroc"] for r in recoveries]) >= 0.85
    assert np.mean([r["enrichment"] for r in recoveries]) >= 5.0


def test_restarts_c_index_at_least_mean_pooling(trained):
    _, results = trained
    sparra = np.mean([r.metrics["c_index_test"] for r in results["sparra_restarts"]])
    mean = np.mean([r.metrics["c_index_test"] for r in results["mean"]])
    print(f"test C-index over folds {FOLDS}: SPARRA (best of {RESTARTS}) {sparra:.3f}, "
          f"Mean {mean:.3f}")
    assert sparra >= mean
