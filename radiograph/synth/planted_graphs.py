r"""Synthetic cohorts of spatial graphs with a planted prognostic signal, of two kinds.

Each subject has one graph per modality: pathology nodes on a jittered 2D grid (level-0 pixel
coordinates, one node per 256-pixel patch) and, optionally, radiology nodes on a jittered 3D grid
(mm). Node features are standard normal in ``dim`` dimensions. The two signals
(``PlantedParams.signal``) ask different things of an aggregator:

``"abundance"`` (default): the hazard is set by how much of the tissue carries a pattern. In
every graph a compact spatial blob (the nodes nearest to a random centre) has its features
shifted by ``amplitude`` along a fixed unit vector (the marker) of that modality. Subject i's
planted fraction :math:`p_{i,m} \sim U(0, p_\max)` sets the blob size, and the true log relative
hazard is

.. math::

    \eta_i = \sum_m s_m \, p_{i,m} / p_\max ,

with :math:`s_m` the ``strength`` of modality m (the log hazard ratio between a subject with the
largest blob and one with none). A per-subject mean of the node features moves along the marker
in proportion to :math:`p_{i,m}`, so it is close to a sufficient statistic: in principle the
cohort favours mean pooling. Optionally each graph also has a *distractor* blob
(``distractor_fraction``) with its own, non-prognostic marker.

``"focal"``: the hazard is set by what a small region looks like, not by how large it is. Three
orthonormal directions of the feature space are drawn per modality: a marker :math:`u`, a
distractor marker :math:`u'` and an appearance direction :math:`v`. Each graph has a compact
region of :math:`n_r = \mathrm{round}(f N)` nodes, :math:`f \sim U(p_\max / 2, p_\max)` drawn
independently of the hazard (at most :math:`k^2 = 4\%` of the nodes by default, what SPARRA's
two TopK(0.2) layers keep), and a disjoint distractor region of the same size. With per-subject
scores :math:`z_{i,m}, z'_{i,m} \sim N(0, 1)` independent,

.. math::

    x_j \mathrel{+}= a \, u + c \, z_{i,m} \, v \quad (j \text{ in the region}), \qquad
    x_j \mathrel{+}= a \, u' + c \, z'_{i,m} \, v \quad (j \text{ in the distractor}),

    \eta_i = \sum_m s_m \, z_{i,m},

with :math:`a` the ``amplitude`` (marker shift) and :math:`c` the ``appearance`` shift, both in
units of the background standard deviation, and :math:`s_m` the log hazard ratio per standard
deviation of the region's appearance. The signal lives in the 3-d subspace
:math:`\{u, u', v\}` of a ``dim``-dimensional feature space. A mean of the node features sees
:math:`v` only as :math:`f c (z + z')`, the prognostic appearance mixed one to one with the
distractor's, so mean pooling cannot separate them; an aggregator that weights the nodes
marked by :math:`u` can. :meth:`PlantedParams.focal` gives the defaults of this cohort
(2,000 nodes, 256-d).

Both: event times are exponential with rate :math:`\lambda_0 e^{\eta_i - \bar\eta}`, censoring
times exponential with the rate that censors ``censored_fraction`` of the subjects in
expectation. A subject may lack radiology (``missing_radiology``). Edges: each node to its
``knn`` nearest neighbours in space (:func:`radiograph.graph.edges.knn_edges`), symmetrised.
The graph's ``planted`` mask marks the blob (abundance) or the region (focal), ``distractor``
the distractor.

What the aggregators show on each (measured at 120 subjects, 5 seeds x 5 folds, scored by a
downstream ridge CoxPH: ``benchmarks/sparra_evidence.py``, results in ``docs/sparra.md``):
ABMIL beat mean pooling on both (+0.13 abundance, +0.16 focal); SPARRA's runs fell in two
basins, near the oracle when its TopK selection kept the planted region (about a third of the
abundance runs, a quarter of the focal ones) and at or below mean pooling otherwise, so on
average it was not distinguishable from mean pooling. Recovery is judged with
:func:`planted_recovery` (share of the region among the kept nodes, importance mass on it).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch_geometric.data import Data

from radiograph.graph.edges import knn_edges
from radiograph.io.atomic import atomic_open
from radiograph.io.graphs import save_graph
from radiograph.synth import SIGNALS
from radiograph.synth.cohort import censoring_rate

PATCH_SIZE_PX = 256
"""Pathology grid spacing: one node per 256-pixel patch (level-0 pixels)."""

VOXEL_SPACING_MM = 8.0
"""Radiology grid spacing in mm."""


@dataclass(frozen=True)
class PlantedParams:
    """How the planted cohort is generated (the model: module docstring).

    Attributes:
        n_subjects: number of subjects (one patient each).
        n_nodes: nodes per pathology graph.
        n_nodes_radiology: nodes per radiology graph; 0 for a pathology-only cohort.
        dim: feature dimension of the pathology nodes.
        dim_radiology: feature dimension of the radiology nodes.
        signal: ``"abundance"`` (the blob's size sets the hazard) or ``"focal"`` (the
            region's appearance does).
        max_fraction: abundance: upper end of the uniform planted fraction per graph; focal:
            the region's fraction is uniform in ``[max_fraction / 2, max_fraction]``.
        amplitude: shift of planted (and distractor) node features along their marker, in
            units of the background standard deviation (1).
        appearance: focal: shift along the appearance direction per unit of the subject's
            appearance score (background SDs); unused by the abundance signal.
        strength: abundance: log hazard ratio between a full pathology blob
            (p = max_fraction) and none; focal: log hazard ratio per standard deviation of the
            pathology region's appearance score.
        strength_radiology: the same for the radiology graph.
        distractor_fraction: abundance: size of a non-prognostic blob with its own marker
            (0 = none). The focal signal always has a distractor region of the region's size,
            and this must be 0.
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
    signal: str = "abundance"
    max_fraction: float = 0.04
    amplitude: float = 6.0
    appearance: float = 0.0
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
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.signal == "focal":
            if self.distractor_fraction != 0.0:
                raise ValueError(
                    "distractor_fraction must be 0 with signal='focal' (its "
                    "distractor region has the size of the prognostic region)"
                )
            if not 0.0 < self.max_fraction <= 0.5:
                raise ValueError(
                    "max_fraction must lie in (0, 0.5] with signal='focal' (a "
                    f"region and a distractor of that size), got {self.max_fraction}"
                )
            if self.appearance <= 0.0:
                raise ValueError(
                    f"appearance must be > 0 with signal='focal', got {self.appearance}"
                )
            if min(self.dim, self.dim_radiology) < 3:
                raise ValueError(
                    "dim and dim_radiology must be >= 3 with signal='focal' (three "
                    "orthogonal directions)"
                )

    @classmethod
    def focal(cls, **overrides: object) -> PlantedParams:
        """The focal-signal cohort's defaults, with ``overrides`` (any field) applied.

        2,000 pathology nodes of 256-d features (real slides have thousands of patches and
        foundation features hundreds of dimensions), a region and a distractor of 2-4% of the
        nodes each, marker shift 6 SD (the abundance blob's), appearance shift 1.5 SD per unit
        score, log hazard ratio 1.5 per SD of the appearance score (oracle C-index 0.80 at 40%
        censoring, that of the abundance defaults), 8 spatial neighbours per node. The two
        cohorts differ in what carries the hazard, not in how visible the marked nodes are.
        """
        settings = dict(
            signal="focal",
            n_nodes=2000,
            dim=256,
            dim_radiology=256,
            max_fraction=0.04,
            amplitude=6.0,
            appearance=1.5,
            strength=1.5,
            strength_radiology=1.5,
            knn=8,
        )
        settings.update(overrides)
        return cls(**settings)


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
        directions: modality -> unit (d,) vectors: ``"marker"`` and ``"distractor"`` (the
            markers of the planted and the distractor nodes) and, focal, ``"appearance"``.
        appearance: focal: modality -> (n,) the appearance scores z of the prognostic regions
            (NaN where the subject lacks the modality); empty for the abundance signal.
    """

    subject_ids: list[str]
    time: np.ndarray
    event: np.ndarray
    risk: np.ndarray
    planted_fraction: dict[str, np.ndarray]
    graphs: dict[str, list[Data | None]]
    params: PlantedParams
    seed: int
    directions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    appearance: dict[str, np.ndarray] = field(default_factory=dict)

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
                    [
                        sid,
                        f"P{sid[1:]}",
                        "synthetic",
                        repr(float(self.time[i])),
                        "years",
                        int(self.event[i]),
                        repr(float(self.risk[i])),
                    ]
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


def _orthonormal(dim: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` orthonormal (dim,) vectors, uniformly oriented (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(dim, count)))
    q = q * np.sign(np.diag(r))
    return [q[:, j].copy() for j in range(count)]


def _graph(
    subject_id: str,
    modality: str,
    n_nodes: int,
    dim: int,
    sizes: tuple[int, int],
    shifts: tuple[np.ndarray, np.ndarray],
    knn: int,
    rng: np.random.Generator,
) -> Data:
    """One graph: standard normal features, the planted blob (``sizes[0]`` nodes) shifted by
    ``shifts[0]`` and a disjoint distractor blob (``sizes[1]``) shifted by ``shifts[1]``."""
    dims, spacing = (2, PATCH_SIZE_PX) if modality == "pathology" else (3, VOXEL_SPACING_MM)
    pos = _grid(n_nodes, dims, spacing, rng)
    planted = _blob(pos, sizes[0], np.zeros(n_nodes, bool), rng)
    distracting = _blob(pos, sizes[1], planted, rng)
    x = rng.normal(size=(n_nodes, dim))
    x[planted] += shifts[0]
    x[distracting] += shifts[1]
    return Data(
        x=torch.from_numpy(x).float(),
        pos=torch.from_numpy(pos),
        edge_index=torch.from_numpy(knn_edges(pos, knn)),
        planted=torch.from_numpy(planted),
        distractor=torch.from_numpy(distracting),
        node_of_patch=torch.arange(n_nodes),
        num_patches=n_nodes,
        subject_id=subject_id,
        params={"generator": "planted_graphs", "modality": modality, "knn": knn},
    )


def make_planted_cohort(params: PlantedParams | None = None, seed: int = 0) -> PlantedCohort:
    """Generate a planted-signal cohort (see the module docstring for both signals).

    Args:
        params: generation parameters (defaults: the abundance signal, 205 subjects x 300
            pathology nodes, 32-d features, planted fraction in [0, 4%];
            :meth:`PlantedParams.focal` for the focal signal).
        seed: seed of ``np.random.default_rng``; the same seed gives the same cohort.

    Returns:
        A :class:`PlantedCohort`.
    """
    params = params or PlantedParams()
    rng = np.random.default_rng(seed)
    modalities = {"pathology": (params.n_nodes, params.dim, params.strength)}
    if params.n_nodes_radiology > 0:
        modalities["radiology"] = (
            params.n_nodes_radiology,
            params.dim_radiology,
            params.strength_radiology,
        )
    n = params.n_subjects
    subject_ids = [f"S{i:03d}" for i in range(n)]
    risk = np.zeros(n)
    graphs: dict[str, list[Data | None]] = {}
    fractions: dict[str, np.ndarray] = {}
    directions: dict[str, dict[str, np.ndarray]] = {}
    appearance: dict[str, np.ndarray] = {}
    focal = params.signal == "focal"
    for modality, (n_nodes, dim, strength) in modalities.items():
        if focal:
            marker, distractor, along = _orthonormal(dim, 3, rng)
            directions[modality] = {"marker": marker, "distractor": distractor, "appearance": along}
            frac = rng.uniform(params.max_fraction / 2, params.max_fraction, size=n)
            score, score_distractor = rng.normal(size=n), rng.normal(size=n)
        else:
            marker, distractor = _unit(dim, rng), _unit(dim, rng)
            directions[modality] = {"marker": marker, "distractor": distractor}
            frac = rng.uniform(0.0, params.max_fraction, size=n)
        present = np.ones(n, dtype=bool)
        if modality == "radiology":
            present = rng.uniform(size=n) >= params.missing_radiology
        frac[~present] = np.nan
        if focal:
            risk += np.where(present, strength * score, 0.0)
            appearance[modality] = np.where(present, score, np.nan)
        elif params.max_fraction > 0:
            risk += np.where(present, strength * np.nan_to_num(frac) / params.max_fraction, 0.0)
        graphs[modality] = []
        for i, sid in enumerate(subject_ids):
            if not present[i]:
                graphs[modality].append(None)
                continue
            size = int(round(frac[i] * n_nodes))
            if focal:
                sizes = (size, size)
                shifts = (
                    params.amplitude * marker + params.appearance * score[i] * along,
                    params.amplitude * distractor + params.appearance * score_distractor[i] * along,
                )
            else:
                sizes = (size, int(round(params.distractor_fraction * n_nodes)))
                shifts = (params.amplitude * marker, params.amplitude * distractor)
            graphs[modality].append(
                _graph(sid, modality, n_nodes, dim, sizes, shifts, params.knn, rng)
            )
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
        directions=directions,
        appearance=appearance,
    )


def planted_recovery(
    importance: Sequence[np.ndarray], planted: Sequence[np.ndarray]
) -> dict[str, float]:
    r"""How well node importances find the planted nodes, over a set of graphs.

    Args:
        importance: one (N_g,) array of non-negative node importances per graph (0 = dropped
            node).
        planted: one (N_g,) boolean array per graph, True for planted nodes.

    Returns:
        ``auroc``: ROC AUC of importance vs planted over all nodes pooled;
        ``auroc_per_graph``: mean ROC AUC over the graphs with planted nodes;
        ``precision``: fraction of kept nodes (importance > 0) that are planted;
        ``base_rate``: fraction of all nodes that are planted;
        ``enrichment``: precision / base_rate;
        ``recall``: fraction of planted nodes that are kept (pooled);
        ``mass``: mean over the graphs with planted nodes of the share of the graph's
        importance on its planted nodes, :math:`\sum_{j \in P} w_j / \sum_j w_j`;
        ``node_share``: mean over the same graphs of the share of their nodes that are planted
        (what ``mass`` is for a uniform importance, e.g. mean pooling's).

    Dropped nodes all score 0, so when the planted share p exceeds the kept share (SPARRA:
    k^2) the AUROC cannot exceed about 0.5 + 0.5 k^2 / p; ``precision`` and ``mass`` have no
    such ceiling.
    """
    if len(importance) != len(planted) or not importance:
        raise ValueError(
            f"need one planted mask per importance array, got {len(importance)} and {len(planted)}"
        )
    per_graph, mass, share = [], [], []
    for imp, lab in zip(importance, planted):
        if imp.shape != lab.shape:
            raise ValueError(f"importance {imp.shape} and planted {lab.shape} differ in shape")
        if (imp < 0).any():
            raise ValueError("importance must be non-negative")
        lab = lab.astype(bool)
        if lab.any() and not lab.all():
            per_graph.append(roc_auc_score(lab, imp))
        if lab.any():
            total = imp.sum()
            mass.append(float(imp[lab].sum() / total) if total > 0 else 0.0)
            share.append(float(lab.mean()))
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
        "mass": float(np.mean(mass)) if mass else float("nan"),
        "node_share": float(np.mean(share)) if share else float("nan"),
    }
