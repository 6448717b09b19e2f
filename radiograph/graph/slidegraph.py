"""SlideGraph hybrid clustering, exact, in memory linear in the number of patches.

The construction of TIAToolbox's ``SlideGraphConstructor.build`` (Liu et al. 2021, SlideGraph+)
clusters patches by average-linkage agglomerative clustering on the distance

    D(i, j) = 1 - exp(-lambda_f * ||f_i - f_j||) * exp(-lambda_d * ||p_i - p_j||)   if ||p_i - p_j|| < r
    D(i, j) = 1                                                                     otherwise

(r = ``neighbour_search_radius``, f features, p coordinates) and cuts the dendrogram at
``lambda_h``; each cluster becomes a node (mean feature, centroid) and the centroids are joined
by Delaunay edges no longer than ``connectivity_distance``. TIAToolbox materialises the dense
N x N matrix (and an N x N k-d tree query), so time and memory grow as N^2.

Here the same clustering is computed from the sparse similarities s_ij = 1 - D(i, j) of the
pairs within r only. Under average linkage the distance of clusters A and B is the mean of
D over all |A||B| member pairs; the pairs farther apart than r contribute exactly 1, so

    D(A, B) = 1 - S(A, B) / (|A| |B|),   S(A, B) = sum of s_ij over the stored pairs,

and S of a merged cluster is the sum of its parts' S: the cluster graph stays as sparse as the
neighbour graph. Average linkage is *reducible*, so all reciprocal-nearest-neighbour pairs can
be merged at once without changing the dendrogram (the nearest-neighbour-chain theorem); the
merges are done in such vectorised rounds until no pair is closer than ``lambda_h``. A cluster
whose nearest neighbour is already farther than ``lambda_h`` can never merge again (merging
never brings a cluster closer than its closest part), so it leaves the computation. The result
is the partition of ``scipy.cluster.hierarchy.fcluster(linkage(D, "average"), lambda_h,
"distance")`` on the dense matrix, up to the order of exactly tied merges; the tests check
this against scipy on the dense matrix.

Differences from TIAToolbox (the peer), all deliberate:

* ``lambda_h`` must be < 1: at >= 1 the peer joins every patch into one cluster through the
  distance-1 pairs, which is never a useful graph and cannot be computed sparsely.
* ``feature_range_thresh`` removes near-constant features from the *distance* only; node
  features are the mean of all input features (the peer drops them from the nodes too).
* Node positions are the exact centroids (the peer rounds them to integers); nodes are
  numbered by the first patch they contain (the peer's order is that of a Python set).
* Fewer than 4 nodes, duplicate centroids and collinear/coplanar centroids are handled (the
  peer raises); see :func:`radiograph.graph.edges.delaunay_edges`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

#: Golden-ratio multiplier: an odd 64-bit constant, so multiplying by it is a bijection.
_HASH = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class SlideGraphParams:
    """Parameters of the SlideGraph construction, with TIAToolbox's names and defaults.

    Lengths are in the units of the coordinates; the defaults are TIAToolbox's, which assume
    coordinates in pixels with 512-pixel patches (see :mod:`radiograph.graph.params` for
    defaults scaled to other patch sizes and to CT).

    Attributes:
        lambda_d: spatial decay (per coordinate unit) of the similarity exp(-lambda_d * dist).
        lambda_f: feature decay of the similarity exp(-lambda_f * ||f_i - f_j||).
        lambda_h: dendrogram cut, in [0, 1): clusters merge while their average-linkage
            distance is <= lambda_h.
        connectivity_distance: Delaunay edges between node centroids longer than this are
            removed.
        neighbour_search_radius: patch pairs at least this far apart have distance 1 (are
            never compared).
        feature_range_thresh: features whose range over the patches is <= this are ignored in
            the feature distance; None or 0 keeps all.
    """

    lambda_d: float = 3.0e-3
    lambda_f: float = 1.0e-3
    lambda_h: float = 0.8
    connectivity_distance: float = 4000.0
    neighbour_search_radius: float = 2000.0
    feature_range_thresh: float | None = 1.0e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_h < 1.0:
            raise ValueError(
                f"lambda_h must be in [0, 1) (got {self.lambda_h}); at >= 1 every patch would "
                "join a single cluster")
        for name in ("lambda_d", "lambda_f", "connectivity_distance", "neighbour_search_radius"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value})")

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def hybrid_clusters(coords: np.ndarray, features: np.ndarray, params: SlideGraphParams) -> np.ndarray:
    """Cluster patches by SlideGraph's hybrid spatial-feature average linkage.

    Args:
        coords: (N, 2|3) patch coordinates.
        features: (N, D) patch features (finite).
        params: the construction parameters.

    Returns:
        (N,) int64 cluster label of each patch, in 0..K-1, numbered by first appearance.
    """
    features = _significant_features(features, params.feature_range_thresh)
    rows, cols, sim = neighbour_similarities(coords, features, params)
    return average_linkage_cut(len(coords), rows, cols, sim, params.lambda_h)


def neighbour_similarities(
    coords: np.ndarray, features: np.ndarray, params: SlideGraphParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarities s_ij = exp(-lambda_f ||f_i - f_j||) exp(-lambda_d ||p_i - p_j||) of the pairs
    i < j closer than ``neighbour_search_radius`` (strictly, as in TIAToolbox).

    Returns:
        rows, cols: (P,) int64 pair indices with rows < cols; sim: (P,) float64 in [0, 1].
        Pairs whose similarity underflows to 0 are left out (they act as non-neighbours).
    """
    coords = np.asarray(coords, dtype=np.float64)
    radius = params.neighbour_search_radius
    pairs = cKDTree(coords).query_pairs(radius, output_type="ndarray").astype(np.int64)
    rows, cols = pairs[:, 0], pairs[:, 1]
    dist = np.linalg.norm(coords[rows] - coords[cols], axis=1)
    inside = dist < radius
    rows, cols, dist = rows[inside], cols[inside], dist[inside]
    order = np.lexsort((cols, rows))
    rows, cols, dist = rows[order], cols[order], dist[order]
    # One gather per pair: each patch against all its (later) neighbours at once.
    starts = np.searchsorted(rows, np.arange(len(coords) + 1))
    feat_dist = np.empty(len(rows))
    for i in np.flatnonzero(np.diff(starts)):
        block = slice(starts[i], starts[i + 1])
        diff = features[cols[block]]
        diff -= features[i]
        feat_dist[block] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    sim = np.exp(-params.lambda_f * feat_dist) * np.exp(-params.lambda_d * dist)
    keep = sim > 0
    return rows[keep], cols[keep], sim[keep]


def average_linkage_cut(
    num_points: int, rows: np.ndarray, cols: np.ndarray, sim: np.ndarray, threshold: float
) -> np.ndarray:
    """Flat clusters of average linkage on D = 1 - s (D = 1 for pairs not given), cut at
    ``threshold`` (merge while D <= threshold < 1).

    Args:
        num_points: N.
        rows, cols: (P,) pairs with rows < cols, each pair at most once.
        sim: (P,) similarities in [0, 1].
        threshold: the cut height.

    Returns:
        (N,) int64 labels numbered by first appearance.
    """
    min_sim = 1.0 - threshold
    point_cluster = np.arange(num_points, dtype=np.int64)
    sizes = np.ones(num_points, dtype=np.float64)
    lo, hi, total = rows.astype(np.int64), cols.astype(np.int64), sim.astype(np.float64)
    while len(lo):
        k = len(sizes)
        avg = total / (sizes[lo] * sizes[hi])  # 1 - average-linkage distance
        best = np.full(k, -np.inf)
        np.maximum.at(best, lo, avg)
        np.maximum.at(best, hi, avg)
        # Clusters whose closest neighbour is beyond the cut are final: drop their pairs.
        alive = best >= min_sim
        keep = alive[lo] & alive[hi]
        if not keep.any():
            break
        lo, hi, total, avg = lo[keep], hi[keep], total[keep], avg[keep]
        src, dst = np.concatenate([lo, hi]), np.concatenate([hi, lo])
        both = np.concatenate([avg, avg])
        # Each cluster's nearest neighbour; exact ties broken by a hash that is unique per pair
        # and symmetric, so the closest pair overall is always a reciprocal pair.
        tie = (lo.astype(np.uint64) * np.uint64(k) + hi.astype(np.uint64)) * _HASH
        tie = np.concatenate([tie, tie])
        nearest = both == best[src]
        tie_best = np.zeros(k, dtype=np.uint64)
        np.maximum.at(tie_best, src[nearest], tie[nearest])
        chosen = nearest & (tie == tie_best[src])
        partner = np.full(k, -1, dtype=np.int64)
        partner[src[chosen]] = dst[chosen]
        a = np.flatnonzero(partner >= 0)
        b = partner[a]
        mutual = (partner[b] == a) & (a < b)
        a, b = a[mutual], b[mutual]
        merged = np.arange(k, dtype=np.int64)
        merged[b] = a
        uniq, relabel = np.unique(merged, return_inverse=True)
        point_cluster = relabel[point_cluster]
        sizes = np.bincount(relabel, weights=sizes, minlength=len(uniq))
        lo, hi, total = _coalesce(relabel[lo], relabel[hi], total, len(uniq))
    _, first, inverse = np.unique(point_cluster, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def _coalesce(
    a: np.ndarray, b: np.ndarray, value: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum ``value`` over repeated unordered pairs {a, b}; drop a == b; return lo < hi."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    coo = sp.coo_matrix((value[keep], (lo[keep], hi[keep])), shape=(k, k)).tocsr().tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data


def _significant_features(features: np.ndarray, thresh: float | None) -> np.ndarray:
    """TIAToolbox's feature filter: keep features whose range over patches exceeds ``thresh``."""
    if not thresh:
        return features
    significant = features.max(axis=0) - features.min(axis=0) > thresh
    return features if significant.all() else features[:, significant]
