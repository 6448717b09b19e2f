"""Graph files: one PyG ``Data`` per subject and modality, saved with ``torch.save``.

The construction parameters travel inside the file as ``data.params`` (a dict), so a graph
can always be traced back to how it was built.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch_geometric.data import Data

from radiograph.io.atomic import atomic_path


def save_graph(path: str | os.PathLike, data: Data) -> Path:
    """Save a PyG graph atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def load_graph(path: str | os.PathLike) -> Data:
    """Load a graph written by :func:`save_graph`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a PyG ``Data`` object, naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"graph file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{path}: not a readable graph file ({type(err).__name__}: {err})") from err
    if not isinstance(data, Data):
        raise ValueError(f"{path}: expected a torch_geometric Data object, got {type(data).__name__}")
    return data
