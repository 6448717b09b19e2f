"""Summary statistics of a graph, and how tight its nodes are as clusters of patches."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist
from torch_geometric.data import Data

from radiograph.graph.build import COLUMN_BLOCK, group_mean
from radiograph.graph.edges import edge_lengths


def graph_stats(data: Data) -> dict[str, Any]:
    """Size, degrees, components and edge lengths of a graph.

    Args:
        data: PyG graph with ``edge_index`` (2, E) (both directions of each undirected edge),
            ``pos`` (K, 2|3) for edge lengths, optionally ``num_patches`` (K,).

    Returns:
        dict with ``num_nodes``, ``num_edges`` (undirected), ``num_patches`` (total, when
        known), ``degree_min``, ``degree_max``, ``degree_mean``, ``degree_histogram``
        ({degree: node count}), ``isolated_nodes``, ``num_components``,
        ``largest_component`` (nodes), ``mean_edge_length`` and ``max_edge_length`` (units of
        ``pos``; NaN without edges).
    """
    num_nodes = int(data.num_nodes)
    edge_index = data.edge_index.cpu().numpy().astype(np.int64)
    degree = np.bincount(edge_index[0], minlength=num_nodes)
    adjacency = sp.coo_matrix(
        (np.ones(edge_index.shape[1]), (edge_index[0], edge_index[1])), shape=(num_nodes, num_nodes)
    )
    num_components, labels = connected_components(adjacency, directed=False)
    upper = edge_index[:, edge_index[0] < edge_index[1]]
    lengths = edge_lengths(data.pos.cpu().numpy(), upper) if "pos" in data else np.array([])
    values, counts = np.unique(degree, return_counts=True)
    stats: dict[str, Any] = {
        "num_nodes": num_nodes,
        "num_edges": int(upper.shape[1]),
        "degree_min": int(degree.min()) if num_nodes else 0,
        "degree_max": int(degree.max()) if num_nodes else 0,
        "degree_mean": float(degree.mean()) if num_nodes else 0.0,
        "degree_histogram": {int(v): int(c) for v, c in zip(values, counts)},
        "isolated_nodes": int((degree == 0).sum()),
        "num_components": int(num_components),
        "largest_component": int(np.bincount(labels).max()) if num_nodes else 0,
        "mean_edge_length": float(lengths.mean()) if len(lengths) else float("nan"),
        "max_edge_length": float(lengths.max()) if len(lengths) else float("nan"),
    }
    if "num_patches" in data:
        stats["num_patches"] = int(data.num_patches.sum())
    return stats


def cluster_quality(
    coords: np.ndarray, features: np.ndarray, node_of_patch: np.ndarray
) -> dict[str, float]:
    """How homogeneous and compact the nodes are as groups of patches.

    Args:
        coords: (N, 2|3) patch coordinates.
        features: (N, D) patch features.
        node_of_patch: (N,) node of each patch (0..K-1).

    Returns:
        dict with ``num_nodes``, ``mean_patches_per_node``, ``mean_node_feature_variance``
        (mean over nodes of the total within-node feature variance, sum over features of the
        population variance, 0 for single-patch nodes) and ``mean_node_diameter`` (mean over
        nodes of the largest distance between two member patches, units of ``coords``).
    """
    coords = np.asarray(coords, dtype=np.float64)
    features = np.asarray(features)
    node_of_patch = np.asarray(node_of_patch, dtype=np.int64)
    num_nodes = int(node_of_patch.max()) + 1
    counts = np.bincount(node_of_patch, minlength=num_nodes)
    means = group_mean(features, node_of_patch)
    squared = np.zeros((len(features), 1))
    for start in range(0, features.shape[1], COLUMN_BLOCK):
        block = slice(start, start + COLUMN_BLOCK)
        centred = features[:, block].astype(np.float64) - means[:, block][node_of_patch]
        squared[:, 0] += np.einsum("ij,ij->i", centred, centred)
    variance = group_mean(squared, node_of_patch)[:, 0]
    order = np.argsort(node_of_patch, kind="stable")
    starts = np.r_[0, np.cumsum(counts)]
    diameters = np.zeros(num_nodes)
    for node in np.flatnonzero(counts > 1):
        diameters[node] = _diameter(coords[order[starts[node] : starts[node + 1]]])
    return {
        "num_nodes": num_nodes,
        "mean_patches_per_node": float(counts.mean()),
        "mean_node_feature_variance": float(variance.mean()),
        "mean_node_diameter": float(diameters.mean()),
    }


def _diameter(points: np.ndarray) -> float:
    """Largest pairwise distance (on the convex hull's vertices for large sets)."""
    if len(points) > 64:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat set: fall back to all pairs
            pass
    return float(pdist(points).max())
