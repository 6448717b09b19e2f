"""The aggregator interface shared by SPARRA, ABMIL and Mean pooling.

An aggregator turns a :class:`~radiograph.nn.batch.SubjectBatch` into one prediction, one
subject vector and one importance per node. A subject lacking a modality still gets a
prediction: its block of the subject vector is zeros and the head uses the modalities it has.
Aggregators are declared, and built by name, in :mod:`radiograph.nn.registry`.
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
                raise ValueError(
                    f"scaling for {modality!r}; the model knows {list(self.modalities)}"
                )
            buffer_mean = getattr(self, f"node_mean_{modality}")
            if mean.shape != buffer_mean.shape or std.shape != buffer_mean.shape:
                raise ValueError(
                    f"modality {modality!r}: scaling needs ({self.in_dims[modality]},) mean "
                    "and std,"
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
            # one (N, d) allocation: the difference, divided in place
            scaled.x = torch.sub(batched.x, mean.to(batched.x.dtype)).div_(std.to(batched.x.dtype))
            graphs[modality] = scaled
        return dataclasses.replace(batch, graphs=graphs)

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
        keep = self.keep_mask(x)
        return x if keep is None else x * keep

    def keep_mask(self, x: Tensor) -> Tensor | None:
        """The scaled mask this layer multiplies ``x`` by: entries ``1 / (1 - p)`` with
        probability 1 - p, else 0 (all 0 when p = 1); None when the layer is the identity
        (evaluation mode or p = 0). Draws ``x.numel()`` uniforms, as :meth:`forward` does."""
        if not self.training or self.p == 0.0:
            return None
        if self.p == 1.0:
            return torch.zeros_like(x)
        return torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))


class NodeEncoder(torch.nn.Sequential):
    r"""``Linear -> ReLU -> FastDropout`` computed as one product and two in-place steps.

    :math:`y = \mathrm{Dropout}(\mathrm{ReLU}(x W^T + b)) = \mathrm{ReLU}((x W^T + b) \odot m)`
    for the dropout's mask m with entries 0 or s = 1 / (1 - p), so the (N, out) product is masked
    and rectified in place, with the same random draws and, up to the sign of zero, the same
    values as the three layers applied in turn. The backward pass needs only y: the gradient of
    the product is :math:`s \, g \odot [y > 0]`, and s is applied to the (out, in) weight
    gradient rather than to the (N, out) one; the mask is freed after the forward pass. The
    children (and so the ``state_dict`` keys ``0.weight``, ``0.bias``) are those of the plain
    ``Sequential``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        linear, _, dropout = self
        if dropout.p == 1.0 and dropout.training:
            return torch.nn.functional.linear(x, linear.weight, linear.bias) * 0.0
        scale = 1.0 / (1.0 - dropout.p) if dropout.training else 1.0
        return _MaskedLinearReLU.apply(x, linear.weight, linear.bias, dropout, scale)


class _MaskedLinearReLU(torch.autograd.Function):
    """:class:`NodeEncoder`'s ``relu((x W^T + b) * mask)``, in the autocast dtype when autocast
    is on (as ``torch.nn.functional.linear`` would be), with its backward from the output."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, dropout: FastDropout, scale: float
    ) -> Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        x, w = x.to(dtype), weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            y = torch.nn.functional.linear(x, w, b)
        keep = dropout.keep_mask(y)
        if keep is not None:
            y.mul_(keep)
            del keep
        y.relu_()
        ctx.save_for_backward(x, w, y)
        ctx.scale = scale
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, w, y = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad.to(y.dtype), y, 0)  # g * [y > 0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ w).mul_(ctx.scale)
        if ctx.needs_input_grad[1]:
            grad_w = (g.t() @ x).to(ctx.dtypes[0]).mul_(ctx.scale)
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(0, dtype=ctx.dtypes[1]).mul_(ctx.scale)
        return grad_x, grad_w, grad_b, None, None


def encoder_block(in_dim: int, out_dim: int, dropout: float) -> NodeEncoder:
    """Per-modality node encoder: ``Linear(in_dim -> out_dim) -> ReLU -> Dropout(dropout)``
    (:class:`NodeEncoder`)."""
    return NodeEncoder(torch.nn.Linear(in_dim, out_dim), torch.nn.ReLU(), FastDropout(dropout))


class GatedAttention(torch.nn.Module):
    r"""Gated attention net (Ilse et al. 2018; CLAM): ``Linear(tanh(a(h)) * sigmoid(b(h)))``.

    Args:
        in_dim: node feature dimension L.
        hidden_dim: attention dimension D.
        out_dim: number of outputs per node (1 for ABMIL scores; 2 for SPARRA's mu, log sigma^2).
        dropout: dropout after each branch.

    Shapes: (N, L) -> (N, out_dim).

    Both branches are one (N, L) x (L, 2D) product with the two weight matrices stacked, and
    the two dropout masks are multiplied once into the gated product:
    :math:`(\tanh(a) \odot m_a) \odot (\sigma(b) \odot m_b) = (\tanh(a) \odot \sigma(b))
    \odot (m_a \odot m_b)`, the masks drawn in the order of the two branches. The parameters
    (and ``state_dict`` keys) are those of the two ``Sequential`` branches.
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
        a_linear, b_linear = self.tanh_branch[0], self.sigmoid_branch[0]
        both = torch.nn.functional.linear(
            h,
            torch.cat([a_linear.weight, b_linear.weight]),
            torch.cat([a_linear.bias, b_linear.bias]),
        )
        a, b = both.split(a_linear.out_features, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)
        keep_a = self.tanh_branch[2].keep_mask(gated)
        keep_b = self.sigmoid_branch[2].keep_mask(gated)
        if keep_a is not None and keep_b is not None:
            gated = gated.mul_(keep_a.mul_(keep_b))
        return self.out(gated)
