"""Graph files: one PyG ``Data`` per subject and modality, saved with ``torch.save``.

The construction parameters travel inside the file as ``data.params`` (a dict), so a graph
can always be traced back to how it was built. Loading checks the graph's arrays against each
other (:func:`check_graph`), so a damaged or hand-edited file fails with its name instead of
training on wrong numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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
    """Load a graph written by :func:`save_graph` and check it (:func:`check_graph`).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable PyG ``Data`` object (e.g. truncated), or its
            arrays are inconsistent; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"graph file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(
            f"{path}: not a readable graph file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(data, Data):
        raise ValueError(
            f"{path}: expected a torch_geometric Data object, got {type(data).__name__}"
        )
    check_graph(data, path)
    return data


def check_graph(data: Data, path: str | os.PathLike) -> None:
    """Check that a graph's arrays agree with each other.

    ``x`` is a non-empty (N, D) floating tensor of finite values; ``edge_index`` a (2, E)
    integer tensor with node indices in [0, N); ``pos`` (N, 2|3) and finite, ``edge_attr``
    (E, ...) and finite, ``num_patches`` (N,) and ``node_of_patch`` (values in [0, N), as many
    as ``patch_coords`` has rows) where present as tensors.

    Raises:
        ValueError: naming ``path``, the field and what is wrong.
    """
    x = getattr(data, "x", None)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.size(0) == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{path}: field 'x' must be a non-empty (N, D) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{path}: field 'x' must be a floating tensor, got {x.dtype}")
    n = int(x.size(0))
    _check_finite(path, "x", x)
    edges = getattr(data, "edge_index", None)
    if edges is not None:
        if (
            not isinstance(edges, torch.Tensor)
            or edges.dim() != 2
            or edges.size(0) != 2
            or edges.dtype.is_floating_point
        ):
            shape = tuple(edges.shape) if isinstance(edges, torch.Tensor) else type(edges).__name__
            raise ValueError(
                f"{path}: field 'edge_index' must be a (2, E) integer tensor, got {shape}"
            )
        _check_indices(path, "edge_index", edges, n)
    for name, rows in (
        ("pos", n),
        ("edge_attr", None if edges is None else edges.size(1)),
        ("num_patches", n),
    ):
        value = getattr(data, name, None)
        if isinstance(value, torch.Tensor):
            if value.dim() == 0 or (rows is not None and value.size(0) != rows):
                raise ValueError(
                    f"{path}: field {name!r} has shape {tuple(value.shape)}, expected {rows} rows"
                )
            if value.is_floating_point():
                _check_finite(path, name, value)
    node_of_patch = getattr(data, "node_of_patch", None)
    if isinstance(node_of_patch, torch.Tensor):
        _check_indices(path, "node_of_patch", node_of_patch, n)
        coords = getattr(data, "patch_coords", None)
        if isinstance(coords, torch.Tensor) and coords.size(0) != node_of_patch.numel():
            raise ValueError(
                f"{path}: field 'patch_coords' has {coords.size(0)} rows but "
                f"'node_of_patch' has {node_of_patch.numel()} entries"
            )


def _check_finite(path: str | os.PathLike, name: str, values: torch.Tensor) -> None:
    """Rows (first axis) of a floating tensor with NaN or Inf are an error.

    The check runs on the tensor's memory as a numpy array (no copy; one vectorised pass,
    single-threaded): torch's element-wise kernels start its intra-op thread pool, which costs
    more than the check itself on a loaded machine (benchmarks/README.md, "Provenance").
    """
    if values.numel() == 0:
        return
    rows = _numpy(values).reshape(values.size(0), -1)
    finite = np.isfinite(rows)
    if finite.all():
        return
    bad = ~finite.all(axis=1)
    raise ValueError(
        f"{path}: field {name!r} has {int(bad.sum())} of {values.size(0)} "
        f"rows with NaN or Inf (first at row {int(np.argmax(bad))})"
    )


def _check_indices(path: str | os.PathLike, name: str, index: torch.Tensor, n: int) -> None:
    if index.numel() == 0:
        return
    values = _numpy(index)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= n:
        raise ValueError(
            f"{path}: field {name!r} refers to node(s) outside [0, {n}) (min {low}, max {high})"
        )


def _numpy(values: torch.Tensor) -> np.ndarray:
    """The tensor's values as a numpy array: its memory when it is a CPU tensor of a numpy
    dtype, else a float32 / int64 copy (bfloat16, GPU tensors)."""
    values = values.detach()
    try:
        return values.numpy()
    except (TypeError, RuntimeError):
        target = torch.float32 if values.is_floating_point() else torch.int64
        return values.to("cpu", target).numpy()
