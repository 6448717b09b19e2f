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
    np.testing.assert_allclose([s.covariates["true_risk"] for s in manifest.subjects], cohort.risk)
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


@pytest.fixture(scope="module")
def focal():
    return make_planted_cohort(
        PlantedParams.focal(
            n_subjects=80, n_nodes=400, dim=24, n_nodes_radiology=125, missing_radiology=0.25
        ),
        seed=4,
    )


def test_focal_directions_are_orthonormal(focal):
    for directions in focal.directions.values():
        basis = np.stack([directions[k] for k in ("marker", "distractor", "appearance")])
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)


def test_focal_region_and_distractor_are_disjoint_compact_and_of_one_size(focal):
    low, high = focal.params.max_fraction / 2, focal.params.max_fraction
    for modality, n_nodes in (("pathology", 400), ("radiology", 125)):
        for graph, fraction in zip(focal.graphs[modality], focal.planted_fraction[modality]):
            if graph is None:
                continue
            region, distractor = graph.planted.numpy(), graph.distractor.numpy()
            assert low <= fraction <= high
            assert region.sum() == distractor.sum() == round(fraction * n_nodes)
            assert not (region & distractor).any()
            pos = graph.pos.numpy()
            for mask in (region, distractor):
                assert cdist(pos[mask], pos[mask]).max() < 0.5 * cdist(pos, pos).max()


def test_focal_appearance_sets_the_hazard_and_size_does_not(focal):
    """Recompute each region's appearance from its node features (float64): the mean over the
    region of x . v is c z + noise of SD 1 / sqrt(n_r); the hazard is s z exactly, and the
    region's size carries no information about it."""
    params = focal.params
    v = focal.directions["pathology"]["appearance"]
    u = focal.directions["pathology"]["marker"]
    z = focal.appearance["pathology"]
    seen, marker, sizes = [], [], []
    for graph in focal.graphs["pathology"]:
        x = graph.x.double().numpy()
        seen.append((x[graph.planted.numpy()] @ v).mean() / params.appearance)
        marker.append((x[graph.planted.numpy()] @ u).mean())
        sizes.append(graph.planted.sum().item())
    seen = np.array(seen)
    # noise SD of seen: 1 / (c sqrt(n_r)) with n_r >= 8 nodes: <= 0.24
    assert np.abs(seen - z).max() < 5 * 0.24
    assert np.corrcoef(seen, z)[0, 1] > 0.95
    np.testing.assert_allclose(np.mean(marker), params.amplitude, atol=0.1)
    rad = np.nan_to_num(focal.appearance["radiology"])
    np.testing.assert_allclose(focal.risk, params.strength * z + params.strength_radiology * rad)
    assert abs(np.corrcoef(sizes, focal.risk)[0, 1]) < 0.3


def test_mean_pooling_sees_the_appearance_mixed_with_the_distractors(focal):
    """A graph's mean along v is (n_r / N) c (z + z'): the distractor's appearance z' enters
    one to one, so the mean's correlation with z is about 1 / sqrt(2)."""
    params, v = focal.params, focal.directions["pathology"]["appearance"]
    along, region_part, distractor_part = [], [], []
    for graph, z in zip(focal.graphs["pathology"], focal.appearance["pathology"]):
        x = graph.x.double().numpy()
        along.append((x @ v).mean())
        region_part.append(graph.planted.sum().item() / 400 * params.appearance * z)
        distractor_part.append((x[graph.distractor.numpy()] @ v).sum() / 400)
    along, region_part = np.array(along), np.array(region_part)
    # what is left after the region's part is the distractor's part plus background noise
    residual = along - region_part - np.array(distractor_part)
    assert residual.std() < 3 / np.sqrt(400 - 2 * 16)
    assert np.corrcoef(along, focal.appearance["pathology"])[0, 1] < 0.85


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"signal": "size"}, "signal"),
        ({"distractor_fraction": 0.02}, "distractor_fraction"),
        ({"appearance": 0.0}, "appearance"),
        ({"dim": 2}, "dim"),
    ],
)
def test_focal_settings_are_checked(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        PlantedParams.focal(**overrides)


def test_recovery_mass_against_hand_counts():
    importance = [np.array([0.0, 0.6, 0.4, 0.0]), np.array([0.5, 0.5, 0.0, 0.0])]
    planted = [np.array([False, True, False, True]), np.array([True, False, False, False])]
    rec = planted_recovery(importance, planted)
    assert rec["mass"] == pytest.approx((0.6 + 0.5) / 2)
    assert rec["node_share"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    with pytest.raises(ValueError, match="non-negative"):
        planted_recovery([np.array([-0.1, 1.1])], [np.array([True, False])])
