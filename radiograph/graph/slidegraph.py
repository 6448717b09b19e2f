"""SlideGraph hybrid clustering, exact, in memory linear in the number of patches.

The construction of TIAToolbox's ``SlideGraphConstructor.build`` (Liu et al. 2021, SlideGraph+)
clusters patches by average-linkage agglomerative clustering on the distance

    D(i, j) = 1 - exp(-lambda_f ||f_i - f_j||) exp(-lambda_d ||p_i - p_j||)  if ||p_i - p_j|| < r
    D(i, j) = 1                                                            otherwise

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

Memory grows with the number of pairs only: they are found, scored and merged in blocks of
:data:`PAIR_BLOCK`, the list holds int32 indices and float64 similarities (16 bytes a pair), and
the peak, SciPy's merge of duplicate pairs after a round, is about 45 bytes a pair (100k
patches on a 224-px grid with TIAToolbox's search radius: 12.5M pairs, under 0.6 GB;
``benchmarks/README.md``).

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
                "join a single cluster"
            )
        for name in ("lambda_d", "lambda_f", "connectivity_distance", "neighbour_search_radius"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value})")

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def hybrid_clusters(
    coords: np.ndarray, features: np.ndarray, params: SlideGraphParams
) -> np.ndarray:
    """Cluster patches by SlideGraph's hybrid spatial-feature average linkage.

    Args:
        coords: (N, 2|3) patch coordinates.
        features: (N, D) patch features (finite).
        params: the construction parameters.

    Returns:
        (N,) int64 cluster label of each patch, in 0..K-1, numbered by first appearance.
    """
    features = _significant_features(features, params.feature_range_thresh)
    pairs = list(neighbour_similarities(coords, features, params))
    return _cut(len(coords), pairs, params.lambda_h)


PAIR_BLOCK = 1 << 18
"""Pairs handled per block, when they are found and in each step of the clustering: bounds the
temporary memory at any neighbour density. What grows with the number of pairs is the list
itself, 16 bytes a pair (int32 indices, float64 similarity), and SciPy's merge of duplicate
pairs after each round (about 45 bytes a pair at the peak, measured)."""


def neighbour_similarities(
    coords: np.ndarray,
    features: np.ndarray,
    params: SlideGraphParams,
    pair_block: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarities s_ij = exp(-lambda_f ||f_i - f_j||) exp(-lambda_d ||p_i - p_j||) of the pairs
    i < j closer than ``neighbour_search_radius`` (strictly, as in TIAToolbox).

    The pairs are counted first, then found block by block of patches (about ``pair_block``
    pairs each, default :data:`PAIR_BLOCK`; a k-d tree of the block against one of all
    patches) straight into the result, so the temporaries stay bounded however many neighbours
    a patch has.

    Returns:
        rows, cols: (P,) int32 pair indices with rows < cols, sorted by (row, col); sim: (P,)
        float64 in [0, 1]. Pairs whose similarity underflows to 0 are left out (they act as
        non-neighbours).
    """
    coords = np.asarray(coords, dtype=np.float64)
    n, radius = len(coords), params.neighbour_search_radius
    pair_block = pair_block or PAIR_BLOCK
    tree = cKDTree(coords)
    within = tree.query_ball_point(coords, radius, return_length=True)  # self included
    capacity = (int(within.sum()) - n) // 2
    out_rows = np.empty(capacity, dtype=np.int32)
    out_cols = np.empty(capacity, dtype=np.int32)
    out_sim = np.empty(capacity, dtype=np.float64)
    filled, start = 0, 0
    per_patch = np.cumsum(within)
    while start < n:
        # as many patches as make about pair_block (directed) neighbour pairs
        stop = int(np.searchsorted(per_patch, per_patch[start] - within[start] + 2 * pair_block))
        stop = min(n, max(stop, start + 1))
        found = cKDTree(coords[start:stop]).sparse_distance_matrix(
            tree, radius, output_type="ndarray"
        )
        rows = found["i"].astype(np.int32) + np.int32(start)
        cols = found["j"].astype(np.int32)
        del found
        later = cols > rows
        rows, cols = rows[later], cols[later]
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
        dist = np.linalg.norm(coords[rows] - coords[cols], axis=1)
        inside = dist < radius
        rows, cols, dist = rows[inside], cols[inside], dist[inside]
        sim = np.exp(-params.lambda_f * _feature_distances(features, rows, cols))
        sim *= np.exp(-params.lambda_d * dist)
        keep = sim > 0
        count = int(keep.sum())
        if filled + count > len(out_rows):  # the count and the search rounded differently
            grow = filled + count - len(out_rows)
            out_rows, out_cols, out_sim = (
                np.concatenate([a, np.empty(grow, a.dtype)]) for a in (out_rows, out_cols, out_sim)
            )
        out_rows[filled : filled + count] = rows[keep]
        out_cols[filled : filled + count] = cols[keep]
        out_sim[filled : filled + count] = sim[keep]
        filled += count
        start = stop
    return out_rows[:filled], out_cols[:filled], out_sim[:filled]


def _feature_distances(features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(P,) float64 ``||features[rows] - features[cols]||`` for pairs sorted by row, in the
    features' precision: one gather per pair, each patch against all its neighbours at once."""
    out = np.empty(len(rows))
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
    for start, stop in zip(starts, [*starts[1:], len(rows)]):
        diff = features[cols[start:stop]]
        diff -= features[rows[start]]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def average_linkage_cut(
    num_points: int, rows: np.ndarray, cols: np.ndarray, sim: np.ndarray, threshold: float
) -> np.ndarray:
    """Flat clusters of average linkage on D = 1 - s (D = 1 for pairs not given), cut at
    ``threshold`` (merge while D <= threshold < 1).

    Args:
        num_points: N (< 2^31).
        rows, cols: (P,) pairs with rows < cols, each pair at most once (not modified).
        sim: (P,) similarities in [0, 1] (not modified).
        threshold: the cut height.

    Returns:
        (N,) int64 labels numbered by first appearance.
    """
    pairs = [rows.astype(np.int32), cols.astype(np.int32), sim.astype(np.float64)]
    return _cut(num_points, pairs, threshold)


def _cut(num_points: int, pairs: list[np.ndarray], threshold: float) -> np.ndarray:
    """:func:`average_linkage_cut` of ``pairs = [rows (int32), cols (int32), sim (float64)]``,
    which it takes over: the list is emptied and the arrays are compacted and relabelled in
    place. Each round's per-pair steps (average similarity, nearest neighbours, their
    tie-breaks, relabelling) run over blocks of :data:`PAIR_BLOCK` pairs."""
    lo, hi, total = pairs
    pairs.clear()
    min_sim = 1.0 - threshold
    point_cluster = np.arange(num_points, dtype=np.int64)
    sizes = np.ones(num_points, dtype=np.float64)
    while len(lo):
        k = len(sizes)
        best = np.full(k, -np.inf)
        for b in _blocks(len(lo)):
            avg = _average(total[b], lo[b], hi[b], sizes)
            np.maximum.at(best, lo[b], avg)
            np.maximum.at(best, hi[b], avg)
        # Clusters whose closest neighbour is beyond the cut are final: drop their pairs.
        kept = _compact(best >= min_sim, lo, hi, total)
        if kept == 0:
            break
        lo, hi, total = lo[:kept], hi[:kept], total[:kept]
        # Each cluster's nearest neighbour; exact ties broken by a hash that is unique per pair
        # and symmetric, so the closest pair overall is always a reciprocal pair. Both
        # orientations of a pair are looked at (lo's view, then hi's).
        tie_best = np.zeros(k, dtype=np.uint64)
        for b in _blocks(len(lo)):
            near_lo, near_hi, tie = _nearest(total[b], lo[b], hi[b], sizes, best)
            np.maximum.at(tie_best, lo[b][near_lo], tie[near_lo])
            np.maximum.at(tie_best, hi[b][near_hi], tie[near_hi])
        partner = np.full(k, -1, dtype=np.int64)
        for b in _blocks(len(lo)):
            near_lo, near_hi, tie = _nearest(total[b], lo[b], hi[b], sizes, best)
            near_lo &= tie == tie_best[lo[b]]
            near_hi &= tie == tie_best[hi[b]]
            partner[lo[b][near_lo]] = hi[b][near_lo]
            partner[hi[b][near_hi]] = lo[b][near_hi]
        a = np.flatnonzero(partner >= 0)
        b = partner[a]
        mutual = (partner[b] == a) & (a < b)
        a, b = a[mutual], b[mutual]
        merged = np.arange(k, dtype=np.int64)
        merged[b] = a
        uniq, relabel = np.unique(merged, return_inverse=True)
        relabel = relabel.astype(np.int32)
        point_cluster = relabel[point_cluster]
        sizes = np.bincount(relabel, weights=sizes, minlength=len(uniq))
        for block in _blocks(len(lo)):
            first, second = relabel[lo[block]], relabel[hi[block]]
            np.minimum(first, second, out=lo[block])
            np.maximum(first, second, out=hi[block])
        lo, hi, total = _coalesce(lo, hi, total, len(uniq))
    _, first, inverse = np.unique(point_cluster, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def _blocks(n: int) -> list[slice]:
    return [slice(s, s + PAIR_BLOCK) for s in range(0, n, PAIR_BLOCK)]


def _compact(alive: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: np.ndarray) -> int:
    """Move the pairs whose clusters are both ``alive`` to the front, in order, in place;
    returns their number."""
    filled = 0
    for b in _blocks(len(lo)):
        keep = alive[lo[b]] & alive[hi[b]]
        count = int(keep.sum())
        for array in (lo, hi, total):
            array[filled : filled + count] = array[b][keep]
        filled += count
    return filled


def _average(total: np.ndarray, lo: np.ndarray, hi: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """1 - average-linkage distance of each pair: S(A, B) / (|A| |B|)."""
    avg = sizes[lo]
    avg *= sizes[hi]
    return np.divide(total, avg, out=avg)


def _nearest(
    total: np.ndarray, lo: np.ndarray, hi: np.ndarray, sizes: np.ndarray, best: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each pair is lo's and hi's nearest (average similarity equal to their best), and
    the pair's tie-break hash."""
    avg = _average(total, lo, hi, sizes)
    tie = lo.astype(np.uint64)
    tie *= np.uint64(len(sizes))
    tie += hi.astype(np.uint64)
    tie *= _HASH
    return avg == best[lo], avg == best[hi], tie


def _coalesce(
    lo: np.ndarray, hi: np.ndarray, value: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum ``value`` over repeated pairs (lo <= hi); drop lo == hi; return new int32 arrays."""
    coo = sp.coo_matrix((value, (lo, hi)), shape=(k, k)).tocsr().tocoo()
    apart = coo.row != coo.col  # a pair inside one merged cluster is no pair any more
    return (
        coo.row[apart].astype(np.int32, copy=False),
        coo.col[apart].astype(np.int32, copy=False),
        coo.data[apart],
    )


def _significant_features(features: np.ndarray, thresh: float | None) -> np.ndarray:
    """TIAToolbox's feature filter: keep features whose range over patches exceeds ``thresh``."""
    if not thresh:
        return features
    significant = features.max(axis=0) - features.min(axis=0) > thresh
    return features if significant.all() else features[:, significant]
