"""SlideGraph's neighbour pairs built block by block, in 32-bit indices, against a brute-force
float64 computation, and the memory they take at a dense neighbourhood."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from radiograph.graph import slidegraph
from radiograph.graph.slidegraph import (
    SlideGraphParams,
    average_linkage_cut,
    hybrid_clusters,
    neighbour_similarities,
)


def brute_force_pairs(
    coords: np.ndarray, features: np.ndarray, p: SlideGraphParams
) -> dict[tuple[int, int], float]:
    """{(i, j): s_ij} for i < j closer than the radius, from dense float64 distances."""
    spatial = cdist(coords, coords)
    feature = cdist(features.astype(np.float64), features.astype(np.float64))
    i, j = np.nonzero(np.triu(spatial < p.neighbour_search_radius, k=1))
    sim = np.exp(-p.lambda_f * feature[i, j]) * np.exp(-p.lambda_d * spatial[i, j])
    return dict(zip(zip(i.tolist(), j.tolist()), sim.tolist()))


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("pair_block", [1, 97, 10**9])
def test_blocks_give_every_pair_once(dim, pair_block):
    """Whatever the block size (one patch at a time, a few, all at once): every pair within the
    radius once, as (row < col) sorted by row then column, int32, with the float64
    similarity."""
    rng = np.random.default_rng(dim)
    coords = rng.uniform(0, 15, (300, dim))
    coords[7] = coords[3]  # a duplicate position: distance 0 is a neighbour
    features = rng.normal(size=(300, 12)).astype(np.float32)
    params = SlideGraphParams(
        lambda_d=0.2,
        lambda_f=0.1,
        lambda_h=0.8,
        neighbour_search_radius=4.0,
        feature_range_thresh=None,
    )
    rows, cols, sim = neighbour_similarities(coords, features, params, pair_block=pair_block)
    assert rows.dtype == cols.dtype == np.int32 and sim.dtype == np.float64
    assert (rows < cols).all()
    assert (np.diff(rows.astype(np.int64) * 300 + cols) > 0).all()
    expected = brute_force_pairs(coords, features, params)
    assert set(zip(rows.tolist(), cols.tolist())) == set(expected)
    np.testing.assert_allclose(
        sim, [expected[k] for k in zip(rows.tolist(), cols.tolist())], rtol=1e-6
    )


def test_cut_is_the_same_for_any_pair_order():
    """The clustering of a pair list does not depend on the order of its pairs."""
    rng = np.random.default_rng(4)
    coords = rng.uniform(0, 20, (400, 2))
    features = (rng.normal(size=(5, 8)) * 4)[rng.integers(0, 5, 400)] + rng.normal(size=(400, 8))
    params = SlideGraphParams(
        lambda_d=0.1,
        lambda_f=0.1,
        lambda_h=0.8,
        neighbour_search_radius=5.0,
        feature_range_thresh=None,
    )
    rows, cols, sim = neighbour_similarities(coords, features, params)
    order = rng.permutation(len(rows))
    labels = average_linkage_cut(400, rows, cols, sim, params.lambda_h)
    shuffled = average_linkage_cut(400, rows[order], cols[order], sim[order], params.lambda_h)
    assert 1 < labels.max() < 399
    np.testing.assert_array_equal(labels, shuffled)


def test_small_blocks_give_the_same_clusters(monkeypatch):
    """The default clustering and one with blocks of 50 pairs give the same labels."""
    rng = np.random.default_rng(5)
    coords = rng.uniform(0, 30, (600, 2))
    features = rng.normal(size=(600, 6))
    params = SlideGraphParams(
        lambda_d=0.1,
        lambda_f=0.2,
        lambda_h=0.85,
        neighbour_search_radius=4.0,
        feature_range_thresh=None,
    )
    expected = hybrid_clusters(coords, features, params)
    monkeypatch.setattr(slidegraph, "PAIR_BLOCK", 50)
    np.testing.assert_array_equal(hybrid_clusters(coords, features, params), expected)


def test_memory_at_a_dense_neighbourhood():
    """20,000 patches on a grid whose search radius holds ~230 patches each (as TIAToolbox's
    2000 px on 224-px tiles): 2.3M pairs. Peak of the whole clustering (tracemalloc, numpy's
    allocations), measured: 45 B a pair (98 MiB: the int32 / float64 pair list is 16 B a pair,
    SciPy's merge of the first round's duplicate pairs most of the rest); before the blocks,
    the in-place rounds and the 32-bit indices, 190 B a pair (417 MiB)."""
    rng = np.random.default_rng(0)
    side = 142
    coords = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) * 1.0
    features = rng.normal(size=(len(coords), 16)).astype(np.float32)
    params = SlideGraphParams(
        lambda_d=0.05,
        lambda_f=0.05,
        lambda_h=0.8,
        neighbour_search_radius=8.93,
        feature_range_thresh=None,
    )
    tracemalloc.start()
    labels = hybrid_clusters(coords, features, params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pairs = len(neighbour_similarities(coords, features, params)[0])
    assert 2.2e6 < pairs < 2.4e6
    assert 1 < labels.max() < len(coords) - 1
    assert peak < 80 * pairs, f"peak {peak / pairs:.0f} B a pair"
