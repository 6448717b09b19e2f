"""ABMIL baseline: CLAM-style gated-attention multiple-instance pooling per modality."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch_geometric.utils import scatter, softmax

from radiograph.nn.base import Aggregator, AggregatorOutput, GatedAttention, Task, encoder_block
from radiograph.nn.batch import SubjectBatch


@dataclass
class AbmilConfig:
    """ABMIL hyper-parameters (reference implementation defaults).

    Attributes:
        n_h: node embedding size per modality (encoder output); the subject vector has
            ``n_modalities * n_h`` entries.
        attention_dim: hidden size D of the gated attention net.
        dropout: dropout of the encoder (paper 0.5).
        attention_dropout: dropout inside the gated attention net (reference 0.25).
    """

    n_h: int = 256
    attention_dim: int = 256
    dropout: float = 0.5
    attention_dropout: float = 0.25


class Abmil(Aggregator):
    r"""Gated attention MIL (Ilse et al. 2018, CLAM) applied to each modality separately.

    For modality m and graph g: :math:`h_i = \mathrm{Dropout}(\mathrm{ReLU}(W_m x_i))`,
    :math:`a_i = \operatorname{softmax}_{i \in g}(\mathrm{GatedAttention}_m(h_i))` and block m of
    the subject vector is :math:`\sum_{i \in g} a_i h_i`. The graph edges are not used. The
    importance of node i is :math:`a_i` (sums to 1 per graph).
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        config: AbmilConfig | None = None,
        task: Task = "survival",
        num_classes: int = 2,
    ) -> None:
        super().__init__(in_dims, task, num_classes)
        self.config = cfg = config or AbmilConfig()
        self.encoders = torch.nn.ModuleDict(
            {m: encoder_block(d, cfg.n_h, cfg.dropout) for m, d in self.in_dims.items()}
        )
        self.attention = torch.nn.ModuleDict(
            {
                m: GatedAttention(cfg.n_h, cfg.attention_dim, 1, cfg.attention_dropout)
                for m in self.modalities
            }
        )
        self._make_head(len(self.modalities) * cfg.n_h)

    def forward(self, batch: SubjectBatch) -> AggregatorOutput:
        """Aggregate a batch; see :class:`~radiograph.nn.base.AggregatorOutput`."""
        batch = self._prepare(batch)
        weight = self.head.weight
        blocks, importance = [], {}
        for modality in self.modalities:
            block = weight.new_zeros(batch.num_subjects, self.config.n_h)
            if modality in batch.graphs:
                graphs = batch.graphs[modality]
                h = self.encoders[modality](graphs.x.to(weight.dtype))
                attn = softmax(
                    self.attention[modality](h)[:, 0], graphs.batch, num_nodes=graphs.num_graphs
                )
                pooled = scatter(
                    attn[:, None] * h, graphs.batch, dim=0, dim_size=graphs.num_graphs, reduce="sum"
                )
                block = block.index_copy(0, batch.subject_of_graph[modality], pooled)
                importance[modality] = attn.detach()
            blocks.append(block)
        embedding = torch.cat(blocks, dim=1)
        return AggregatorOutput(
            prediction=self._predict(embedding),
            embedding=embedding,
            aux_loss=embedding.new_zeros(()),
            aux_terms={},
            importance=importance,
        )
