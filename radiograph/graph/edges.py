"""Spatial edge rules between points: k nearest neighbours, radius, Delaunay triangulation.

Every function returns an undirected edge list in the PyG convention: an int64 array of
shape (2, E) holding both directions of every edge, with no self loops and no duplicates,
sorted by (source, target). Distances are Euclidean in the units of ``points`` and work for
(N, 2) and (N, 3) points.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree

#: Relative tolerance (to the point cloud's extent) below which a direction counts as flat.
FLAT_TOL = 1e-9


def undirected(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> np.ndarray:
    """Symmetrise an edge list: both directions, no self loops, no duplicates, sorted.

    Args:
        src, dst: (E,) node indices of edge ends.
        num_nodes: number of nodes (indices must be < num_nodes).

    Returns:
        (2, E') int64 edge index.
    """
    src = np.asarray(src, dtype=np.int64).ravel()
    dst = np.asarray(dst, dtype=np.int64).ravel()
    keep = src != dst
    both_src = np.concatenate([src[keep], dst[keep]])
    both_dst = np.concatenate([dst[keep], src[keep]])
    key = np.sort(both_src * np.int64(num_nodes) + both_dst)
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    return np.stack([key // num_nodes, key % num_nodes]).astype(np.int64)


def edge_lengths(points: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """(E,) Euclidean length of each edge, in the units of ``points``."""
    points = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(points[edge_index[0]] - points[edge_index[1]], axis=1)


def knn_edges(points: np.ndarray, k: int, max_distance: float | None = None) -> np.ndarray:
    """Connect every point to its ``k`` nearest other points (then symmetrise).

    Args:
        points: (N, 2|3) coordinates.
        k: neighbours per point (capped at N - 1).
        max_distance: drop edges longer than this (None: keep all).

    Returns:
        (2, E) undirected edge index. A point with duplicates counts them as neighbours
        at distance 0.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    k = min(int(k), n - 1)
    if k <= 0:
        return np.empty((2, 0), dtype=np.int64)
    dist, idx = cKDTree(points).query(points, k=k + 1)
    dist, idx = np.atleast_2d(dist), np.atleast_2d(idx)
    rows = np.repeat(np.arange(n), k + 1).reshape(n, k + 1)
    # The point itself is one of its k+1 nearest, not necessarily in column 0 when it has
    # duplicates: drop it wherever it is, then keep the k nearest others.
    not_self = idx != rows
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    nbr = np.take_along_axis(idx, order, axis=1)
    nbr_dist = np.take_along_axis(dist, order, axis=1)
    keep = np.ones_like(nbr, dtype=bool) if max_distance is None else nbr_dist <= max_distance
    return undirected(rows[:, :k][keep], nbr[keep], n)


def radius_edges(points: np.ndarray, radius: float) -> np.ndarray:
    """Connect every pair of points at distance <= ``radius``.

    Args:
        points: (N, 2|3) coordinates.
        radius: connection distance, in the units of ``points``.

    Returns:
        (2, E) undirected edge index.
    """
    points = np.asarray(points, dtype=np.float64)
    pairs = cKDTree(points).query_pairs(float(radius), output_type="ndarray")
    return undirected(pairs[:, 0], pairs[:, 1], len(points))


def delaunay_edges(
    points: np.ndarray, max_distance: float, fallback_k: int = 4
) -> tuple[np.ndarray, str | None]:
    """Edges of the Delaunay triangulation of ``points`` no longer than ``max_distance``.

    Special cases, all handled without error:

    * 1 point: no edges. Up to d + 1 affinely independent points (2 points, a triangle in
      2D, a tetrahedron in 3D): their Delaunay triangulation is the single simplex, so all
      pairs are connected (subject to ``max_distance``).
    * Duplicate points: the triangulation is built on the distinct positions; every copy
      of a position is joined to the first copy by a zero-length edge and the first copy
      carries the position's Delaunay edges.
    * Degenerate layouts (all points collinear in 2D or coplanar in 3D), where no
      triangulation exists: ``fallback_k`` nearest-neighbour edges instead, and the returned
      note says so.

    Args:
        points: (N, 2|3) coordinates.
        max_distance: edges longer than this are removed (the connectivity distance).
        fallback_k: neighbours per point for the degenerate-layout fallback.

    Returns:
        (edge_index, note): (2, E) undirected edge index, and None or a sentence explaining
        that the kNN fallback was used and why.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n <= 1:
        return np.empty((2, 0), dtype=np.int64), None
    unique, first, inverse = np.unique(points, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    rep = first[inverse]  # for every point, the index of the first copy of its position
    copies = undirected(np.arange(n)[rep != np.arange(n)], rep[rep != np.arange(n)], n)
    src, dst, note = _distinct_delaunay(unique, fallback_k)
    src, dst = first[src], first[dst]
    keep = np.linalg.norm(points[src] - points[dst], axis=1) <= max_distance
    edges = undirected(
        np.concatenate([src[keep], copies[0]]), np.concatenate([dst[keep], copies[1]]), n
    )
    return edges, note


def _distinct_delaunay(
    points: np.ndarray, fallback_k: int
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Directed Delaunay neighbour pairs of distinct points (see :func:`delaunay_edges`)."""
    n, dim = points.shape
    rank = _affine_rank(points)
    if rank == n - 1:  # a single simplex (or a segment): every pair is a Delaunay edge
        src, dst = np.triu_indices(n, k=1)
        return src, dst, None
    if rank < dim:
        reason = f"all {n} points lie on a {'line' if rank == 1 else 'plane'}"
    else:
        try:
            indptr, indices = Delaunay(points).vertex_neighbor_vertices
            return np.repeat(np.arange(n), np.diff(indptr)), indices, None
        except QhullError as err:
            reason = f"Qhull failed ({str(err).splitlines()[0]})"
    edges = knn_edges(points, fallback_k)
    note = (
        f"Delaunay triangulation impossible: {reason}; used {min(fallback_k, n - 1)}-nearest-"
        f"neighbour edges instead"
    )
    return edges[0], edges[1], note


def _affine_rank(points: np.ndarray) -> int:
    """Dimension of the affine hull of ``points`` (0 for one distinct point)."""
    centred = points - points.mean(axis=0)
    extent = np.abs(centred).max()
    if extent == 0:
        return 0
    singular = np.linalg.svd(centred / extent, compute_uv=False)
    return int((singular > FLAT_TOL * np.sqrt(len(points))).sum())
