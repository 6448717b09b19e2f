"""networkx export round trip, graph statistics and cluster quality against hand computations."""

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import numpy as np
import torch
from scipy.spatial.distance import pdist
from torch_geometric.data import Data

from radiograph.graph import (
    build_spatial_graph,
    cluster_quality,
    from_networkx,
    graph_stats,
    to_networkx,
)


def small_graph() -> Data:
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 40, (300, 2))
    features = (coords[:, :1] > 20) * 10.0 + rng.normal(size=(300, 6))
    return build_spatial_graph(
        coords,
        features,
        subject_id="S9",
        lambda_d=0.05,
        lambda_f=0.2,
        lambda_h=0.85,
        neighbour_search_radius=8.0,
        connectivity_distance=12.0,
    )


def test_networkx_round_trip():
    data = small_graph()
    graph = to_networkx(data)
    assert graph.number_of_nodes() == data.num_nodes
    assert graph.number_of_edges() == data.edge_index.shape[1] // 2
    node = graph.nodes[3]
    np.testing.assert_array_equal(node["x"], data.x[3].numpy())
    assert node["pos"] == tuple(data.pos[3].tolist())
    assert node["num_patches"] == int(data.num_patches[3])
    a, b = next(iter(graph.edges))
    assert np.isclose(graph.edges[a, b]["length"], float(torch.dist(data.pos[a], data.pos[b])))
    assert graph.graph["subject_id"] == "S9" and graph.graph["params"]["method"] == "slidegraph"
    # networkx agrees on the structure
    assert nx.number_connected_components(graph) == graph_stats(data)["num_components"]

    back = from_networkx(graph)
    for key in ("x", "pos", "edge_index", "num_patches", "node_of_patch", "patch_coords"):
        assert back[key].dtype == data[key].dtype, key
        assert torch.equal(back[key], data[key]), key
    assert back.params == data.params and back.subject_id == "S9"


def test_graph_stats_by_hand():
    # A triangle (0,1,2), a path 3-4, an isolated node 5.
    pos = torch.tensor(
        [[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [10.0, 0.0], [10.0, 2.0], [20.0, 20.0]],
        dtype=torch.float64,
    )
    pairs = [(0, 1), (1, 2), (0, 2), (3, 4)]
    edge_index = torch.tensor(
        [
            [a for a, b in pairs] + [b for a, b in pairs],
            [b for a, b in pairs] + [a for a, b in pairs],
        ]
    )
    data = Data(
        x=torch.zeros(6, 1),
        pos=pos,
        edge_index=edge_index,
        num_patches=torch.ones(6, dtype=torch.long),
    )
    stats = graph_stats(data)
    assert stats["num_nodes"] == 6 and stats["num_edges"] == 4 and stats["num_patches"] == 6
    assert stats["num_components"] == 3 and stats["largest_component"] == 3
    assert stats["isolated_nodes"] == 1
    assert stats["degree_histogram"] == {0: 1, 1: 2, 2: 3}
    assert stats["degree_min"] == 0 and stats["degree_max"] == 2
    assert np.isclose(stats["degree_mean"], 8 / 6)
    assert np.isclose(stats["mean_edge_length"], (3 + 5 + 4 + 2) / 4)
    assert stats["max_edge_length"] == 5.0


def test_cluster_quality_by_hand():
    coords = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [9.0, 9.0]])
    features = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0], [5.0, 5.0]])
    node = np.array([0, 0, 1, 1])
    # node 0: mean (2, 1); squared deviations 1+1 and 1+1 -> variance 2; diameter 5
    # node 1: mean (2.5, 2.5); squared deviations 12.5 and 12.5 -> variance 12.5; diameter sqrt(128)
    q = cluster_quality(coords, features, node)
    assert q["num_nodes"] == 2 and q["mean_patches_per_node"] == 2.0
    assert np.isclose(q["mean_node_feature_variance"], (2 + 12.5) / 2)
    assert np.isclose(q["mean_node_diameter"], (5 + np.sqrt(128)) / 2)


def test_cluster_quality_large_node_diameter_uses_hull_correctly():
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 1, (500, 3))
    q = cluster_quality(coords, rng.normal(size=(500, 2)), np.zeros(500, dtype=int))
    assert np.isclose(q["mean_node_diameter"], pdist(coords).max())


def test_graph_package_imports_without_training_code():
    code = (
        "import sys, radiograph.graph; "
        "bad = [m for m in sys.modules if m.startswith(('radiograph.train', 'radiograph.nn', "
        "'radiograph.survival', 'radiograph.report'))]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
