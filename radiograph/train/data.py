"""A cohort of subjects with their graphs and targets, read from the graph store and manifest.

Graphs live in ``graphs_dir/<modality>/<subject_id>.pt`` (:func:`radiograph.io.graphs.save_graph`).
A subject without a file for a modality lacks that modality; a subject without a file for any
of the requested modalities is dropped with a warning (the splits still hold it, so every model
of a study shares one ``splits.json``). An unreadable graph file (truncated, not a graph, no
valid ``x``) counts as missing, with a warning that names the file and the problem.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from radiograph.io.graphs import load_graph
from radiograph.manifest import Manifest, load_manifest
from radiograph.runner import terminal_only


@dataclass(frozen=True)
class SubjectRecord:
    """One subject ready for training.

    Attributes:
        subject_id, patient_id: from the manifest.
        time: follow-up time (manifest unit, > 0).
        event: 1 = event observed, 0 = censored.
        label: class index into :attr:`GraphCohort.classes` (classification), else None.
        graphs: modality -> graph, only the modalities the subject has.
    """

    subject_id: str
    patient_id: str
    time: float
    event: int
    label: int | None
    graphs: dict[str, Data]


@dataclass(frozen=True)
class GraphCohort:
    """Subjects with graphs for at least one of ``modalities``.

    Attributes:
        modalities: the requested modalities, in subject-vector block order.
        in_dims: modality -> node feature dimension.
        records: subject id -> :class:`SubjectRecord`.
        classes: class names in index order (classification), else None.
        dropped: subjects of the manifest without any graph (or, for classification, label).
    """

    modalities: tuple[str, ...]
    in_dims: dict[str, int]
    records: dict[str, SubjectRecord]
    classes: tuple[str, ...] | None
    dropped: tuple[str, ...]

    def select(self, subject_ids: Sequence[str]) -> list[SubjectRecord]:
        """The records of ``subject_ids`` that the cohort holds, in the given order."""
        return [self.records[s] for s in subject_ids if s in self.records]


def node_scaling(
    records: Sequence[SubjectRecord], modalities: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-modality mean and standard deviation of the node features of ``records``.

    Every node of every given subject counts once (pooled over subjects), computed in float64.
    Fit it on a fold's training subjects only; :meth:`radiograph.nn.Aggregator.set_node_scaling`
    then applies it to every subject.

    Args:
        records: the subjects to fit on (e.g. a fold's training subjects).
        modalities: modalities to fit; one without any node among ``records`` is left out.

    Returns:
        modality -> ``(mean, std)``, each (d_m,) float32; std is the population standard
        deviation, replaced by 1 for a constant feature (so it is only centred).
    """
    scaling = {}
    for modality in modalities:
        xs = [r.graphs[modality].x.double() for r in records if modality in r.graphs]
        if not xs:
            continue
        x = torch.cat(xs)
        mean = x.mean(dim=0)
        std = x.std(dim=0, correction=0)
        std = torch.where(std > 1e-12 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
        scaling[modality] = (mean.float(), std.float())
    return scaling


def class_names(labels: set[str]) -> tuple[str, ...]:
    """Labels in a stable order: numerically when all are integers, else alphabetically."""
    try:
        return tuple(sorted(labels, key=int))
    except ValueError:
        return tuple(sorted(labels))


def _check_graph(data: Data, path: Path) -> int:
    """Feature dimension of a graph file's ``x``; ValueError naming the file and field."""
    x = getattr(data, "x", None)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.size(0) == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{path}: field 'x' must be a non-empty (N, d) tensor, got {shape}")
    return int(x.size(1))


def load_graph_cohort(
    graphs_dir: str | os.PathLike,
    manifest: str | os.PathLike | Manifest,
    modalities: Sequence[str],
    task: str = "survival",
    progress: bool = True,
) -> GraphCohort:
    """Load the graphs of every manifest subject for ``modalities``.

    Args:
        graphs_dir: folder with ``<modality>/<subject_id>.pt`` files.
        manifest: manifest CSV path (image paths are not checked) or a loaded manifest.
        modalities: e.g. ``("radiology", "pathology")``.
        task: ``"survival"`` or ``"classification"`` (then the manifest's ``label`` is needed).
        progress: show a progress bar over the subjects.

    Returns:
        A :class:`GraphCohort`; dropped subjects are listed and reported with a warning.

    Raises:
        ValueError: a modality with no readable graph file at all, feature dimensions that
            differ between subjects (naming the files), or a classification task with fewer
            than two classes.
    """
    graphs_dir = Path(graphs_dir)
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, check_files=False)
    modalities = tuple(modalities)
    classes = None
    if task == "classification":
        classes = class_names({s.label for s in manifest.subjects if s.label is not None})
        if len(classes) < 2:
            raise ValueError(
                f"{manifest.path}: classification needs at least two classes in column 'label', "
                f"found {list(classes)}"
            )
    in_dims: dict[str, int] = {}
    first_file: dict[str, Path] = {}
    records: dict[str, SubjectRecord] = {}
    dropped: list[str] = []
    unreadable: list[str] = []
    for subject in tqdm(
        manifest.subjects,
        desc="loading graphs",
        unit="subject",
        leave=False,
        disable=terminal_only(progress),
    ):
        graphs: dict[str, Data] = {}
        for modality in modalities:
            path = graphs_dir / modality / f"{subject.subject_id}.pt"
            if not path.exists():
                continue
            try:
                data = load_graph(path)
                dim = _check_graph(data, path)
            except ValueError as err:
                unreadable.append(str(err))
                continue
            if in_dims.setdefault(modality, dim) != dim:
                raise ValueError(
                    f"{path}: field 'x' has {dim} features but {first_file[modality]} has "
                    f"{in_dims[modality]} (modality {modality!r})"
                )
            first_file.setdefault(modality, path)
            graphs[modality] = data
        label = None
        if classes is not None and subject.label is not None:
            label = classes.index(subject.label)
        if not graphs or (classes is not None and label is None):
            dropped.append(subject.subject_id)
            continue
        records[subject.subject_id] = SubjectRecord(
            subject_id=subject.subject_id,
            patient_id=subject.patient_id,
            time=float(subject.time),
            event=int(subject.event),
            label=label,
            graphs=graphs,
        )
    absent = [m for m in modalities if m not in in_dims]
    if absent:
        raise ValueError(
            f"no graph files for modalities {absent} under {graphs_dir} "
            f"(expected {graphs_dir}/<modality>/<subject_id>.pt)"
        )
    if unreadable:
        warnings.warn(
            f"{len(unreadable)} graph file(s) unreadable, their subjects go without that "
            "modality: " + "; ".join(unreadable),
            stacklevel=2,
        )
    if dropped:
        reason = "no graph for " + "/".join(modalities)
        if classes is not None:
            reason += " or no label"
        warnings.warn(
            f"{len(dropped)} of {len(manifest.subjects)} subjects dropped ({reason}): "
            f"{', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}",
            stacklevel=2,
        )
    return GraphCohort(
        modalities=modalities,
        in_dims={m: in_dims[m] for m in modalities},
        records=records,
        classes=classes,
        dropped=tuple(dropped),
    )
