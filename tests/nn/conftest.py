"""Small random graphs for the nn tests."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data


def _random_graph(num_nodes: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> Data:
    """A graph with ``num_nodes`` nodes of ``dim`` features and about 3 random edges per node."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, dim, generator=gen, dtype=dtype)
    src = torch.randint(0, num_nodes, (3 * num_nodes,), generator=gen)
    dst = torch.randint(0, num_nodes, (3 * num_nodes,), generator=gen)
    keep = src != dst
    edge_index = torch.stack([torch.cat([src[keep], dst[keep]]), torch.cat([dst[keep], src[keep]])])
    return Data(
        x=x, edge_index=edge_index, pos=torch.rand(num_nodes, 2, generator=gen, dtype=torch.float64)
    )


@pytest.fixture
def random_graph():
    """Factory ``random_graph(num_nodes, dim, seed, dtype=torch.float64) -> Data``."""
    return _random_graph
