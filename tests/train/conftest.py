"""A tiny two-modality planted cohort on disk for the training tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from radiograph.synth.planted_graphs import PlantedCohort, PlantedParams, make_planted_cohort

PATCHES_PER_NODE_SUBJECT = "S000"
"""Its pathology graph maps two patches to each node (``node_of_patch``, ``patch_coords``)."""


@dataclass
class TinyCohort:
    cohort: PlantedCohort
    graphs_dir: Path
    manifest: Path
    root: Path
    no_radiology: list[str]
    no_graph: str
    two_patches_per_node: str = PATCHES_PER_NODE_SUBJECT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyCohort:
    """30 subjects: pathology (40 nodes) for all, radiology (27 nodes) for ~70%; one subject
    lacking radiology also loses its pathology file, so it has no graph at all."""
    root = tmp_path_factory.mktemp("tiny")
    cohort = make_planted_cohort(
        PlantedParams(n_subjects=30, n_nodes=40, n_nodes_radiology=27, missing_radiology=0.3),
        seed=1,
    )
    graph = cohort.graphs["pathology"][0]
    graph.node_of_patch = torch.arange(graph.num_nodes).repeat_interleave(2)
    graph.num_patches = 2 * graph.num_nodes
    graph.patch_coords = graph.pos.repeat_interleave(2, dim=0)
    graphs_dir, manifest = cohort.write(root)
    no_radiology = [s for s, g in zip(cohort.subject_ids, cohort.graphs["radiology"]) if g is None]
    assert len(no_radiology) >= 2
    no_graph = no_radiology[-1]
    (graphs_dir / "pathology" / f"{no_graph}.pt").unlink()
    return TinyCohort(cohort, graphs_dir, manifest, root, no_radiology[:-1], no_graph)
