"""The planted-signal cohort generator (radiograph.synth.planted_graphs)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from radiograph.manifest import load_manifest
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort, planted_recovery
from radiograph.train.data import load_graph_cohort


@pytest.fixture(scope="module")
def cohort():
    return make_planted_cohort(
        PlantedParams(n_subjects=400, n_nodes=100, n_nodes_radiology=64, missing_radiology=0.25),
        seed=5,
    )


def test_planted_blobs_are_compact_and_sized_by_the_fraction(cohort):
    params = cohort.params
    for modality, n_nodes in (("pathology", 100), ("radiology", 64)):
        for graph, fraction in zip(cohort.graphs[modality], cohort.planted_fraction[modality]):
            if graph is None:
                assert np.isnan(fraction)
                continue
            assert 0 <= fraction <= params.max_fraction
            planted = graph.planted.numpy()
            assert planted.sum() == round(fraction * n_nodes)
            assert graph.pos.shape == (n_nodes, 2 if modality == "pathology" else 3)
            if planted.sum() >= 2:
                # A blob of nearest neighbours: its diameter is small against the grid.
                pos = graph.pos.numpy()
                spread = cdist(pos[planted], pos[planted]).max()
                assert spread < 0.5 * cdist(pos, pos).max()


def test_signature_shifts_planted_features(cohort):
    graphs = [g for g in cohort.graphs["pathology"] if g.planted.any()]
    planted = np.concatenate([g.x[g.planted].numpy() for g in graphs])
    other = np.concatenate([g.x[~g.planted].numpy() for g in graphs])
    shift = planted.mean(axis=0) - other.mean(axis=0)
    assert np.linalg.norm(shift) == pytest.approx(cohort.params.amplitude, rel=0.1)
    np.testing.assert_allclose(other.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(other.std(axis=0), 1.0, atol=0.02)


def test_hazard_and_censoring(cohort):
    params = cohort.params
    path = cohort.planted_fraction["pathology"]
    rad = np.nan_to_num(cohort.planted_fraction["radiology"])
    expected = (params.strength * path + params.strength_radiology * rad) / params.max_fraction
    np.testing.assert_allclose(cohort.risk, expected)
    assert abs(1 - cohort.event.mean() - params.censored_fraction) < 0.07
    assert (cohort.time > 0).all()
    # Higher true risk, earlier events: the log-rank-free check is a Cox-free correlation.
    events = cohort.event == 1
    assert np.corrcoef(cohort.risk[events], np.log(cohort.time[events]))[0, 1] < -0.3


def test_same_seed_same_cohort():
    a = make_planted_cohort(PlantedParams(n_subjects=5, n_nodes=20), seed=3)
    b = make_planted_cohort(PlantedParams(n_subjects=5, n_nodes=20), seed=3)
    np.testing.assert_array_equal(a.time, b.time)
    for ga, gb in zip(a.graphs["pathology"], b.graphs["pathology"]):
        assert (ga.x == gb.x).all() and (ga.edge_index == gb.edge_index).all()


def test_written_cohort_reads_back(tmp_path):
    cohort = make_planted_cohort(
        PlantedParams(n_subjects=12, n_nodes=20, n_nodes_radiology=8, missing_radiology=0.3),
        seed=2,
    )
    graphs_dir, manifest_path = cohort.write(tmp_path)
    manifest = load_manifest(manifest_path)
    assert [s.subject_id for s in manifest.subjects] == cohort.subject_ids
    np.testing.assert_allclose([s.time for s in manifest.subjects], cohort.time)
    np.testing.assert_allclose([s.covariates["true_risk"] for s in manifest.subjects],
                               cohort.risk)
    loaded = load_graph_cohort(graphs_dir, manifest, ["pathology", "radiology"])
    for sid, graph in zip(cohort.subject_ids, cohort.graphs["radiology"]):
        assert ("radiology" in loaded.records[sid].graphs) == (graph is not None)


def test_planted_recovery_against_hand_counts():
    importance = [np.array([0.0, 0.7, 0.3, 0.0]), np.array([0.5, 0.0, 0.5, 0.0])]
    planted = [np.array([False, True, False, True]), np.array([False, False, False, False])]
    rec = planted_recovery(importance, planted)
    assert rec["precision"] == pytest.approx(1 / 4)  # 4 kept nodes, 1 planted
    assert rec["base_rate"] == pytest.approx(2 / 8)
    assert rec["enrichment"] == pytest.approx(1.0)
    assert rec["recall"] == pytest.approx(1 / 2)
    # Graph 1 (graph 2 has no planted node): planted {0.7, 0} vs others {0, 0.3}; pairs won
    # 0.7>0, 0.7>0.3, 0=0 (half), 0<0.3: 2.5 of 4.
    assert rec["auroc_per_graph"] == pytest.approx(0.625)
    # Pooled: planted {0.7, 0} vs others {0, 0.3, 0.5, 0, 0.5, 0}: 0.7 beats all 6; 0 ties 3 of 6.
    assert rec["auroc"] == pytest.approx((6 + 1.5) / 12)
