"""Mean pooling baseline: the subject vector is the per-modality mean of the input node features."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch_geometric.utils import scatter

from radiograph.nn.base import Aggregator, AggregatorOutput, Task
from radiograph.nn.batch import SubjectBatch


@dataclass
class MeanConfig:
    """No hyper-parameters: plain mean of the input features, then a linear head."""


class MeanPool(Aggregator):
    """Per-modality mean of the input node features, concatenated, then ``Linear`` head.

    ``embedding`` is (B, sum_m d_m): block m is the mean of ``X_m`` over the subject's nodes
    (zeros when the subject lacks modality m). Every node's importance is 1 / N of its graph.
    """

    def __init__(
        self,
        in_dims: Mapping[str, int],
        config: MeanConfig | None = None,
        task: Task = "survival",
        num_classes: int = 2,
    ) -> None:
        super().__init__(in_dims, task, num_classes)
        self.config = config or MeanConfig()
        self._make_head(sum(self.in_dims.values()))

    def forward(self, batch: SubjectBatch) -> AggregatorOutput:
        """Aggregate a batch; see :class:`~radiograph.nn.base.AggregatorOutput`."""
        batch = self._prepare(batch)
        blocks, importance = [], {}
        dtype = self.head.weight.dtype
        for modality in self.modalities:
            block = torch.zeros(
                batch.num_subjects,
                self.in_dims[modality],
                dtype=dtype,
                device=self.head.weight.device,
            )
            if modality in batch.graphs:
                graphs = batch.graphs[modality]
                means = scatter(
                    graphs.x.to(dtype),
                    graphs.batch,
                    dim=0,
                    dim_size=graphs.num_graphs,
                    reduce="mean",
                )
                block = block.index_copy(0, batch.subject_of_graph[modality], means)
                sizes = torch.bincount(graphs.batch, minlength=graphs.num_graphs)
                importance[modality] = (1.0 / sizes.to(dtype))[graphs.batch]
            blocks.append(block)
        embedding = torch.cat(blocks, dim=1)
        zero = embedding.new_zeros(())
        return AggregatorOutput(
            prediction=self._predict(embedding),
            embedding=embedding,
            aux_loss=zero,
            aux_terms={},
            importance=importance,
        )
