"""A batch of subjects, each with zero or one graph per modality.

The aggregators see one PyG :class:`~torch_geometric.data.Batch` per modality, holding only the
subjects that have that modality, and a map from each of those graphs back to its subject. A
subject lacking a modality is simply absent from that modality's batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Batch, Data


@dataclass
class SubjectBatch:
    """Graphs of ``num_subjects`` subjects, grouped by modality.

    Attributes:
        num_subjects: B, the number of subjects (rows of every model output).
        graphs: modality -> batched graphs of the subjects that have this modality, in subject
            order; a modality no subject has is absent. Each graph keeps ``x`` (N, d_m),
            ``edge_index`` (2, E) and ``pos`` (N, 2|3) when the input had it; graph g's nodes are
            ``graphs[m].ptr[g]:graphs[m].ptr[g + 1]``.
        subject_of_graph: modality -> (G_m,) long, the subject index in [0, B) of each graph.
        source_edges: modality -> the caller's own ``edge_index`` tensor of each graph, in batch
            order (left on the caller's device): the keys under which a model caches what it
            derives from a graph's edges once per graph (SPARRA's propagation matrices). Empty
            for a batch assembled by hand; a model then derives it from ``graphs`` each time.
    """

    num_subjects: int
    graphs: dict[str, Batch]
    subject_of_graph: dict[str, torch.Tensor]
    source_edges: dict[str, tuple[torch.Tensor, ...]] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SubjectBatch:
        """Return a copy with every tensor on ``device`` (``non_blocking``: asynchronous copies
        from pinned memory, see :meth:`pin_memory`); ``source_edges`` stay where they are."""
        return SubjectBatch(
            num_subjects=self.num_subjects,
            graphs={m: g.to(device, non_blocking=non_blocking) for m, g in self.graphs.items()},
            subject_of_graph={
                m: s.to(device, non_blocking=non_blocking) for m, s in self.subject_of_graph.items()
            },
            source_edges=self.source_edges,
        )

    def pin_memory(self) -> SubjectBatch:
        """A copy in page-locked host memory, so that ``to("cuda", non_blocking=True)``
        overlaps the copy with computation; ``DataLoader(pin_memory=True)`` calls this."""
        return SubjectBatch(
            num_subjects=self.num_subjects,
            graphs={m: g.pin_memory() for m, g in self.graphs.items()},
            subject_of_graph={m: s.pin_memory() for m, s in self.subject_of_graph.items()},
            source_edges=self.source_edges,
        )


def _describe(data: Data, index: int) -> str:
    subject_id = getattr(data, "subject_id", None)
    return f"subject {subject_id!r} (item {index})" if subject_id is not None else f"item {index}"


def _lean_graph(data: Data, modality: str, index: int) -> Data:
    """Copy of ``data`` with only the fields the aggregators use, validated."""
    where = f"{_describe(data, index)}, modality {modality!r}"
    x = getattr(data, "x", None)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.size(0) == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{where}: field 'x' must be a non-empty (N, d) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{where}: field 'x' must be floating point, got {x.dtype}")
    edge_index = getattr(data, "edge_index", None)
    if edge_index is None:
        edge_index = torch.empty(2, 0, dtype=torch.long)
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"{where}: field 'edge_index' must have shape (2, E), got {tuple(edge_index.shape)}"
        )
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= x.size(0)):
        raise ValueError(f"{where}: field 'edge_index' refers to nodes outside [0, {x.size(0)})")
    lean = Data(x=x, edge_index=edge_index.long())
    pos = getattr(data, "pos", None)
    if pos is not None:
        if pos.size(0) != x.size(0):
            raise ValueError(f"{where}: field 'pos' has {pos.size(0)} rows but 'x' has {x.size(0)}")
        lean.pos = pos
    return lean


def collate_subjects(
    items: Sequence[Mapping[str, Data | None]], modalities: Sequence[str]
) -> SubjectBatch:
    """Group the per-subject graphs of ``items`` by modality.

    Args:
        items: one mapping per subject, modality -> graph (``None`` or a missing key when the
            subject lacks that modality). Keys must be among ``modalities``.
        modalities: the modalities the model knows, e.g. ``("radiology", "pathology")``.

    Returns:
        A :class:`SubjectBatch` with ``num_subjects = len(items)``. Only ``x``, ``edge_index`` and
        ``pos`` travel into the batch; other attributes stay with the caller's graphs.

    Raises:
        ValueError: an unknown modality key, a subject with no graph at all, a malformed graph,
            or feature dimensions that differ between subjects of one modality (each naming the
            subject and field).
    """
    if not items:
        raise ValueError("collate_subjects: no subjects given")
    known = set(modalities)
    per_modality: dict[str, list[tuple[int, Data]]] = {m: [] for m in modalities}
    for index, item in enumerate(items):
        unknown = set(item) - known
        if unknown:
            raise ValueError(
                f"item {index}: unknown modalities {sorted(unknown)}; expected {list(modalities)}"
            )
        present = [(m, item[m]) for m in modalities if item.get(m) is not None]
        if not present:
            raise ValueError(
                f"item {index}: the subject has none of the modalities {list(modalities)}"
            )
        for modality, data in present:
            per_modality[modality].append((index, _lean_graph(data, modality, index)))

    graphs: dict[str, Batch] = {}
    subject_of_graph: dict[str, torch.Tensor] = {}
    source_edges: dict[str, tuple[torch.Tensor, ...]] = {}
    for modality, entries in per_modality.items():
        if not entries:
            continue
        dims = {g.x.size(1) for _, g in entries}
        if len(dims) > 1:
            detail = ", ".join(f"item {i}: {g.x.size(1)}" for i, g in entries)
            raise ValueError(
                f"modality {modality!r}: field 'x' has different feature dimensions ({detail})"
            )
        if len({"pos" in g for _, g in entries}) > 1:
            raise ValueError(
                f"modality {modality!r}: field 'pos' is present for some subjects only"
            )
        graphs[modality] = Batch.from_data_list([g for _, g in entries])
        subject_of_graph[modality] = torch.tensor([i for i, _ in entries], dtype=torch.long)
        source_edges[modality] = tuple(g.edge_index for _, g in entries)
    return SubjectBatch(
        num_subjects=len(items),
        graphs=graphs,
        subject_of_graph=subject_of_graph,
        source_edges=source_edges,
    )
