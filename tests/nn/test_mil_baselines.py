"""ABMIL and Mean pooling against direct computations; subject collation; the aggregator factory."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from radiograph.nn import AbmilConfig, build_aggregator, collate_subjects

MODALITIES = ("radiology", "pathology")
DIMS = {"radiology": 6, "pathology": 10}


def _subjects(random_graph):
    return [
        {"radiology": random_graph(23, 6, 1), "pathology": random_graph(57, 10, 2)},
        {"pathology": random_graph(41, 10, 3)},
        {"radiology": random_graph(17, 6, 4)},
    ]


def test_collate_groups_by_modality(random_graph):
    subjects = _subjects(random_graph)
    batch = collate_subjects(subjects, MODALITIES)
    assert batch.num_subjects == 3
    assert batch.subject_of_graph["radiology"].tolist() == [0, 2]
    assert batch.subject_of_graph["pathology"].tolist() == [0, 1]
    assert batch.graphs["pathology"].ptr.tolist() == [0, 57, 98]
    torch.testing.assert_close(batch.graphs["radiology"].x[23:], subjects[2]["radiology"].x)
    assert batch.graphs["radiology"].pos.shape == (40, 2)
    moved = batch.to("cpu")
    assert moved.subject_of_graph["pathology"].tolist() == [0, 1]


def test_collate_errors_name_the_problem(random_graph):
    with pytest.raises(ValueError, match="none of the modalities"):
        collate_subjects([{"radiology": None}], MODALITIES)
    with pytest.raises(ValueError, match="unknown modalities"):
        collate_subjects([{"ct": random_graph(5, 6, 0)}], MODALITIES)
    bad = random_graph(5, 6, 0)
    bad.subject_id = "TCGA-01"
    with pytest.raises(ValueError, match="feature dimensions"):
        collate_subjects(
            [{"radiology": random_graph(5, 6, 1)}, {"radiology": random_graph(5, 7, 2)}], MODALITIES
        )
    bad.edge_index = torch.tensor([[0], [9]])
    with pytest.raises(ValueError, match="TCGA-01.*edge_index"):
        collate_subjects([{"radiology": bad}], MODALITIES)


def test_mean_pool_equals_torch_mean(random_graph):
    subjects = _subjects(random_graph)
    model = build_aggregator("mean", DIMS).double()
    batch = collate_subjects(subjects, MODALITIES)
    out = model(batch)
    assert out.embedding.shape == (3, 16)
    for index, subject in enumerate(subjects):
        expected = torch.cat(
            [
                subject[m].x.mean(0) if m in subject else torch.zeros(DIMS[m], dtype=torch.float64)
                for m in MODALITIES
            ]
        )
        torch.testing.assert_close(out.embedding[index], expected)
    torch.testing.assert_close(out.prediction, model.head(out.embedding)[:, 0])
    torch.testing.assert_close(
        out.importance["pathology"][:57], torch.full((57,), 1 / 57, dtype=torch.float64)
    )
    assert out.aux_loss.item() == 0.0


def test_abmil_attention_is_a_softmax_per_graph(random_graph):
    """Attention sums to 1 per graph and equals the softmax of the gated scores; the subject vector
    is the attention-weighted sum of the encoded nodes."""
    torch.manual_seed(0)
    model = build_aggregator("abmil", DIMS, n_h=8, attention_dim=5).double().eval()
    subjects = _subjects(random_graph)
    batch = collate_subjects(subjects, MODALITIES)
    with torch.no_grad():
        out = model(batch)
        for index, subject in enumerate(subjects):
            for position, m in enumerate(MODALITIES):
                block = out.embedding[index, 8 * position : 8 * (position + 1)]
                if m not in subject:
                    assert torch.equal(block, torch.zeros(8, dtype=torch.float64))
                    continue
                h = model.encoders[m](subject[m].x)
                attn = torch.softmax(model.attention[m](h)[:, 0], dim=0)
                graph = int((batch.subject_of_graph[m] == index).nonzero())
                ptr = batch.graphs[m].ptr
                got = out.importance[m][ptr[graph] : ptr[graph + 1]]
                torch.testing.assert_close(got, attn)
                assert got.sum().item() == pytest.approx(1.0)
                torch.testing.assert_close(block, (attn[:, None] * h).sum(0))
    assert out.prediction.shape == (3,) and out.aux_loss.item() == 0.0


def test_classification_heads(random_graph):
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    for name in ("abmil", "mean"):
        model = build_aggregator(name, DIMS, task="classification", num_classes=4).double()
        assert model(batch).prediction.shape == (3, 4)


def test_factory_rejects_bad_names_options_and_inputs(random_graph):
    with pytest.raises(ValueError, match="unknown aggregator"):
        build_aggregator("transmil", DIMS)
    with pytest.raises(ValueError, match="unknown options"):
        build_aggregator("abmil", DIMS, n_e=5)
    with pytest.raises(ValueError, match="task"):
        build_aggregator("mean", DIMS, task="regression")
    assert build_aggregator("abmil", DIMS, dropout=0.1).config == AbmilConfig(dropout=0.1)
    model = build_aggregator("mean", {"radiology": 5})
    batch = collate_subjects(
        [{"radiology": Data(x=torch.randn(4, 6), edge_index=torch.empty(2, 0, dtype=torch.long))}],
        ["radiology"],
    )
    with pytest.raises(ValueError, match="radiology.*6 features"):
        model(batch)
