"""The contract every registered aggregator keeps (scikit-survival's ``test_common`` pattern):
each test runs over :data:`radiograph.nn.registry.AGGREGATORS`, so a new aggregator is checked
by adding its registry entry and nothing else.

The contract (:class:`radiograph.nn.base.AggregatorOutput`): risk (B,) or logits (B, C), a
(B, embedding_dim) subject vector whose blocks follow the modality order, a missing modality's
block zero; node importances non-negative and summing to 1 per subject per modality (SPARRA with
``weight_norm="joint"``: per subject over its modalities); a subject's outputs independent of
the other subjects of its batch (in evaluation mode); a checkpoint round-trip giving identical
outputs; a seed fixing the initialisation and the dropout draws.
"""

from __future__ import annotations

import pytest
import torch

from radiograph.nn import collate_subjects
from radiograph.nn.registry import AGGREGATORS, build_aggregator
from radiograph.train.trainer import load_fold_model

MODALITIES = ("radiology", "pathology")
DIMS = {"radiology": 6, "pathology": 10}
SMALL = {"sparra": {"n_e": 12, "n_h": 8, "attention_dim": 8}}
"""Smaller layers where an aggregator's paper defaults are large (a new entry runs at its
defaults)."""


def _model(
    name: str, *, seed: int = 0, task: str = "survival", num_classes: int = 2, **options
) -> torch.nn.Module:
    torch.manual_seed(seed)
    options = {**SMALL.get(name, {}), **options}
    return build_aggregator(name, DIMS, task, num_classes, **options).double()


def _subjects(random_graph) -> list[dict]:
    """Four subjects: both modalities, pathology only, radiology only, both again."""
    return [
        {"radiology": random_graph(23, 6, 1), "pathology": random_graph(57, 10, 2)},
        {"pathology": random_graph(41, 10, 3)},
        {"radiology": random_graph(17, 6, 4)},
        {"radiology": random_graph(30, 6, 5), "pathology": random_graph(35, 10, 6)},
    ]


def _importance_sums(out, batch) -> dict[str, torch.Tensor]:
    """modality -> (B,) sum of the node importances of each subject (0 where it lacks it)."""
    sums = {}
    for modality, values in out.importance.items():
        graphs = batch.graphs[modality]
        per_graph = torch.zeros(graphs.num_graphs, dtype=values.dtype).index_add_(
            0, graphs.batch, values
        )
        sums[modality] = torch.zeros(batch.num_subjects, dtype=values.dtype).index_add_(
            0, batch.subject_of_graph[modality], per_graph
        )
    return sums


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize("task, num_classes", [("survival", 2), ("classification", 3)])
def test_output_shapes(name, task, num_classes, random_graph):
    model = _model(name, task=task, num_classes=num_classes).eval()
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    out = model(batch)
    expected = (4,) if task == "survival" else (4, num_classes)
    assert out.prediction.shape == expected
    assert out.embedding.shape == (4, model.embedding_dim)
    assert model.modalities == MODALITIES
    assert out.aux_loss.shape == ()
    assert torch.isfinite(out.prediction).all() and torch.isfinite(out.embedding).all()
    for modality, values in out.importance.items():
        assert values.shape == (batch.graphs[modality].num_nodes,)
        assert not values.requires_grad


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_importances_are_non_negative_and_sum_to_one(name, mode, random_graph):
    model = _model(name).train(mode == "train")
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    out = model(batch)
    assert set(out.importance) == set(batch.graphs)
    for values in out.importance.values():
        assert (values >= 0).all()
    sums = _importance_sums(out, batch)
    has = {
        m: torch.zeros(4, dtype=torch.bool).index_fill_(0, batch.subject_of_graph[m], True)
        for m in batch.graphs
    }
    if getattr(model.config, "weight_norm", "modality") == "joint":
        total = sum(sums.values())
        torch.testing.assert_close(total, torch.ones_like(total))
    else:
        for modality, subject_sums in sums.items():
            present = subject_sums[has[modality]]
            torch.testing.assert_close(present, torch.ones_like(present))
    for modality, subject_sums in sums.items():
        assert (subject_sums[~has[modality]] == 0).all()


@pytest.mark.parametrize("name", AGGREGATORS)
def test_a_missing_modality_leaves_its_block_zero(name, random_graph):
    """Subject 1 has pathology only, subject 2 radiology only: the radiology block comes first
    (modality order), so subject 2's non-zero entries all precede subject 1's, and each is
    zero on the other's block."""
    model = _model(name).eval()
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    out = model(batch)
    pathology_only = out.embedding[1].nonzero().flatten()
    radiology_only = out.embedding[2].nonzero().flatten()
    assert len(pathology_only) > 0 and len(radiology_only) > 0
    assert radiology_only.max() < pathology_only.min()
    both = out.embedding[0].nonzero().flatten()
    assert both.min() <= radiology_only.max() and both.max() >= pathology_only.min()
    assert torch.isfinite(out.prediction[1:3]).all()


@pytest.mark.parametrize("name", AGGREGATORS)
def test_a_subjects_outputs_do_not_depend_on_its_batch(name, random_graph):
    """Permuting the subjects permutes the outputs, and a subject alone gets its batched
    outputs (evaluation mode)."""
    model = _model(name).eval()
    subjects = _subjects(random_graph)
    out = model(collate_subjects(subjects, MODALITIES))
    order = [2, 0, 3, 1]
    permuted = model(collate_subjects([subjects[i] for i in order], MODALITIES))
    torch.testing.assert_close(permuted.prediction, out.prediction[order])
    torch.testing.assert_close(permuted.embedding, out.embedding[order])
    alone = model(collate_subjects(subjects[1:2], MODALITIES))
    torch.testing.assert_close(alone.prediction, out.prediction[1:2])
    torch.testing.assert_close(alone.importance["pathology"], out.importance["pathology"][57:98])


@pytest.mark.parametrize("name", AGGREGATORS)
def test_a_checkpoint_round_trip_gives_identical_outputs(name, random_graph, tmp_path):
    """The checkpoint layout of :func:`radiograph.train.trainer.write_fold`, read back by
    :func:`~radiograph.train.trainer.load_fold_model`; node scaling travels with it."""
    model = _model(name, seed=3).float()
    gen = torch.Generator().manual_seed(7)
    model.set_node_scaling(
        {
            m: (torch.randn(d, generator=gen), torch.rand(d, generator=gen) + 0.5)
            for m, d in DIMS.items()
        }
    )
    options = SMALL.get(name, {})
    torch.save(
        {
            "state_dict": model.state_dict(),
            "aggregator": name,
            "options": options,
            "in_dims": DIMS,
            "task": "survival",
            "num_classes": 2,
        },
        tmp_path / "checkpoint.pt",
    )
    loaded = load_fold_model(tmp_path / "checkpoint.pt")
    assert not loaded.training
    subjects = [{m: _float(g) for m, g in s.items()} for s in _subjects(random_graph)]
    batch = collate_subjects(subjects, MODALITIES)
    expected, got = model.eval()(batch), loaded(batch)
    assert torch.equal(expected.prediction, got.prediction)
    assert torch.equal(expected.embedding, got.embedding)
    for modality in expected.importance:
        assert torch.equal(expected.importance[modality], got.importance[modality])


def _float(graph):
    graph = graph.clone()
    graph.x = graph.x.float()
    return graph


@pytest.mark.parametrize("name", AGGREGATORS)
def test_a_seed_fixes_initialisation_and_dropout(name, random_graph):
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    outputs = []
    for seed in (5, 5, 6):
        model = _model(name, seed=seed).train()
        torch.manual_seed(100 + seed)
        outputs.append(model(batch).prediction.detach())
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])
