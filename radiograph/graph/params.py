"""Default construction parameters per modality, in units of the patch grid step.

A parameter set is written in *grid steps* (the distance between adjacent patch centres) so
that one set fits any patch size and any coordinate unit: lengths are multiples of the step and
``lambda_d`` is a decay per step. :func:`scaled_params` turns it into coordinate units.

Sources of the defaults:

* pathology / slidegraph: TIAToolbox's ``SlideGraphConstructor.build`` defaults (lambda_d 3e-3,
  connectivity 4000, search radius 2000), which assume 512-pixel patches on a 512-pixel grid
  (the SlideGraph+ setting), divided by that step; ``feature_range_thresh`` None as in the
  reference RadioPath code, which calls it with ``feature_range_thresh=None``.
* radiology / slidegraph: the reference RadioPath CT call (``construct_radiomic_graph``:
  lambda_d 0.2, lambda_f 0.1, lambda_h 0.8, connectivity 8, search radius 4, in voxel steps).
* knn: k = 8 as in Patch-GCN, with edges capped at the modality's connectivity distance so
  that separate tissue pieces stay separate; radius: 1.5 steps (the 8- or 26-neighbourhood
  of a grid); delaunay: the modality's connectivity distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Grid step (coordinate units between adjacent patches) assumed by TIAToolbox's defaults.
PEER_PATCH_STEP = 512.0

#: Parameters that are lengths (scale with the step) and decays per length (scale inversely).
LENGTH_PARAMS = ("connectivity_distance", "neighbour_search_radius", "radius", "max_distance")
INVERSE_LENGTH_PARAMS = ("lambda_d",)

_PATHOLOGY_CONNECTIVITY = 4000.0 / PEER_PATCH_STEP
_RADIOLOGY_CONNECTIVITY = 8.0

#: modality -> method -> parameters in grid steps.
STEP_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "pathology": {
        "slidegraph": {
            "lambda_d": 3.0e-3 * PEER_PATCH_STEP,
            "lambda_f": 1.0e-3,
            "lambda_h": 0.8,
            "connectivity_distance": _PATHOLOGY_CONNECTIVITY,
            "neighbour_search_radius": 2000.0 / PEER_PATCH_STEP,
            "feature_range_thresh": None,
        },
        "knn": {"k": 8, "max_distance": _PATHOLOGY_CONNECTIVITY},
        "radius": {"radius": 1.5},
        "delaunay": {"connectivity_distance": _PATHOLOGY_CONNECTIVITY},
    },
    "radiology": {
        "slidegraph": {
            "lambda_d": 0.2,
            "lambda_f": 0.1,
            "lambda_h": 0.8,
            "connectivity_distance": _RADIOLOGY_CONNECTIVITY,
            "neighbour_search_radius": 4.0,
            "feature_range_thresh": None,
        },
        "knn": {"k": 8, "max_distance": _RADIOLOGY_CONNECTIVITY},
        "radius": {"radius": 1.5},
        "delaunay": {"connectivity_distance": _RADIOLOGY_CONNECTIVITY},
    },
}


def step_params(
    modality: str, method: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The default parameters of ``method`` for ``modality`` in grid steps, with overrides.

    Raises:
        ValueError: unknown modality, method or parameter name.
    """
    if modality not in STEP_DEFAULTS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(STEP_DEFAULTS)}")
    if method not in STEP_DEFAULTS[modality]:
        raise ValueError(
            f"unknown method {method!r}; expected one of {sorted(STEP_DEFAULTS[modality])}"
        )
    params = dict(STEP_DEFAULTS[modality][method])
    unknown = sorted(set(overrides or {}) - set(params))
    if unknown:
        raise ValueError(
            f"method {method!r} has no parameter(s) {unknown}; it takes {sorted(params)}"
        )
    params.update(overrides or {})
    return params


def scaled_params(params_in_steps: Mapping[str, Any], step: float) -> dict[str, Any]:
    """Convert parameters from grid steps to coordinate units (lengths x step, decays / step)."""
    if not step > 0:
        raise ValueError(f"grid step must be > 0 (got {step})")
    scaled = dict(params_in_steps)
    for name in LENGTH_PARAMS:
        if scaled.get(name) is not None:
            scaled[name] = float(scaled[name]) * step
    for name in INVERSE_LENGTH_PARAMS:
        if scaled.get(name) is not None:
            scaled[name] = float(scaled[name]) / step
    return scaled


def grid_step(coords: np.ndarray) -> float:
    """Median distance from each patch to its nearest distinct neighbour (the grid step).

    Args:
        coords: (N, 2|3) patch coordinates.

    Returns:
        The step in coordinate units; 1.0 when there are fewer than two distinct positions
        (then no length matters: the graph has one node).
    """
    from scipy.spatial import cKDTree  # imported here: scipy.spatial costs ~0.5 s to import

    unique = np.unique(np.asarray(coords, dtype=np.float64), axis=0)
    if len(unique) < 2:
        return 1.0
    dist, _ = cKDTree(unique).query(unique, k=2)
    return float(np.median(dist[:, 1]))
