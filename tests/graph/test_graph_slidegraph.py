"""The sparse SlideGraph clustering against the dense construction it replaces."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist, squareform

from radiograph.graph import SlideGraphParams, build_spatial_graph, delaunay_edges
from radiograph.graph.slidegraph import hybrid_clusters

PEER_FILE = (
    Path(__file__).resolve().parents[2] / ".bench-peers" / "tiatoolbox" / "tools" / "graph.py"
)


def dense_reference(coords: np.ndarray, features: np.ndarray, p: SlideGraphParams) -> np.ndarray:
    """TIAToolbox's definition written out densely: D = 1 - f*d inside the radius, 1 outside,
    scipy average linkage, fcluster at lambda_h."""
    spatial = squareform(pdist(coords))
    feature = squareform(pdist(features))
    dist = 1.0 - np.exp(-p.lambda_f * feature) * np.exp(-p.lambda_d * spatial)
    dist[spatial >= p.neighbour_search_radius] = 1.0
    np.fill_diagonal(dist, 0.0)
    return hierarchy.fcluster(
        hierarchy.linkage(squareform(dist, checks=False), "average"),
        p.lambda_h,
        criterion="distance",
    )


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("seed", range(8))
def test_partition_equals_dense_average_linkage(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 400))
    dim = 2 + seed % 2
    coords = rng.uniform(0, 20, (n, dim))
    centres = rng.normal(size=(4, 8)) * 5
    features = centres[rng.integers(0, 4, n)] + rng.normal(size=(n, 8))
    params = SlideGraphParams(
        lambda_d=rng.uniform(0.02, 0.3),
        lambda_f=rng.uniform(0.02, 0.3),
        lambda_h=rng.uniform(0.6, 0.95),
        neighbour_search_radius=rng.uniform(3, 12),
        feature_range_thresh=None,
    )
    ours = hybrid_clusters(coords, features, params)
    reference = dense_reference(coords, features, params)
    assert 1 < len(set(reference.tolist())) < n  # the case is not trivial
    assert same_partition(ours, reference)


def test_feature_range_thresh_drops_low_range_features_from_the_distance():
    rng = np.random.default_rng(3)
    coords = rng.uniform(0, 20, (200, 2))
    informative = rng.normal(size=(200, 4)) * 10  # ranges ~ 50
    narrow = rng.uniform(0, 4, (200, 3))  # ranges < 4: ignored at feature_range_thresh=5
    params = dict(lambda_d=0.1, lambda_f=0.1, lambda_h=0.8, neighbour_search_radius=6)
    filtered = hybrid_clusters(
        coords,
        np.hstack([informative, narrow]),
        SlideGraphParams(**params, feature_range_thresh=5.0),
    )
    unfiltered = hybrid_clusters(
        coords,
        np.hstack([informative, narrow]),
        SlideGraphParams(**params, feature_range_thresh=None),
    )
    reference = dense_reference(coords, informative, SlideGraphParams(**params))
    assert same_partition(filtered, reference)
    assert not same_partition(unfiltered, reference)


def test_memory_grows_linearly_not_quadratically():
    # 20k patches: a dense float64 distance matrix alone would take 1.6 GB.
    rng = np.random.default_rng(0)
    side = 142
    coords = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) * 256.0
    features = rng.normal(size=(len(coords), 32)).astype(np.float32)
    tracemalloc.start()
    data = build_spatial_graph(
        coords,
        features,
        lambda_d=3e-3 * 2,
        connectivity_distance=2000,
        neighbour_search_radius=1000,
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert data.num_patches.sum() == len(coords)
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def _load_peer():
    if not PEER_FILE.exists():
        pytest.skip(f"TIAToolbox not installed in {PEER_FILE.parents[2]} (see benchmarks/graph.py)")
    if "umap" not in sys.modules:  # only the peer's plotting uses umap
        try:
            import umap  # noqa: F401
        except ImportError:
            sys.modules["umap"] = types.ModuleType("umap")
    spec = importlib.util.spec_from_file_location("peer_tiatoolbox_graph", PEER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SlideGraphConstructor


def test_same_graph_as_tiatoolbox():
    peer = _load_peer()
    rng = np.random.default_rng(11)
    coords = rng.uniform(0, 12000, (600, 2))
    features = rng.normal(size=(600, 16)) * 40 + (coords[:, :1] > 6000) * 300
    params = dict(
        lambda_d=1e-3,
        lambda_f=2e-3,
        lambda_h=0.7,
        connectivity_distance=2500,
        neighbour_search_radius=1500,
        feature_range_thresh=1e-4,
    )
    expected = peer.build(coords, features, **params)
    data = build_spatial_graph(coords, features, **params)
    assert data.num_nodes == len(expected["x"])
    # Same clusters: match nodes through their (rounded, as the peer rounds) centroids.
    ours_key = {tuple(np.round(p)): i for i, p in enumerate(data.pos.numpy())}
    assert len(ours_key) == data.num_nodes
    match = np.array([ours_key[tuple(p)] for p in expected["coordinates"]])
    np.testing.assert_allclose(data.x.numpy()[match], expected["x"], rtol=1e-5, atol=1e-4)
    # Same edge rule: on the peer's (rounded) centroids our Delaunay edges are the peer's.
    edges, _ = delaunay_edges(expected["coordinates"], params["connectivity_distance"])
    assert set(map(tuple, edges.T.tolist())) == set(map(tuple, expected["edge_index"].T.tolist()))
