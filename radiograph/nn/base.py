"""The aggregator interface shared by SPARRA, ABMIL and Mean pooling.

An aggregator turns a :class:`~radiograph.nn.batch.SubjectBatch` into one prediction, one
subject vector and one importance per node. A subject lacking a modality still gets a
prediction: its block of the subject vector is zeros and the head uses the modalities it has.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from radiograph.nn.batch import SubjectBatch

Task = Literal["survival", "classification"]
TASKS = ("survival", "classification")


@dataclass
class AggregatorOutput:
    """What every aggregator returns for a batch of B subjects.

    Attributes:
        prediction: (B,) risk (log relative hazard) for ``task="survival"``, or (B, C) logits for
            ``task="classification"``.
        embedding: (B, embedding_dim) subject vector x, the concatenation of one block per
            modality in the aggregator's modality order; a missing modality's block is zeros.
        aux_loss: scalar to add to the task loss, already weighted (SPARRA:
            ``tau_vi * (KL + tau_ae * MSE)``); 0 for Mean and ABMIL.
        aux_terms: unweighted scalar terms for logging (SPARRA: ``{"kl", "mse"}``), still
            attached to the autograd graph: log them with ``.item()``.
        importance: modality -> (N_m,) detached importance of every node of ``batch.graphs[m]``
            in the batch's node order; non-negative, summing to 1 per graph (SPARRA with
            ``weight_norm="joint"``: to 1 per subject over its modalities).
    """

    prediction: Tensor
    embedding: Tensor
    aux_loss: Tensor
    aux_terms: dict[str, Tensor]
    importance: dict[str, Tensor]


class Aggregator(torch.nn.Module):
    """Base class: holds the modality order, the task and the linear head.

    Subclasses build ``self.head`` via :meth:`_make_head` and implement
    ``forward(batch: SubjectBatch) -> AggregatorOutput``. Attributes available to callers:
    ``modalities`` (tuple, the block order of the subject vector), ``embedding_dim``, ``task``,
    ``out_dim`` (1 or C) and ``config`` (the aggregator's config dataclass).

    Args:
        in_dims: modality -> input feature dimension d_m; its key order is the modality order
            of the subject vector.
        task: ``"survival"`` (head gives one risk) or ``"classification"`` (C logits).
        num_classes: C for classification (>= 2); ignored for survival.
    """

    def __init__(
        self, in_dims: Mapping[str, int], task: Task = "survival", num_classes: int = 2
    ) -> None:
        super().__init__()
        if not in_dims:
            raise ValueError("in_dims: at least one modality is needed")
        for modality, dim in in_dims.items():
            if int(dim) < 1:
                raise ValueError(f"in_dims[{modality!r}] must be >= 1, got {dim}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "classification" and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 for classification, got {num_classes}")
        self.in_dims = {m: int(d) for m, d in in_dims.items()}
        self.modalities = tuple(self.in_dims)
        self.task = task
        self.num_classes = num_classes
        self.out_dim = 1 if task == "survival" else num_classes
        for modality, dim in self.in_dims.items():
            self.register_buffer(f"node_mean_{modality}", torch.zeros(dim))
            self.register_buffer(f"node_std_{modality}", torch.ones(dim))

    def set_node_scaling(self, scaling: Mapping[str, tuple[Tensor, Tensor]]) -> None:
        """Standardise node features inside the model: ``x -> (x - mean) / std`` per modality.

        The statistics become buffers, so they travel with ``state_dict`` and a checkpoint
        takes raw features. The identity (mean 0, std 1) until this is called.

        Args:
            scaling: modality -> ``(mean, std)``, each (d_m,); std must be > 0. Modalities
                left out keep their current scaling.
        """
        for modality, (mean, std) in scaling.items():
            if modality not in self.in_dims:
                raise ValueError(f"scaling for {modality!r}; the model knows {list(self.modalities)}")
            buffer_mean = getattr(self, f"node_mean_{modality}")
            if mean.shape != buffer_mean.shape or std.shape != buffer_mean.shape:
                raise ValueError(
                    f"modality {modality!r}: scaling needs ({self.in_dims[modality]},) mean and std,"
                    f" got {tuple(mean.shape)} and {tuple(std.shape)}"
                )
            if not bool((std > 0).all()):
                raise ValueError(f"modality {modality!r}: every std must be > 0")
            buffer_mean.copy_(mean)
            getattr(self, f"node_std_{modality}").copy_(std)

    def _make_head(self, embedding_dim: int) -> None:
        self.embedding_dim = embedding_dim
        self.head = torch.nn.Linear(embedding_dim, self.out_dim)

    def _prepare(self, batch: SubjectBatch) -> SubjectBatch:
        """Check ``batch`` and return it with node features standardised (see set_node_scaling).

        Raises ValueError for a batch without graphs, unknown modalities or wrong dimensions.
        """
        if not batch.graphs:
            raise ValueError("batch has no graphs: every subject needs at least one modality")
        for modality, graphs in batch.graphs.items():
            if modality not in self.in_dims:
                raise ValueError(
                    f"batch has modality {modality!r}; the model knows {list(self.modalities)}"
                )
            if graphs.x.size(1) != self.in_dims[modality]:
                raise ValueError(
                    f"modality {modality!r}: field 'x' has {graphs.x.size(1)} features, "
                    f"the model expects {self.in_dims[modality]}"
                )
            if batch.subject_of_graph[modality].numel() != graphs.num_graphs:
                raise ValueError(
                    f"modality {modality!r}: {graphs.num_graphs} graphs but "
                    f"{batch.subject_of_graph[modality].numel()} subject indices"
                )
        graphs = {}
        for modality, batched in batch.graphs.items():
            scaled = copy.copy(batched)
            mean = getattr(self, f"node_mean_{modality}")
            std = getattr(self, f"node_std_{modality}")
            scaled.x = (batched.x - mean.to(batched.x.dtype)) / std.to(batched.x.dtype)
            graphs[modality] = scaled
        return SubjectBatch(batch.num_subjects, graphs, batch.subject_of_graph)

    def _predict(self, embedding: Tensor) -> Tensor:
        out = self.head(embedding)
        return out[:, 0] if self.task == "survival" else out

    def forward(self, batch: SubjectBatch) -> AggregatorOutput:
        """Aggregate a batch of subjects (implemented by each aggregator)."""
        raise NotImplementedError


class FastDropout(torch.nn.Dropout):
    """``torch.nn.Dropout`` with the mask drawn as ``uniform >= p`` rather than by ``bernoulli_``.

    The same distribution and scaling (each entry kept with probability 1 - p and divided by
    1 - p; identity in evaluation mode), drawn from the same torch generator, so a seed still
    fixes it. PyTorch's CPU ``bernoulli_`` runs on one thread: for the (N, 256) node activations
    of 32 whole-slide graphs (N = 320k) it took 0.9 s per SPARRA training step on 2 cores, the
    uniform draw 0.3 s (``benchmarks/README.md``).
    """

    def forward(self, x: Tensor) -> Tensor:
        """(..., n) -> (..., n), entries zeroed with probability p in training mode."""
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep


def encoder_block(in_dim: int, out_dim: int, dropout: float) -> torch.nn.Sequential:
    """Per-modality node encoder: ``Linear(in_dim -> out_dim) -> ReLU -> Dropout(dropout)``."""
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, out_dim), torch.nn.ReLU(), FastDropout(dropout)
    )


class GatedAttention(torch.nn.Module):
    """Gated attention net (Ilse et al. 2018; CLAM): ``Linear(tanh(a(h)) * sigmoid(b(h)))``.

    Args:
        in_dim: node feature dimension L.
        hidden_dim: attention dimension D.
        out_dim: number of outputs per node (1 for ABMIL scores; 2 for SPARRA's mu, log sigma^2).
        dropout: dropout after each branch.

    Shapes: (N, L) -> (N, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.tanh_branch = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden_dim), torch.nn.Tanh(), FastDropout(dropout)
        )
        self.sigmoid_branch = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden_dim), torch.nn.Sigmoid(), FastDropout(dropout)
        )
        self.out = torch.nn.Linear(hidden_dim, out_dim)

    def forward(self, h: Tensor) -> Tensor:
        """Scores of each node: (N, L) -> (N, out_dim)."""
        return self.out(self.tanh_branch(h) * self.sigmoid_branch(h))


def build_aggregator(
    name: str,
    in_dims: Mapping[str, int],
    task: Task = "survival",
    num_classes: int = 2,
    **options: Any,
) -> Aggregator:
    """Build an aggregator by name from keyword options (e.g. a YAML mapping).

    Args:
        name: ``"sparra"``, ``"abmil"`` or ``"mean"``.
        in_dims: modality -> input feature dimension.
        task: ``"survival"`` or ``"classification"``.
        num_classes: number of classes for classification.
        **options: fields of the aggregator's config dataclass (:class:`SparraConfig`,
            :class:`AbmilConfig`, :class:`MeanConfig`); missing fields take paper defaults.

    Raises:
        ValueError: unknown name or option.
    """
    from radiograph.nn.abmil import Abmil, AbmilConfig
    from radiograph.nn.mean import MeanConfig, MeanPool
    from radiograph.nn.sparra import Sparra, SparraConfig

    registry: dict[str, tuple[type, type]] = {
        "sparra": (SparraConfig, Sparra),
        "abmil": (AbmilConfig, Abmil),
        "mean": (MeanConfig, MeanPool),
    }
    key = name.lower()
    if key not in registry:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {sorted(registry)}")
    config_cls, model_cls = registry[key]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(
            f"aggregator {key!r}: unknown options {sorted(unknown)}; allowed {sorted(fields)}"
        )
    return model_cls(in_dims, config_cls(**options), task=task, num_classes=num_classes)
