"""Spatial-feature graphs of patches, for slides (2D) and volumes (3D).

Importable on its own: depends on numpy, scipy, torch, torch_geometric, networkx, matplotlib
and :mod:`radiograph.io`, never on the training code.

Stable API:

* :func:`build_spatial_graph` (coords, features, method, **params) -> ``Data`` with ``x``,
  ``pos``, ``edge_index``, ``node_of_patch``, ``num_patches``, ``patch_coords``, ``params``.
  Methods ``slidegraph`` (TIAToolbox's SlideGraph construction, computed sparsely),
  ``knn``, ``radius``, ``delaunay``; parameters and defaults in :data:`METHOD_DEFAULTS`.
* :func:`to_networkx` / :func:`from_networkx`; :func:`graph_stats`; :func:`cluster_quality`.
* :func:`plot_graph_2d` (over a slide thumbnail), :func:`plot_graph_3d` (over CT projections).
* Per-modality defaults in grid steps: :func:`step_params`, :func:`scaled_params`,
  :func:`grid_step`.
* Edge rules on points: :func:`knn_edges`, :func:`radius_edges`, :func:`delaunay_edges`.

The names load on first use (:mod:`radiograph._lazy`).
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "build": ("METHOD_DEFAULTS", "GraphConstructionWarning", "build_spatial_graph"),
        "edges": ("delaunay_edges", "knn_edges", "radius_edges"),
        "export": ("from_networkx", "to_networkx"),
        "params": ("grid_step", "scaled_params", "step_params"),
        "plot": ("plot_graph_2d", "plot_graph_3d"),
        "slidegraph": ("SlideGraphParams",),
        "stats": ("cluster_quality", "graph_stats"),
    },
)
