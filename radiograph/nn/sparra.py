r"""SPARRA: sparsity-informed probabilistic spatial aggregation (Gao et al., MICCAI).

The method, its presets and what the measurements show: ``docs/sparra.md``.

Per subject and modality m with node features :math:`X_m` (N_m, d_m) and graph edges E_m:

1. encoder :math:`H_m = \mathrm{Dropout}(\mathrm{ReLU}(X_m W_m))` (N_m, n_e);
2. pooling module: two layers of ``GCNConv -> TopKPooling(ratio_m)``, keeping
   :math:`\lceil k \lceil k N_m \rceil \rceil` nodes with features :math:`F_m` (M_m, n_h) and the
   composed permutation ``perm1[perm2]`` that maps them back to the original nodes;
3-4. a gated attention net (shared by the modalities) gives per pooled node
   :math:`\mu_s` and :math:`\log \sigma_s^2` of :math:`q(s|X) = \mathcal{N}(\mu_s, \sigma_s^2)`;
5. Gamma posterior of the precision (Eq. 4, :func:`~radiograph.nn.losses.gamma_posterior`);
6. weights :math:`w = \hat v = v^{-1} / \|v^{-1}\|_1` with :math:`v^{-1} = \beta_v / \alpha_v`,
   normalised per subject per modality (paper) or over all modalities of a subject (reference);
7. subject vector :math:`x = [\sum_i w_i F_{r,i}, \sum_i w_i F_{p,i}]` (missing modality: zeros);
8. linear head on x (risk or class logits);
9. decoder: the sample s (one value per pooled node) -> ``Linear(1, n_h) -> ReLU -> GCNConv(n_h,
   n_e)`` on the pooled graph -> ``ReLU`` -> ``Linear(n_e, d_m)``, reconstructing
   :math:`X_m[\mathrm{perm1}[\mathrm{perm2}]]`;
10. auxiliary loss (Eq. 8 without the task term):
    :math:`\tau_{vi} (\mathrm{KL} + \tau_{ae} \mathrm{MSE})`;
11. node importance: w scattered back through both permutations (0 for dropped nodes).

Sampling: in training mode :math:`s = \mu_s + \sigma_s \varepsilon` (reparameterisation, so the
decoder's gradient reaches the encoder; the reference's ``.sample()`` cut it); in evaluation mode
:math:`s = \mu_s`, so inference is deterministic. s feeds only the decoder: the prediction and the
importances depend on :math:`\mu_s, \sigma_s` through Eq. 4, never on the noise.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv, SAGEConv, TopKPooling
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.pool.select import SelectOutput, SelectTopK
from torch_geometric.nn.pool.select.topk import topk
from torch_geometric.utils import scatter, to_torch_csr_tensor

from radiograph.nn.base import Aggregator, AggregatorOutput, GatedAttention, Task, encoder_block
from radiograph.nn.batch import SubjectBatch
from radiograph.nn.losses import gamma_posterior, reconstruction_mse, sparsity_kl

LOGVAR_BOUND = 20.0
"""log sigma^2 is clamped to [-20, 20] (as in the reference) so exp() stays finite."""

REFERENCE_POOL_RATIO = {"radiology": 0.7, "pathology": 0.2}
"""Pool ratios of the reference implementation (the paper uses 0.2 for both)."""

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"pool_ratio": 0.2, "weight_norm": "modality"},
    "reference": {"pool_ratio": REFERENCE_POOL_RATIO, "weight_norm": "joint"},
}
"""Model options of each preset (``docs/sparra.md``, "Presets"): the paper's (section 2 and
3.1: k = 0.2, weights normalised per modality) and those of the public code that produced its
numbers (shangqigao/RadioPath, ``m_gnn_survival_analysis.py``). The reference preset's training
settings (Breslow ties, Cox loss as the batch mean, last incomplete batch dropped, weight
decay 0) are applied by ``radiograph.train`` (``SPARRA_REFERENCE_TRAINING``)."""


@dataclass
class SparraConfig:
    """SPARRA hyper-parameters; defaults follow the paper, the reference values are options.

    Attributes:
        preset: ``"paper"`` (default) or ``"reference"``: fills ``pool_ratio`` and
            ``weight_norm`` from :data:`PRESETS` where they are not given; a value given
            explicitly wins over the preset.
        n_e: encoder output size (reference 256).
        n_h: pooling-module hidden size; the subject vector has ``n_modalities * n_h`` entries.
        pool_ratio: TopK ratio k of both pooling layers, one float for all modalities (paper 0.2)
            or modality -> ratio (reference: ``REFERENCE_POOL_RATIO``); None: the preset's.
        weight_norm: ``"modality"`` (paper: weights sum to 1 per subject per modality) or
            ``"joint"`` (reference: to 1 over all modalities of a subject); None: the
            preset's.
        conv: graph convolution of the pooling module and the decoder, ``"gcn"`` (paper) or
            ``"sage"``.
        dropout: encoder dropout (paper 0.5).
        attention_dim: hidden size of the gated attention net (reference 256).
        attention_dropout: dropout inside the gated attention net (reference 0.25).
        tau_vi: weight of the variational terms in Eq. 8 (reference 0.1).
        tau_ae: decoder precision tau of Eq. 6, weight of the MSE (paper 1e-3).
        alpha0, beta0, mu0, lambda0: Normal-Gamma prior (paper 2, 1e-2, 0, 1).
    """

    preset: Literal["paper", "reference"] = "paper"
    n_e: int = 256
    n_h: int = 128
    pool_ratio: float | dict[str, float] | None = None
    weight_norm: Literal["modality", "joint"] | None = None
    conv: Literal["gcn", "sage"] = "gcn"
    dropout: float = 0.5
    attention_dim: int = 256
    attention_dropout: float = 0.25
    tau_vi: float = 0.1
    tau_ae: float = 1e-3
    alpha0: float = 2.0
    beta0: float = 1e-2
    mu0: float = 0.0
    lambda0: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {self.preset!r}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, dict(value) if isinstance(value, dict) else value)
        if self.weight_norm not in ("modality", "joint"):
            raise ValueError(f"weight_norm must be 'modality' or 'joint', got {self.weight_norm!r}")
        if self.conv not in ("gcn", "sage"):
            raise ValueError(f"conv must be 'gcn' or 'sage', got {self.conv!r}")
        ratios = (
            self.pool_ratio.values() if isinstance(self.pool_ratio, dict) else [self.pool_ratio]
        )
        for ratio in ratios:
            if not 0.0 < float(ratio) <= 1.0:
                raise ValueError(f"pool_ratio must lie in (0, 1], got {self.pool_ratio!r}")
        if self.alpha0 <= 0 or self.beta0 <= 0 or self.lambda0 <= 0:
            raise ValueError("alpha0, beta0 and lambda0 must be positive")

    def ratio_for(self, modality: str) -> float:
        """TopK ratio of ``modality``."""
        if isinstance(self.pool_ratio, dict):
            if modality not in self.pool_ratio:
                raise ValueError(
                    f"pool_ratio has no entry for modality {modality!r}: {self.pool_ratio}"
                )
            return float(self.pool_ratio[modality])
        return float(self.pool_ratio)


def _conv(kind: str, in_dim: int, out_dim: int) -> torch.nn.Module:
    """A PyG convolution that takes its neighbourhood step as :func:`propagation_matrix`."""
    if kind == "gcn":
        return GCNConv(in_dim, out_dim, normalize=False)
    return SAGEConv(in_dim, out_dim, aggr="sum")


def propagation_matrix(
    edge_index: Tensor, num_nodes: int, conv: str, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""The neighbourhood step of ``conv`` as a sparse (N, N) CSR matrix P (rows: targets).

    ``"gcn"``: :math:`P = \hat D^{-1/2} (A + I) \hat D^{-1/2}` with self loops added where missing
    and degrees counted on the targets (PyG's ``gcn_norm``, the normalisation ``GCNConv`` applies
    to an ``edge_index``); ``"sage"``: :math:`P_{ij} = 1 / \deg_{in}(i)` for each edge
    j -> i, the mean over in-neighbours (``SAGEConv``'s default aggregation). Repeated edges count
    as often as they occur, as in message passing.

    The convolutions of this module get P instead of ``edge_index``, so PyG runs one sparse-dense
    product (``torch.sparse.mm``) rather than gathering an (E, n) message per edge and scattering
    it back: the same sums, several times faster on graphs of ~10k nodes.

    Args:
        edge_index: (2, E) source and target node of each edge.
        num_nodes: N.
        conv: ``"gcn"`` or ``"sage"``.
        dtype: dtype of the values (that of the features it multiplies).

    Returns:
        (N, N) ``torch.sparse_csr`` tensor on ``edge_index``'s device.
    """
    if conv == "gcn":
        edge_index, weight = gcn_norm(edge_index, None, num_nodes, add_self_loops=True, dtype=dtype)
    else:
        degree = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device)
        degree.index_add_(0, edge_index[1], torch.ones_like(edge_index[1], dtype=dtype))
        weight = 1.0 / degree[edge_index[1]]
    with warnings.catch_warnings():
        # PyTorch warns once per process that sparse CSR support is "beta" and that invariant
        # checks are off; the indices here come from coalescing, so they hold.
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(edge_index.flip(0), weight, size=num_nodes)


class Propagation(NamedTuple):
    """A convolution's neighbourhood step: the (N, N) CSR :func:`propagation_matrix` P and, when
    known in advance, its transpose (the backward pass multiplies by P^T; without it PyTorch
    transposes P, a sort of its non-zeros, at every backward pass)."""

    matrix: Tensor
    transpose: Tensor | None = None


class PropagationCache:
    """The first convolution's :func:`propagation_matrix` of each graph and its transpose,
    built once per graph.

    A batch's matrices are block-diagonal in its graphs, so they are assembled from the graphs'
    cached CSR parts (row pointers shifted by the non-zeros before, columns by the nodes
    before): concatenations instead of PyG's normalisation and a sort of every edge of the
    batch at every forward pass, and of the transpose's sort at every backward pass. The values
    are those of :func:`propagation_matrix` on the whole batch (the graphs share no node, so
    every degree is the same); within a row the columns may come in another order, which
    changes sums by rounding only. A symmetric P (GCN on an undirected graph) is its own
    transpose and is stored once.

    Entries are keyed by the caller's ``edge_index`` tensor of each graph
    (:attr:`~radiograph.nn.batch.SubjectBatch.source_edges`), its in-place version counter and
    node count, and the dtype and device asked for; an entry is dropped when its tensor is freed.
    Copying or pickling the cache gives an empty one.

    Args:
        conv: ``"gcn"`` or ``"sage"`` (see :func:`propagation_matrix`).
    """

    def __init__(self, conv: str) -> None:
        self.conv = conv
        self._entries: dict[tuple[int, torch.dtype, torch.device], _CachedGraph] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> PropagationCache:
        return PropagationCache(self.conv)

    def __getstate__(self) -> dict:
        return {"conv": self.conv}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["conv"])

    def batch_step(
        self, source_edges: Sequence[Tensor] | None, graphs: Batch, dtype: torch.dtype
    ) -> Propagation:
        """The :class:`Propagation` of the batched ``graphs`` (N nodes in all).

        Args:
            source_edges: the caller's (2, E_g) ``edge_index`` of each graph, in batch order;
                None (or a count other than the batch's graphs) builds the matrix from
                ``graphs.edge_index`` without the cache (and without a transpose).
            graphs: the batch (``ptr``, ``edge_index``, device).
            dtype: dtype of the values.
        """
        device = graphs.edge_index.device
        if source_edges is None or len(source_edges) != graphs.num_graphs:
            return Propagation(
                propagation_matrix(graphs.edge_index, graphs.num_nodes, self.conv, dtype)
            )
        sizes = graphs.ptr.diff().tolist()
        parts = [self._graph(e, n, dtype, device) for e, n in zip(source_edges, sizes)]
        matrix = _block_diagonal([p.matrix for p in parts], graphs.ptr)
        if all(p.matrix is p.transpose for p in parts):
            return Propagation(matrix, matrix)
        return Propagation(matrix, _block_diagonal([p.transpose for p in parts], graphs.ptr))

    def _graph(
        self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype, device: torch.device
    ) -> _CachedGraph:
        key = (id(edge_index), dtype, device)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.source() is edge_index
            and entry.version == edge_index._version
            and entry.num_nodes == num_nodes
        ):
            return entry
        matrix = propagation_matrix(edge_index.to(device).long(), num_nodes, self.conv, dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            transpose = matrix.t().to_sparse_csr()
        if all(torch.equal(a, b) for a, b in zip(_csr_parts(matrix), _csr_parts(transpose))):
            transpose = matrix
        entries = self._entries
        entry = _CachedGraph(
            source=weakref.ref(edge_index, lambda _: entries.pop(key, None)),
            version=edge_index._version,
            num_nodes=num_nodes,
            matrix=matrix,
            transpose=transpose,
        )
        entries[key] = entry
        return entry


class _CachedGraph(NamedTuple):
    """One graph's matrices in :class:`PropagationCache`."""

    source: weakref.ref
    version: int
    num_nodes: int
    matrix: Tensor
    transpose: Tensor


def _csr_parts(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return matrix.crow_indices(), matrix.col_indices(), matrix.values()


def _block_diagonal(blocks: Sequence[Tensor], ptr: Tensor) -> Tensor:
    """The CSR matrix with the square CSR ``blocks`` on its diagonal; block g starts at row and
    column ``ptr[g]`` (``ptr``: (G + 1,) cumulative block sizes)."""
    nnz = torch.tensor([0] + [b.values().numel() for b in blocks], device=ptr.device).cumsum(0)
    crow = torch.cat([b.crow_indices()[:-1] + nnz[g] for g, b in enumerate(blocks)] + [nnz[-1:]])
    col = torch.cat([b.col_indices() + ptr[g] for g, b in enumerate(blocks)])
    values = torch.cat([b.values() for b in blocks])
    size = int(ptr[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, (size, size))


class _SparseProduct(torch.autograd.Function):
    """P h for a constant sparse P, with the backward's P^T given rather than derived."""

    @staticmethod
    def forward(ctx: Any, matrix: Tensor, transpose: Tensor, h: Tensor) -> Tensor:
        ctx.transpose = transpose
        return torch.sparse.mm(matrix, h)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, torch.sparse.mm(ctx.transpose, grad)


def sparse_dtype(dtype: torch.dtype) -> torch.dtype:
    """dtype of a propagation matrix for features of ``dtype``: float32 for the reduced
    precisions of autocast (PyTorch's CPU sparse products have no bfloat16 or float16 kernel,
    and the neighbourhood sums stay as accurate as in float32)."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def propagate(step: Propagation, h: Tensor) -> Tensor:
    """(N, n) -> (N, n): the neighbourhood sums P h (``torch.sparse.mm``), differentiable in h;
    h is cast to P's dtype (:func:`sparse_dtype`)."""
    h = h.to(step.matrix.dtype)
    with torch.autocast(h.device.type, enabled=False):  # autocast would cast P to bf16 / fp16
        if step.transpose is None:
            return torch.sparse.mm(step.matrix, h)
        return _SparseProduct.apply(step.matrix, step.transpose, h)


def convolve(conv: torch.nn.Module, h: Tensor, step: Propagation) -> Tensor:
    """``conv`` (a :func:`_conv` layer) applied to (N, n_in) features with its neighbourhood
    step given as a :class:`Propagation`: PyG's own order of operations, GCN
    ``P (h W^T) + b`` and SAGE ``lin_l(P h) + lin_r(h)``, with :func:`propagate` for P."""
    if isinstance(conv, GCNConv):
        return propagate(step, conv.lin(h)) + conv.bias
    return conv.lin_l(propagate(step, h)) + conv.lin_r(h)


class Pooled(NamedTuple):
    """Output of :class:`PoolingModule` for the graphs of one modality.

    Attributes:
        x: (M, n_h) features of the kept nodes, grouped by graph.
        edge_index: (2, E') edges among the kept nodes.
        batch: (M,) graph index of each kept node (non-decreasing).
        perm: (M,) index of each kept node among the module's input nodes (``perm1[perm2]``).
    """

    x: Tensor
    edge_index: Tensor
    batch: Tensor
    perm: Tensor


class _SelectTopKMatvec(SelectTopK):
    """PyG's ``SelectTopK`` (tanh scores, no ``min_score``) with the projection as one
    matrix-vector product: ``x @ p`` instead of PyG's ``(x * p).sum(-1)``, which writes an (N, n)
    temporary forward and backward (0.5 s of a 2.5 s SPARRA step on 32 graphs of 12k nodes)."""

    def forward(self, x: Tensor, batch: Tensor | None = None) -> SelectOutput:
        """(N, n) node features, (N,) graph index -> PyG's ``SelectOutput``."""
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
        score = self.act((x @ self.weight[0]) / self.weight.norm(p=2, dim=-1))
        node_index = topk(score, self.ratio, batch)
        return SelectOutput(
            node_index=node_index,
            num_nodes=x.size(0),
            cluster_index=torch.arange(node_index.size(0), device=x.device),
            num_clusters=node_index.size(0),
            weight=score[node_index],
        )


def _topk_pooling(n_h: int, ratio: float) -> TopKPooling:
    """PyG's ``TopKPooling(n_h, ratio)`` scoring with :class:`_SelectTopKMatvec` (same
    parameters and state-dict keys)."""
    pool = TopKPooling(n_h, ratio=ratio)
    select = _SelectTopKMatvec(n_h, ratio)
    select.load_state_dict(pool.select.state_dict())
    pool.select = select
    return pool


class PoolingModule(torch.nn.Module):
    """Two layers of ``conv(n -> n_h) -> TopKPooling(n_h, ratio)`` (docs/sparra.md, step 2).

    PyG's TopKPooling scores nodes by ``tanh(x p / |p|)``, keeps the ``ceil(ratio * N)`` best of
    each graph and multiplies their features by the score; its ``perm`` indexes its input nodes,
    so the kept nodes of the second layer are the input nodes ``perm1[perm2]``. The convolutions
    take the :func:`propagation_matrix` of the current graph (:func:`convolve`), TopK the
    ``edge_index`` it filters.
    """

    def __init__(self, in_dim: int, n_h: int, ratio: float, conv: str) -> None:
        super().__init__()
        self.conv = conv
        self.conv1 = _conv(conv, in_dim, n_h)
        self.pool1 = _topk_pooling(n_h, ratio)
        self.conv2 = _conv(conv, n_h, n_h)
        self.pool2 = _topk_pooling(n_h, ratio)

    def forward(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, step: Propagation | None = None
    ) -> Pooled:
        """(N, in_dim) node features of a batch of graphs -> :class:`Pooled`; ``step``: the
        :class:`Propagation` of ``edge_index`` when the caller has it (cached)."""
        dtype = sparse_dtype(x.dtype)
        if step is None:
            step = Propagation(propagation_matrix(edge_index, x.size(0), self.conv, dtype))
        h = convolve(self.conv1, x, step)
        h, edge_index, _, batch, perm1, _ = self.pool1(h, edge_index, batch=batch)
        step = Propagation(propagation_matrix(edge_index, h.size(0), self.conv, dtype))
        h = convolve(self.conv2, h, step)
        h, edge_index, _, batch, perm2, _ = self.pool2(h, edge_index, batch=batch)
        return Pooled(h, edge_index, batch, perm1[perm2])


class Sparra(Aggregator):
    """SPARRA aggregator; see the module docstring for the model and docs/sparra.md for the
    spec, the presets and what the measurements show.

    ``aux_terms`` holds ``"kl"`` (mean over every pooled node of the batch) and ``"mse"`` (sum
    over the present modalities of the per-modality reconstruction MSE); ``aux_loss`` is
    ``tau_vi * (kl + tau_ae * mse)``. The terms stay attached to the autograd graph (log them
    with ``.item()``).
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        config: SparraConfig | None = None,
        task: Task = "survival",
        num_classes: int = 2,
    ) -> None:
        super().__init__(in_dims, task, num_classes)
        self.config = cfg = config or SparraConfig()
        self.encoders = torch.nn.ModuleDict(
            {m: encoder_block(d, cfg.n_e, cfg.dropout) for m, d in self.in_dims.items()}
        )
        self.pools = torch.nn.ModuleDict(
            {
                m: PoolingModule(cfg.n_e, cfg.n_h, cfg.ratio_for(m), cfg.conv)
                for m in self.modalities
            }
        )
        self.attention = GatedAttention(cfg.n_h, cfg.attention_dim, 2, cfg.attention_dropout)
        self.decoder_in = torch.nn.Linear(1, cfg.n_h)
        self.decoder_conv = _conv(cfg.conv, cfg.n_h, cfg.n_e)
        self.decoder_out = torch.nn.ModuleDict(
            {m: torch.nn.Linear(cfg.n_e, d) for m, d in self.in_dims.items()}
        )
        self._make_head(len(self.modalities) * cfg.n_h)
        self.propagation = PropagationCache(cfg.conv)

    def _decode(self, modality: str, s: Tensor, edge_index: Tensor) -> Tensor:
        """Step 9: (M,) samples -> (M, d_m) reconstructed input features of the pooled nodes."""
        h = torch.relu(self.decoder_in(s[:, None]))
        matrix = propagation_matrix(edge_index, h.size(0), self.config.conv, sparse_dtype(h.dtype))
        h = torch.relu(convolve(self.decoder_conv, h, Propagation(matrix)))
        return self.decoder_out[modality](h)

    def forward(self, batch: SubjectBatch) -> AggregatorOutput:
        """Aggregate a batch; see :class:`~radiograph.nn.base.AggregatorOutput`."""
        batch = self._prepare(batch)
        cfg = self.config
        dtype = self.head.weight.dtype
        present = [m for m in self.modalities if m in batch.graphs]

        pooled: dict[str, Pooled] = {}
        mu: dict[str, Tensor] = {}
        logvar: dict[str, Tensor] = {}
        v_inv: dict[str, Tensor] = {}
        beta_v: dict[str, Tensor] = {}
        alpha_v: dict[str, Tensor] = {}
        for m in present:
            graphs = batch.graphs[m]
            h = self.encoders[m](graphs.x.to(dtype))
            step = self.propagation.batch_step(
                batch.source_edges.get(m), graphs, sparse_dtype(h.dtype)
            )
            pooled[m] = self.pools[m](h, graphs.edge_index, graphs.batch, step)
            out = self.attention(pooled[m].x)
            mu[m] = out[:, 0]
            logvar[m] = out[:, 1].clamp(-LOGVAR_BOUND, LOGVAR_BOUND)
            alpha_v[m], beta_v[m] = gamma_posterior(
                mu[m], logvar[m], cfg.alpha0, cfg.beta0, cfg.mu0, cfg.lambda0
            )
            v_inv[m] = beta_v[m] / alpha_v[m]

        weights = self._normalise(batch, pooled, v_inv)

        blocks, importance = [], {}
        mse = self.head.weight.new_zeros(())
        for m in self.modalities:
            block = self.head.weight.new_zeros(batch.num_subjects, cfg.n_h)
            if m in pooled:
                p, w = pooled[m], weights[m]
                subject = batch.subject_of_graph[m][p.batch]
                block = scatter(
                    w[:, None] * p.x, subject, dim=0, dim_size=batch.num_subjects, reduce="sum"
                )
                s = (
                    mu[m] + torch.exp(0.5 * logvar[m]) * torch.randn_like(mu[m])
                    if self.training
                    else mu[m]
                )
                target = batch.graphs[m].x[p.perm].to(dtype)
                mse = mse + reconstruction_mse(self._decode(m, s, p.edge_index), target)
                importance[m] = torch.zeros(
                    batch.graphs[m].num_nodes, dtype=dtype, device=w.device
                ).index_copy(0, p.perm, w.detach())
            blocks.append(block)
        embedding = torch.cat(blocks, dim=1)

        kl = sparsity_kl(
            torch.cat([mu[m] for m in present]),
            torch.cat([logvar[m] for m in present]),
            torch.cat([alpha_v[m] for m in present]),
            torch.cat([beta_v[m] for m in present]),
            cfg.mu0,
            cfg.lambda0,
        )
        return AggregatorOutput(
            prediction=self._predict(embedding),
            embedding=embedding,
            aux_loss=cfg.tau_vi * (kl + cfg.tau_ae * mse),
            aux_terms={"kl": kl, "mse": mse},
            importance=importance,
        )

    def _normalise(
        self, batch: SubjectBatch, pooled: dict[str, Pooled], v_inv: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Step 6: w = v_inv / sum(v_inv) per graph ("modality") or per subject ("joint")."""
        if self.config.weight_norm == "modality":
            weights = {}
            for m, v in v_inv.items():
                graph = pooled[m].batch
                total = scatter(v, graph, dim=0, dim_size=batch.graphs[m].num_graphs, reduce="sum")
                weights[m] = v / total[graph]
            return weights
        subjects = {m: batch.subject_of_graph[m][pooled[m].batch] for m in v_inv}
        total = sum(
            scatter(v, subjects[m], dim=0, dim_size=batch.num_subjects, reduce="sum")
            for m, v in v_inv.items()
        )
        return {m: v / total[subjects[m]] for m, v in v_inv.items()}
