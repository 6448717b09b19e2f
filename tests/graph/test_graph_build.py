"""build_spatial_graph: node bookkeeping, edge rules, planted layouts, 3D, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial import Delaunay
from scipy.spatial.distance import cdist

from radiograph.graph import GraphConstructionWarning, build_spatial_graph, graph_stats

METHOD_PARAMS = {
    "slidegraph": dict(
        lambda_d=0.2,
        lambda_f=0.05,
        lambda_h=0.8,
        connectivity_distance=6.0,
        neighbour_search_radius=3.0,
        feature_range_thresh=None,
    ),
    "knn": dict(k=6, max_distance=5.0),
    "radius": dict(radius=1.5),
    "delaunay": dict(connectivity_distance=4.0),
}
CUTOFF = {"slidegraph": 6.0, "knn": 5.0, "radius": 1.5, "delaunay": 4.0}


def grid(shape, step=1.0):
    axes = [np.arange(s) * step for s in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(shape)).astype(float)


def tissue(seed=0, dim=2, n_side=14, d=12):
    """Patches on a grid with a smooth feature field plus noise."""
    rng = np.random.default_rng(seed)
    coords = grid((n_side,) * dim) + rng.uniform(-0.2, 0.2, (n_side**dim, dim))
    basis = rng.normal(size=(dim, d))
    features = np.sin(coords / 3.0) @ basis * 4 + rng.normal(size=(len(coords), d)) * 0.5
    return coords, features.astype(np.float32)


def edge_set(edge_index):
    return set(map(tuple, np.asarray(edge_index).T.tolist()))


def check_edges(data, cutoff):
    ei = data.edge_index.numpy()
    pairs = edge_set(ei)
    assert ei.dtype == np.int64 and ei.shape[0] == 2
    assert len(pairs) == ei.shape[1], "duplicate edges"
    assert all((b, a) in pairs for a, b in pairs), "not symmetric"
    assert not (ei[0] == ei[1]).any(), "self loop"
    pos = data.pos.numpy()
    lengths = np.linalg.norm(pos[ei[0]] - pos[ei[1]], axis=1)
    assert (lengths <= cutoff + 1e-9).all()


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
@pytest.mark.parametrize("dim", [2, 3])
def test_every_patch_in_one_node_and_node_means_are_exact(method, dim):
    coords, features = tissue(seed=dim, dim=dim, n_side=14 if dim == 2 else 6)
    data = build_spatial_graph(coords, features, method, **METHOD_PARAMS[method])
    node = data.node_of_patch.numpy()
    k = data.num_nodes
    assert node.shape == (len(coords),) and node.min() == 0 and node.max() == k - 1
    np.testing.assert_array_equal(data.num_patches.numpy(), np.bincount(node, minlength=k))
    assert data.num_patches.sum() == len(coords)
    feats64 = features.astype(np.float64)
    for i in range(k):
        members = node == i
        np.testing.assert_allclose(
            data.x[i].numpy(), feats64[members].mean(axis=0), rtol=1e-6, atol=1e-6
        )
        np.testing.assert_allclose(
            data.pos[i].numpy(), coords[members].mean(axis=0), rtol=0, atol=1e-9
        )
    np.testing.assert_array_equal(data.patch_coords.numpy(), coords)
    assert data.pos.shape == (k, dim)
    check_edges(data, CUTOFF[method])
    assert data.params["method"] == method
    assert {p: data.params[p] for p in METHOD_PARAMS[method]} == METHOD_PARAMS[method]
    if method == "slidegraph":
        assert k < len(coords)  # patches were actually clustered


def test_knn_edges_are_the_k_nearest_neighbours():
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 50, (120, 2))
    data = build_spatial_graph(coords, np.zeros((120, 3)), "knn", k=5)
    dist = cdist(coords, coords)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1)[:, :5]
    expected = {(i, int(j)) for i in range(120) for j in nearest[i]}
    expected |= {(b, a) for a, b in expected}
    assert edge_set(data.edge_index) == expected


def test_radius_edges_are_all_pairs_within_radius():
    rng = np.random.default_rng(2)
    coords = rng.uniform(0, 30, (150, 3))
    data = build_spatial_graph(coords, np.zeros((150, 2)), "radius", radius=6.0)
    dist = cdist(coords, coords)
    expected = {(i, j) for i, j in zip(*np.nonzero(dist <= 6.0)) if i != j}
    assert edge_set(data.edge_index) == expected


@pytest.mark.parametrize("dim", [2, 3])
def test_delaunay_edges_match_scipy_triangulation(dim):
    rng = np.random.default_rng(dim)
    coords = rng.uniform(0, 10, (80, dim))
    data = build_spatial_graph(coords, np.zeros((80, 1)), "delaunay", connectivity_distance=4.0)
    expected = set()
    for simplex in Delaunay(coords).simplices:
        for a, b in itertools.permutations(simplex.tolist(), 2):
            if np.linalg.norm(coords[a] - coords[b]) <= 4.0:
                expected.add((a, b))
    assert edge_set(data.edge_index) == expected


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_two_separate_tissue_pieces_give_two_components(method):
    coords, features = tissue(seed=4, n_side=10)
    far = coords + np.array([40.0, 0.0])  # 30 grid steps away, beyond every cut-off
    data = build_spatial_graph(
        np.vstack([coords, far]), np.vstack([features, features]), method, **METHOD_PARAMS[method]
    )
    stats = graph_stats(data)
    assert stats["num_components"] == 2
    node = data.node_of_patch.numpy()
    assert not set(node[:100]) & set(node[100:]), "a node spans both pieces"


def interleaved_populations(seed=5):
    """One 16 x 16 region, two feature populations on a checkerboard."""
    rng = np.random.default_rng(seed)
    coords = grid((16, 16))
    population = (coords.sum(axis=1) % 2).astype(int)
    centres = np.array([[5.0] + [0.0] * 7, [-5.0] + [0.0] * 7])
    features = centres[population] + rng.normal(size=(256, 8)) * 0.1
    return coords, features, population


def test_high_lambda_f_keeps_interleaved_populations_in_separate_nodes():
    coords, features, population = interleaved_populations()
    data = build_spatial_graph(
        coords,
        features,
        lambda_d=0.1,
        lambda_f=1.0,
        lambda_h=0.8,
        neighbour_search_radius=2.5,
        connectivity_distance=4.0,
    )
    node = data.node_of_patch.numpy()
    mixed = [i for i in range(data.num_nodes) if len(set(population[node == i])) > 1]
    assert mixed == []
    assert data.num_nodes < 256 / 2  # same-population patches did merge


def test_low_lambda_f_merges_interleaved_populations():
    coords, features, population = interleaved_populations()
    data = build_spatial_graph(
        coords,
        features,
        lambda_d=0.1,
        lambda_f=1e-4,
        lambda_h=0.8,
        neighbour_search_radius=2.5,
        connectivity_distance=4.0,
    )
    node = data.node_of_patch.numpy()
    multi = [i for i in range(data.num_nodes) if (node == i).sum() > 1]
    mixed = [i for i in multi if len(set(population[node == i])) > 1]
    assert len(multi) > 0 and len(mixed) == len(multi)


# ---- degenerate and bad input ------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_one_patch_gives_one_node_and_no_edges(method):
    data = build_spatial_graph(
        np.array([[3.0, 4.0]]), np.ones((1, 5)), method, **METHOD_PARAMS[method]
    )
    assert data.num_nodes == 1 and data.edge_index.shape == (2, 0)
    np.testing.assert_array_equal(data.x.numpy(), np.ones((1, 5)))


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_two_patches(method):
    coords = np.array([[0.0, 0.0], [1.0, 0.0]])
    features = np.array([[0.0, 0.0], [100.0, 0.0]])  # too different to merge
    data = build_spatial_graph(coords, features, method, **METHOD_PARAMS[method])
    assert data.num_nodes == 2
    assert edge_set(data.edge_index) == {(0, 1), (1, 0)}


def test_two_far_patches_are_not_joined_beyond_the_cutoff():
    data = build_spatial_graph(
        np.array([[0.0, 0.0], [50.0, 0.0]]), np.zeros((2, 2)), "delaunay", connectivity_distance=4.0
    )
    assert data.edge_index.shape == (2, 0)


def test_three_patches_of_a_triangle_are_fully_connected():
    data = build_spatial_graph(
        np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        np.zeros((3, 1)),
        "delaunay",
        connectivity_distance=4.0,
    )
    assert len(edge_set(data.edge_index)) == 6


@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_duplicate_coordinates(method):
    coords, features = tissue(seed=6, n_side=8)
    coords = np.vstack([coords, coords[:10]])  # ten patches at the same place as others
    features = np.vstack([features, features[:10] + 50])
    data = build_spatial_graph(coords, features, method, **METHOD_PARAMS[method])
    assert data.num_patches.sum() == len(coords)
    check_edges(data, CUTOFF[method])
    assert graph_stats(data)["num_components"] == 1  # copies are not left isolated


def test_collinear_points_fall_back_to_knn_and_say_so():
    coords = np.stack([np.arange(10.0), 2 * np.arange(10.0)], axis=1)
    with pytest.warns(GraphConstructionWarning, match="subject S1: .*line.*nearest-neighbour"):
        data = build_spatial_graph(
            coords, np.zeros((10, 2)), "delaunay", subject_id="S1", connectivity_distance=100.0
        )
    assert any("line" in note for note in data.params["notes"])
    degree = np.bincount(data.edge_index[0].numpy(), minlength=10)
    assert degree.min() >= 4  # every point reaches its 4 nearest
    check_edges(data, 100.0)


def test_coplanar_3d_points_fall_back_to_knn():
    coords = np.c_[grid((5, 5)), np.full(25, 3.0)]
    with pytest.warns(GraphConstructionWarning, match="plane"):
        data = build_spatial_graph(
            coords, np.zeros((25, 2)), "delaunay", connectivity_distance=10.0
        )
    assert graph_stats(data)["num_components"] == 1


def test_slidegraph_centroids_on_a_line_fall_back_to_knn():
    coords = np.stack([np.arange(30.0), np.zeros(30)], axis=1)
    features = np.repeat(np.arange(6.0), 5)[:, None] * 100  # 6 feature blocks along the line
    with pytest.warns(GraphConstructionWarning):
        data = build_spatial_graph(
            coords,
            features,
            lambda_d=0.1,
            lambda_f=0.1,
            lambda_h=0.9,
            neighbour_search_radius=3.0,
            connectivity_distance=20.0,
        )
    assert data.num_nodes == 6


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_features_name_subject_and_rows(bad):
    features = np.ones((20, 4))
    features[[2, 5, 11], 1] = bad
    with pytest.raises(
        ValueError,
        match=r"subject P-007: features has 3 of 20 rows with NaN or Inf \(first at row 2\)",
    ):
        build_spatial_graph(grid((4, 5)), features, subject_id="P-007")


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="coords has 10 rows but features has 9"):
        build_spatial_graph(np.zeros((10, 2)), np.zeros((9, 3)), subject_id="S")


@pytest.mark.parametrize(
    "coords, message",
    [
        (np.zeros((5, 4)), r"\(N, 2\) or \(N, 3\)"),
        (np.zeros((0, 2)), "no patches"),
    ],
)
def test_bad_shapes(coords, message):
    with pytest.raises(ValueError, match=message):
        build_spatial_graph(coords, np.zeros((len(coords), 3)))


def test_bad_parameters():
    coords, features = tissue()
    with pytest.raises(TypeError, match="no parameter"):
        build_spatial_graph(coords, features, "knn", radius=3)
    with pytest.raises(ValueError, match="lambda_h"):
        build_spatial_graph(coords, features, lambda_h=1.0)
    with pytest.raises(ValueError, match="unknown graph method"):
        build_spatial_graph(coords, features, "mst")
    with pytest.raises(ValueError, match="k must be a finite number > 0"):
        build_spatial_graph(coords, features, "knn", k=0)
    with pytest.raises(ValueError, match="neighbour_search_radius must be a finite number >= 0"):
        build_spatial_graph(coords, features, neighbour_search_radius=np.inf)


def test_nan_coordinates_are_reported():
    coords = grid((3, 3))
    coords[4, 0] = np.nan
    with pytest.raises(ValueError, match="subject Q: coords has 1 of 9 rows with NaN or Inf"):
        build_spatial_graph(coords, np.zeros((9, 2)), "knn", subject_id="Q")
