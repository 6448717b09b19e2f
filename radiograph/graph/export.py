"""Exchange graphs with networkx.

:func:`to_networkx` gives an undirected ``networkx.Graph`` whose nodes 0..K-1 carry the node
attributes ``x`` (feature vector, numpy float32), ``pos`` (tuple of coordinates) and
``num_patches`` (int), whose edges carry ``length`` (Euclidean distance between the node
positions), and whose ``graph`` dict carries every other attribute of the ``Data`` (patch-level
arrays such as ``node_of_patch`` and ``patch_coords`` as numpy arrays, ``params``,
``subject_id``, ...). :func:`from_networkx` inverts it.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Data

from radiograph.graph.edges import edge_lengths, undirected

#: Attributes stored on the networkx nodes; everything else goes to ``G.graph``.
NODE_ATTRS = ("x", "pos", "num_patches")


def to_networkx(data: Data) -> nx.Graph:
    """Convert a graph built by :func:`radiograph.graph.build_spatial_graph` to networkx.

    Args:
        data: PyG graph with ``x`` (K, D), ``pos`` (K, 2|3), ``edge_index`` (2, E) and
            optionally ``num_patches`` (K,).

    Returns:
        ``networkx.Graph`` with K nodes (ids 0..K-1) and E / 2 undirected edges.
    """
    num_nodes = int(data.num_nodes)
    graph = nx.Graph()
    node_arrays = {key: _to_numpy(data[key]) for key in NODE_ATTRS if key in data}
    graph.add_nodes_from(
        (i, {key: _node_value(key, values[i]) for key, values in node_arrays.items()})
        for i in range(num_nodes)
    )
    edge_index = _to_numpy(data.edge_index).astype(np.int64)
    upper = edge_index[:, edge_index[0] < edge_index[1]]
    if "pos" in data:
        lengths = edge_lengths(_to_numpy(data.pos), upper)
        graph.add_edges_from(
            (int(a), int(b), {"length": float(d)}) for a, b, d in zip(upper[0], upper[1], lengths)
        )
    else:
        graph.add_edges_from(zip(upper[0].tolist(), upper[1].tolist()))
    for key in data.keys():
        if key not in NODE_ATTRS and key != "edge_index":
            value = data[key]
            graph.graph[key] = _to_numpy(value) if torch.is_tensor(value) else value
    return graph


def from_networkx(graph: nx.Graph) -> Data:
    """Convert a networkx graph written by :func:`to_networkx` back to a PyG ``Data``.

    Nodes must be the integers 0..K-1; node attributes ``x``, ``pos`` and ``num_patches``
    become tensors when every node has them, and numpy arrays in ``graph.graph`` become
    tensors.
    """
    num_nodes = graph.number_of_nodes()
    if sorted(graph.nodes) != list(range(num_nodes)):
        raise ValueError("graph nodes must be the integers 0..K-1 (as written by to_networkx)")
    data = Data()
    for key in NODE_ATTRS:
        values = [graph.nodes[i].get(key) for i in range(num_nodes)]
        if num_nodes and all(v is not None for v in values):
            data[key] = torch.from_numpy(np.stack([np.asarray(v) for v in values]))
    edges = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2).T
    data.edge_index = torch.from_numpy(undirected(edges[0], edges[1], num_nodes))
    for key, value in graph.graph.items():
        data[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    if "x" not in data:
        data.num_nodes = num_nodes
    return data


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


def _node_value(key: str, value: np.ndarray) -> Any:
    if key == "pos":
        return tuple(float(v) for v in value)
    if key == "num_patches":
        return int(value)
    return value.copy()
