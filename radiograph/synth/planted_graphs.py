r"""A synthetic cohort of spatial graphs with a planted prognostic signal (SPARRA.md prototype).

Each subject has one graph per modality: pathology nodes on a jittered 2D grid (level-0 pixel
coordinates, one node per 256-pixel patch) and, optionally, radiology nodes on a jittered 3D grid
(mm). Node features are standard normal in ``dim`` dimensions. In every graph a compact spatial
blob (the nodes nearest to a random centre) carries a signature: its features are shifted by
``amplitude`` along a fixed unit vector of that modality. Subject i's planted fraction
:math:`p_{i,m} \sim U(0, p_\max)` sets the blob size, and the true log relative hazard is

.. math::

    \eta_i = \sum_m s_m \, p_{i,m} / p_\max ,

with :math:`s_m` the ``strength`` of modality m (the log hazard ratio between a subject with the
largest blob and one with none). Event times are exponential with rate :math:`\lambda_0 e^{\eta_i}`,
censoring times exponential with the rate that censors ``censored_fraction`` of the subjects in
expectation. A subject may lack radiology (``missing_radiology``).

Optionally each graph also has a *distractor* blob with its own (non-prognostic) signature, so
that an aggregator must learn which signature matters rather than any deviation from the
background.

The default ``max_fraction = 0.04`` equals :math:`k^2` for SPARRA's two TopK layers of ratio
k = 0.2, the setting in which a node-importance AUROC near 1 is attainable (SPARRA.md: dropped
nodes all score 0, so AUROC <= 0.5 + 0.5 k^2 / p when p > k^2).

Edges: each node to its ``knn`` nearest neighbours in space
(:func:`radiograph.graph.edges.knn_edges`), symmetrised.

What a model can show on it (measured; see ``tests/train/test_planted_signal.py`` and
``benchmarks/sparra_epoch.py``): SPARRA's two TopK layers keep k^2 = 4% of the nodes and pass no
gradient through the nodes they drop, so whether training finds the blob depends on the
initialisation. In about one run in five it does (node-importance AUROC 0.8-0.95, planted nodes
~15-20x enriched among the kept ones, test C-index near the oracle's); otherwise the planted
nodes stay dropped (AUROC ~0.48). 16 neighbours per node (more message passing between the blob
and the nodes TopK keeps) and the amplitude of 6 made discovery more frequent than 8 neighbours
or amplitudes 3-4 in the measurements.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch_geometric.data import Data

from radiograph.graph.edges import knn_edges
from radiograph.io.atomic import atomic_open
from radiograph.io.graphs import save_graph
from radiograph.synth.cohort import censoring_rate

PATCH_SIZE_PX = 256
"""Pathology grid spacing: one node per 256-pixel patch (level-0 pixels)."""

VOXEL_SPACING_MM = 8.0
"""Radiology grid spacing in mm."""


@dataclass(frozen=True)
class PlantedParams:
    """How the planted cohort is generated.

    Attributes:
        n_subjects: number of subjects (one patient each).
        n_nodes: nodes per pathology graph.
        n_nodes_radiology: nodes per radiology graph; 0 for a pathology-only cohort.
        dim: feature dimension of the pathology nodes.
        dim_radiology: feature dimension of the radiology nodes.
        max_fraction: upper end of the uniform planted fraction per graph.
        amplitude: shift of planted node features along the signature, in units of the
            background standard deviation (1).
        strength: log hazard ratio between a full pathology blob (p = max_fraction) and none.
        strength_radiology: the same for the radiology blob.
        distractor_fraction: size of a non-prognostic blob with its own signature (0 = none).
        missing_radiology: probability that a subject has no radiology graph.
        censored_fraction: expected fraction of censored subjects.
        baseline_hazard: lambda_0 of the exponential event times (per year).
        knn: neighbours per node for the edges.
    """

    n_subjects: int = 205
    n_nodes: int = 300
    n_nodes_radiology: int = 0
    dim: int = 32
    dim_radiology: int = 32
    max_fraction: float = 0.04
    amplitude: float = 6.0
    strength: float = 4.8
    strength_radiology: float = 2.4
    distractor_fraction: float = 0.0
    missing_radiology: float = 0.0
    censored_fraction: float = 0.4
    baseline_hazard: float = 0.2
    knn: int = 16

    def __post_init__(self) -> None:
        if self.n_subjects < 2 or self.n_nodes < 1 or self.n_nodes_radiology < 0:
            raise ValueError(
                "n_subjects must be >= 2, n_nodes >= 1 and n_nodes_radiology >= 0, got "
                f"{self.n_subjects}, {self.n_nodes}, {self.n_nodes_radiology}"
            )
        if not 0.0 <= self.max_fraction <= 1.0 or not 0.0 <= self.distractor_fraction <= 1.0:
            raise ValueError("max_fraction and distractor_fraction must lie in [0, 1]")
        if not 0.0 <= self.censored_fraction < 1.0:
            raise ValueError(f"censored_fraction must lie in [0, 1), got {self.censored_fraction}")
        if not 0.0 <= self.missing_radiology < 1.0:
            raise ValueError(f"missing_radiology must lie in [0, 1), got {self.missing_radiology}")
        if self.knn < 1:
            raise ValueError(f"knn must be >= 1, got {self.knn}")


@dataclass
class PlantedCohort:
    """A generated cohort.

    Attributes:
        subject_ids: (n,) subject ids ``"S000"``, ...; each subject is its own patient.
        time: (n,) observed times in years (> 0).
        event: (n,) 1 = event observed, 0 = censored.
        risk: (n,) true log relative hazard eta.
        planted_fraction: modality -> (n,) fraction of the nodes in the planted blob (NaN where
            the subject lacks the modality).
        graphs: modality -> one graph per subject (``None`` where missing). Each ``Data`` has
            ``x`` (N, d) float32, ``pos`` (N, 2|3) float64, ``edge_index`` (2, E), ``planted``
            (N,) bool, ``distractor`` (N,) bool, ``node_of_patch`` (N,) long (one patch per
            node), ``num_patches``, ``subject_id`` and ``params``.
        params: the generation parameters.
        seed: the seed used.
    """

    subject_ids: list[str]
    time: np.ndarray
    event: np.ndarray
    risk: np.ndarray
    planted_fraction: dict[str, np.ndarray]
    graphs: dict[str, list[Data | None]]
    params: PlantedParams
    seed: int

    def write(self, root: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``graphs/<modality>/<subject>.pt`` and ``manifest.csv`` under ``root``.

        The manifest has the required columns (``centre`` is ``"synthetic"``, time in years) and
        the true risk as a covariate column ``true_risk``; it references no image files.

        Returns:
            ``(graphs_dir, manifest_path)``.
        """
        root = Path(root)
        graphs_dir = root / "graphs"
        for modality, graphs in self.graphs.items():
            for sid, graph in zip(self.subject_ids, graphs):
                if graph is not None:
                    save_graph(graphs_dir / modality / f"{sid}.pt", graph)
        manifest_path = root / "manifest.csv"
        with atomic_open(manifest_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["subject_id", "patient_id", "centre", "time", "time_unit", "event", "true_risk"]
            )
            for i, sid in enumerate(self.subject_ids):
                writer.writerow(
                    [sid, f"P{sid[1:]}", "synthetic", repr(float(self.time[i])), "years",
                     int(self.event[i]), repr(float(self.risk[i]))]
                )
        return graphs_dir, manifest_path


def _grid(n: int, dims: int, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """(n, dims) positions on a jittered regular grid, roughly a square (cube)."""
    side = math.ceil(n ** (1.0 / dims) - 1e-9)
    axes = np.meshgrid(*[np.arange(side)] * dims, indexing="ij")
    cells = np.stack([a.ravel() for a in axes], axis=1)[:n].astype(np.float64)
    return (cells + rng.uniform(-0.25, 0.25, size=cells.shape)) * spacing


def _blob(pos: np.ndarray, size: int, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the ``size`` nodes nearest to a random centre, avoiding ``exclude``."""
    mask = np.zeros(len(pos), dtype=bool)
    free = np.flatnonzero(~exclude)
    if size == 0 or free.size == 0:
        return mask
    centre = pos[rng.choice(free)]
    order = np.argsort(np.linalg.norm(pos - centre, axis=1), kind="stable")
    chosen = order[~exclude[order]][:size]
    mask[chosen] = True
    return mask


def _unit(dim: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def _graph(
    subject_id: str,
    modality: str,
    n_nodes: int,
    dim: int,
    fraction: float,
    signature: np.ndarray,
    distractor: np.ndarray,
    params: PlantedParams,
    rng: np.random.Generator,
) -> Data:
    dims, spacing = (2, PATCH_SIZE_PX) if modality == "pathology" else (3, VOXEL_SPACING_MM)
    pos = _grid(n_nodes, dims, spacing, rng)
    planted = _blob(pos, int(round(fraction * n_nodes)), np.zeros(n_nodes, bool), rng)
    distracting = _blob(pos, int(round(params.distractor_fraction * n_nodes)), planted, rng)
    x = rng.normal(size=(n_nodes, dim))
    x[planted] += params.amplitude * signature
    x[distracting] += params.amplitude * distractor
    return Data(
        x=torch.from_numpy(x).float(),
        pos=torch.from_numpy(pos),
        edge_index=torch.from_numpy(knn_edges(pos, params.knn)),
        planted=torch.from_numpy(planted),
        distractor=torch.from_numpy(distracting),
        node_of_patch=torch.arange(n_nodes),
        num_patches=n_nodes,
        subject_id=subject_id,
        params={"generator": "planted_graphs", "modality": modality, "knn": params.knn},
    )


def make_planted_cohort(params: PlantedParams | None = None, seed: int = 0) -> PlantedCohort:
    """Generate a planted-signal cohort (see the module docstring for the model).

    Args:
        params: generation parameters (defaults: the SPARRA.md prototype sizes, 205 subjects x
            300 pathology nodes, 32-d features, planted fraction in [0, 4%]).
        seed: seed of ``np.random.default_rng``; the same seed gives the same cohort.

    Returns:
        A :class:`PlantedCohort`.
    """
    params = params or PlantedParams()
    rng = np.random.default_rng(seed)
    modalities = {"pathology": (params.n_nodes, params.dim, params.strength)}
    if params.n_nodes_radiology > 0:
        modalities["radiology"] = (
            params.n_nodes_radiology, params.dim_radiology, params.strength_radiology
        )
    n = params.n_subjects
    subject_ids = [f"S{i:03d}" for i in range(n)]
    risk = np.zeros(n)
    graphs: dict[str, list[Data | None]] = {}
    fractions: dict[str, np.ndarray] = {}
    for modality, (n_nodes, dim, strength) in modalities.items():
        signature, distractor = _unit(dim, rng), _unit(dim, rng)
        frac = rng.uniform(0.0, params.max_fraction, size=n)
        present = np.ones(n, dtype=bool)
        if modality == "radiology":
            present = rng.uniform(size=n) >= params.missing_radiology
        frac[~present] = np.nan
        if params.max_fraction > 0:
            risk += np.where(present, strength * np.nan_to_num(frac) / params.max_fraction, 0.0)
        graphs[modality] = [
            _graph(sid, modality, n_nodes, dim, frac[i], signature, distractor, params, rng)
            if present[i]
            else None
            for i, sid in enumerate(subject_ids)
        ]
        fractions[modality] = frac
    hazard = params.baseline_hazard * np.exp(risk - risk.mean())
    event_time = rng.exponential(1.0 / hazard)
    mu = censoring_rate(hazard, params.censored_fraction)
    censor_time = rng.exponential(1.0 / mu, size=n) if mu > 0 else np.full(n, np.inf)
    time = np.minimum(event_time, censor_time)
    event = (event_time <= censor_time).astype(np.int64)
    return PlantedCohort(
        subject_ids=subject_ids,
        time=time,
        event=event,
        risk=risk,
        planted_fraction=fractions,
        graphs=graphs,
        params=params,
        seed=seed,
    )


def planted_recovery(
    importance: Sequence[np.ndarray], planted: Sequence[np.ndarray]
) -> dict[str, float]:
    """How well node importances find the planted nodes, over a set of graphs.

    Args:
        importance: one (N_g,) array of node importances per graph (0 = dropped node).
        planted: one (N_g,) boolean array per graph, True for planted nodes.

    Returns:
        ``auroc``: ROC AUC of importance vs planted over all nodes pooled;
        ``auroc_per_graph``: mean ROC AUC over the graphs with planted nodes;
        ``precision``: fraction of kept nodes (importance > 0) that are planted;
        ``base_rate``: fraction of all nodes that are planted;
        ``enrichment``: precision / base_rate;
        ``recall``: fraction of planted nodes that are kept (pooled).
    """
    if len(importance) != len(planted) or not importance:
        raise ValueError(f"need one planted mask per importance array, got {len(importance)} "
                         f"and {len(planted)}")
    per_graph = []
    for imp, lab in zip(importance, planted):
        if imp.shape != lab.shape:
            raise ValueError(f"importance {imp.shape} and planted {lab.shape} differ in shape")
        if lab.any() and not lab.all():
            per_graph.append(roc_auc_score(lab, imp))
    imp_all = np.concatenate(importance)
    lab_all = np.concatenate(planted).astype(bool)
    kept = imp_all > 0
    base_rate = float(lab_all.mean())
    precision = float(lab_all[kept].mean()) if kept.any() else 0.0
    return {
        "auroc": float(roc_auc_score(lab_all, imp_all)),
        "auroc_per_graph": float(np.mean(per_graph)) if per_graph else float("nan"),
        "precision": precision,
        "base_rate": base_rate,
        "enrichment": precision / base_rate if base_rate > 0 else float("nan"),
        "recall": float(kept[lab_all].mean()) if lab_all.any() else float("nan"),
    }
