"""``build_spatial_graph``: patch coordinates and features -> a PyG graph, in 2D or 3D."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from radiograph import __version__
from radiograph.graph.edges import delaunay_edges, knn_edges, radius_edges
from radiograph.graph.slidegraph import SlideGraphParams, hybrid_clusters

#: Construction methods and their parameters with defaults (lengths in coordinate units).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "slidegraph": SlideGraphParams().as_dict(),
    "knn": {"k": 8, "max_distance": None},
    "radius": {"radius": 1.0},
    "delaunay": {"connectivity_distance": 4000.0},
}

#: Neighbours per point used when a Delaunay triangulation is impossible.
FALLBACK_K = 4

#: Feature columns processed at once in float64 (bounds the temporary memory).
COLUMN_BLOCK = 128


class GraphConstructionWarning(UserWarning):
    """A graph was built, but not as asked (e.g. kNN edges instead of a Delaunay triangulation)."""


def build_spatial_graph(
    coords: np.ndarray,
    features: np.ndarray,
    method: str = "slidegraph",
    *,
    subject_id: str | None = None,
    **params: Any,
) -> Data:
    """Build a spatial-feature graph of patches.

    Methods (parameters, defaults in :data:`METHOD_DEFAULTS`):

    * ``slidegraph``: TIAToolbox's SlideGraph construction: patches clustered by average
      linkage on a combined spatial and feature distance, one node per cluster (mean feature,
      centroid), Delaunay edges between centroids no longer than ``connectivity_distance``.
      Parameters ``lambda_d, lambda_f, lambda_h, connectivity_distance,
      neighbour_search_radius, feature_range_thresh`` with TIAToolbox's names, meaning and
      defaults; computed sparsely (see :mod:`radiograph.graph.slidegraph`).
    * ``knn``: one node per patch, each joined to its ``k`` nearest patches (Patch-GCN), edges
      longer than ``max_distance`` (if given) dropped.
    * ``radius``: one node per patch, patches at distance <= ``radius`` joined.
    * ``delaunay``: one node per patch, Delaunay edges no longer than ``connectivity_distance``.

    Where a Delaunay triangulation is impossible (collinear or coplanar nodes) the edges are the
    ``FALLBACK_K`` nearest neighbours instead; a :class:`GraphConstructionWarning` says so and
    ``params["notes"]`` records it.

    Args:
        coords: (N, 2) or (N, 3) patch coordinates, any unit (pixels, mm); lengths in
            ``params`` are in the same unit.
        features: (N, D) patch features.
        method: one of ``slidegraph``, ``knn``, ``radius``, ``delaunay``.
        subject_id: named in error messages and stored on the graph.
        **params: the method's parameters (unknown names are an error).

    Returns:
        ``torch_geometric.data.Data`` with

        * ``x`` (K, D) float32: node features (mean of the member patches' features),
        * ``pos`` (K, 2|3) float64: node centroids, in the units of ``coords``,
        * ``edge_index`` (2, E) int64: undirected (both directions), no self loops, no
          duplicates,
        * ``node_of_patch`` (N,) int64: the node each input patch belongs to,
        * ``num_patches`` (K,) int64: patches per node,
        * ``patch_coords`` (N, 2|3) float64: the input coordinates,
        * ``params`` dict: method, every parameter, ``code_version`` and ``notes``,
        * ``subject_id`` (str or None).

    Raises:
        ValueError: malformed input: shapes, lengths, no patches, NaN or Inf values (naming the
            subject and counting the rows), invalid parameter values.
        TypeError: unknown method parameter.
    """
    who = f"subject {subject_id}" if subject_id is not None else "input"
    coords, features = _checked_inputs(coords, features, who)
    if method not in METHOD_DEFAULTS:
        raise ValueError(
            f"{who}: unknown graph method {method!r}; expected one of {sorted(METHOD_DEFAULTS)}"
        )
    unknown = sorted(set(params) - set(METHOD_DEFAULTS[method]))
    if unknown:
        raise TypeError(
            f"method {method!r} has no parameter(s) {unknown}; it takes "
            f"{sorted(METHOD_DEFAULTS[method])}"
        )
    resolved = {**METHOD_DEFAULTS[method], **params}
    n = len(coords)
    node_of_patch = np.arange(n, dtype=np.int64)
    note = None
    if method == "slidegraph":
        sg = SlideGraphParams(**resolved)
        node_of_patch = hybrid_clusters(coords, features, sg)
        pos = group_mean(coords, node_of_patch)
        edge_index, note = delaunay_edges(pos, sg.connectivity_distance, FALLBACK_K)
    else:
        _check_positive(resolved, who)
        pos = coords
        if method == "knn":
            edge_index = knn_edges(coords, int(resolved["k"]), resolved["max_distance"])
        elif method == "radius":
            edge_index = radius_edges(coords, float(resolved["radius"]))
        else:
            edge_index, note = delaunay_edges(
                coords, float(resolved["connectivity_distance"]), FALLBACK_K
            )
    notes = []
    if note is not None:
        notes.append(note)
        warnings.warn(f"{who}: {note}", GraphConstructionWarning, stacklevel=2)
    x = features if method != "slidegraph" else group_mean(features, node_of_patch, np.float32)
    return Data(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        pos=torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float64)),
        edge_index=torch.from_numpy(edge_index),
        node_of_patch=torch.from_numpy(node_of_patch),
        num_patches=torch.from_numpy(np.bincount(node_of_patch).astype(np.int64)),
        patch_coords=torch.from_numpy(coords.copy()),
        params={"method": method, **resolved, "code_version": __version__, "notes": notes},
        subject_id=subject_id,
    )


def _check_positive(params: dict[str, Any], who: str) -> None:
    """Every numeric parameter of the edge-only methods must be a finite number > 0."""
    for name, value in params.items():
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{who}: {name} must be a finite number > 0 (got {value})")


def _checked_inputs(coords: Any, features: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    coords = np.asarray(coords, dtype=np.float64)
    features = np.asarray(features)
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float32)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3):
        raise ValueError(f"{who}: coords must have shape (N, 2) or (N, 3); got {coords.shape}")
    if features.ndim != 2:
        raise ValueError(f"{who}: features must have shape (N, D); got {features.shape}")
    if len(coords) != len(features):
        raise ValueError(
            f"{who}: coords has {len(coords)} rows but features has {len(features)}; "
            "they must describe the same patches"
        )
    if len(coords) == 0:
        raise ValueError(f"{who}: no patches (0 rows)")
    for name, array in (("coords", coords), ("features", features)):
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{who}: {name} has {int(bad.sum())} of {len(array)} rows with NaN or "
                f"Inf (first at row {int(np.flatnonzero(bad)[0])})"
            )
    return coords, features


def group_mean(values: np.ndarray, group: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """(K, D) mean of the rows of ``values`` (N, D) in each group 0..K-1.

    Sums are accumulated in float64 whatever ``dtype`` the result is stored in.
    """
    n, k = len(group), int(group.max()) + 1
    counts = np.bincount(group, minlength=k).astype(np.float64)
    member = sp.csr_matrix((np.ones(n), (group, np.arange(n))), shape=(k, n))
    out = np.empty((k, values.shape[1]), dtype=dtype)
    for start in range(0, values.shape[1], COLUMN_BLOCK):
        block = slice(start, start + COLUMN_BLOCK)
        out[:, block] = (member @ values[:, block].astype(np.float64)) / counts[:, None]
    return out
