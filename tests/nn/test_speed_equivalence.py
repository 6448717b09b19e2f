"""The exact speed-ups of the aggregators against the computations they replace.

Each reference below is the earlier implementation written out (the plain ``Sequential``
layers, the two separate attention branches, PyG's ``propagation_matrix`` rebuilt from the
batch's edges, PyTorch's own sparse-product backward); the fast path must give the same
outputs and gradients to float tolerance, with the same random draws.
"""

from __future__ import annotations

import copy
import gc

import pytest
import torch
from torch_geometric.data import Batch, Data

from radiograph.nn import build_aggregator, collate_subjects
from radiograph.nn.base import FastDropout, GatedAttention, encoder_block
from radiograph.nn.batch import SubjectBatch
from radiograph.nn.sparra import (
    Propagation,
    PropagationCache,
    propagate,
    propagation_matrix,
)

MODALITIES = ("radiology", "pathology")
DIMS = {"radiology": 6, "pathology": 10}
SMALL = {"n_e": 12, "n_h": 8, "attention_dim": 8}


def _directed_graph(num_nodes: int, seed: int) -> Data:
    """Random one-way edges (so P is not symmetric), one repeated edge, one self loop and an
    isolated last node."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes - 1, (3 * num_nodes,), generator=gen)
    dst = torch.randint(0, num_nodes - 1, (3 * num_nodes,), generator=gen)
    edge_index = torch.cat([torch.stack([src, dst]), torch.tensor([[0, 2], [1, 2]])], dim=1)
    x = torch.randn(num_nodes, 4, generator=gen, dtype=torch.float64)
    return Data(x=x, edge_index=edge_index)


def _subjects(random_graph):
    return [
        {"radiology": random_graph(23, 6, 1), "pathology": random_graph(57, 10, 2)},
        {"pathology": random_graph(41, 10, 3)},
        {"radiology": random_graph(17, 6, 4)},
        {"radiology": random_graph(30, 6, 5), "pathology": random_graph(64, 10, 6)},
    ]


@pytest.mark.parametrize("conv", ["gcn", "sage"])
def test_cached_batch_matrix_equals_one_built_from_the_batch(conv):
    """The block-diagonal matrix assembled from per-graph cached parts equals
    ``propagation_matrix`` of the whole batch, and its transpose equals P^T (directed graphs:
    P^T != P)."""
    graphs = [_directed_graph(n, seed) for seed, n in enumerate((9, 31, 16))]
    batch = Batch.from_data_list(graphs)
    cache = PropagationCache(conv)
    step = cache.batch_step([g.edge_index for g in graphs], batch, torch.float64)
    expected = propagation_matrix(batch.edge_index, batch.num_nodes, conv, torch.float64)
    torch.testing.assert_close(step.matrix.to_dense(), expected.to_dense())
    torch.testing.assert_close(step.transpose.to_dense(), expected.to_dense().T)
    assert not torch.equal(expected.to_dense(), expected.to_dense().T)


def test_symmetric_matrix_is_stored_once():
    """GCN on an undirected graph: P = P^T, kept as one tensor."""
    graph = _directed_graph(20, 0)
    undirected = torch.cat([graph.edge_index, graph.edge_index.flip(0)], dim=1)
    cache = PropagationCache("gcn")
    step = cache.batch_step(
        [undirected], Batch.from_data_list([Data(x=graph.x, edge_index=undirected)]), torch.float64
    )
    assert step.transpose is step.matrix


def test_cache_hits_and_invalidation():
    """A second batch with the same graphs reuses the entries; an in-place change of a graph's
    edges rebuilds its entry; a freed edge tensor drops it; copies start empty."""
    graphs = [_directed_graph(n, seed) for seed, n in enumerate((12, 15))]
    batch = Batch.from_data_list(graphs)
    cache = PropagationCache("gcn")
    edges = [g.edge_index for g in graphs]
    first = cache.batch_step(edges, batch, torch.float64)
    entries = dict(cache._entries)
    cache.batch_step(edges, batch, torch.float64)
    assert len(cache) == 2 and all(cache._entries[k] is v for k, v in entries.items())

    edges[0][1, 0] = 5  # in place: the version counter moves, the entry is rebuilt
    changed = Batch.from_data_list([Data(x=graphs[0].x, edge_index=edges[0]), graphs[1]])
    second = cache.batch_step(edges, changed, torch.float64)
    expected = propagation_matrix(changed.edge_index, changed.num_nodes, "gcn", torch.float64)
    torch.testing.assert_close(second.matrix.to_dense(), expected.to_dense())
    assert not torch.equal(first.matrix.to_dense(), second.matrix.to_dense())

    assert len(copy.deepcopy(cache)) == 0
    del graphs, edges, batch, changed, entries
    gc.collect()
    assert len(cache) == 0


def test_sparse_product_backward_with_given_transpose():
    """The custom backward (P^T given) equals autograd through ``torch.sparse.mm``."""
    graph = _directed_graph(40, 3)
    matrix = propagation_matrix(graph.edge_index, 40, "gcn", torch.float64)
    h = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(40, 5, dtype=torch.float64)
    (expected,) = torch.autograd.grad((torch.sparse.mm(matrix, h) * weight).sum(), h)
    step = Propagation(matrix, matrix.t().to_sparse_csr())
    (got,) = torch.autograd.grad((propagate(step, h) * weight).sum(), h)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("training", [True, False])
def test_fused_encoder_equals_the_three_layers(p, training):
    """``NodeEncoder`` (one product, mask and ReLU in place, backward from the output) equals
    Linear -> ReLU -> FastDropout applied in turn: values, the random draws and the gradients."""
    torch.manual_seed(0)
    fused = encoder_block(7, 16, p).double().train(training)
    x = torch.randn(300, 7, dtype=torch.float64, requires_grad=True)
    results = []
    for forward in (torch.nn.Sequential.forward, type(fused).forward):
        torch.manual_seed(1)
        out = forward(fused, x)
        upstream = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        grads = torch.autograd.grad((out * upstream).sum(), [x, *fused.parameters()])
        results.append((out, *grads))
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("training", [True, False])
def test_fused_gated_attention_equals_two_branches(training):
    """One stacked product for both branches and one combined dropout mask equal the two
    branches applied separately (masks drawn in the same order), values and gradients."""
    torch.manual_seed(0)
    attention = GatedAttention(12, 9, 2, 0.25).double().train(training)
    h = torch.randn(200, 12, dtype=torch.float64, requires_grad=True)

    def two_branches(module, x):
        return module.out(module.tanh_branch(x) * module.sigmoid_branch(x))

    results = []
    for forward in (two_branches, GatedAttention.forward):
        torch.manual_seed(1)
        out = forward(attention, h)
        grads = torch.autograd.grad(out.square().sum(), [h, *attention.parameters()])
        results.append((out, *grads))
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected)


def test_standardisation_equals_float64_hand_computation(random_graph):
    """The in-place standardisation of ``_prepare`` gives (x - mean) / std."""
    model = build_aggregator("mean", {"pathology": 10})
    mean, std = torch.randn(10), torch.rand(10) + 0.5
    model.set_node_scaling({"pathology": (mean, std)})
    graph = random_graph(50, 10, 0, torch.float32)
    batch = collate_subjects([{"pathology": graph}], ["pathology"])
    scaled = model._prepare(batch)
    expected = (graph.x.double() - mean.double()) / std.double()
    torch.testing.assert_close(
        scaled.graphs["pathology"].x.double(), expected, rtol=1e-6, atol=1e-6
    )
    assert torch.equal(batch.graphs["pathology"].x, graph.x)  # the caller's batch is untouched
    assert scaled.source_edges == batch.source_edges


@pytest.mark.parametrize("conv", ["gcn", "sage"])
@pytest.mark.parametrize("training", [True, False])
def test_sparra_with_cached_matrices_equals_rebuilt_ones(random_graph, conv, training):
    """The whole model, a batch carrying its graphs' own edges (cached propagation) against the
    same batch without them (matrices rebuilt from the batch's edges at every pass, as
    before): the same prediction, subject vectors, importances, auxiliary terms and gradients,
    with the same dropout and sampling draws; twice, the second pass from the cache."""
    torch.manual_seed(0)
    model = build_aggregator("sparra", DIMS, conv=conv, **SMALL).double().train(training)
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    rebuilt = SubjectBatch(batch.num_subjects, batch.graphs, batch.subject_of_graph)
    for _ in range(2):
        results = []
        for candidate in (rebuilt, batch):
            torch.manual_seed(1)
            out = model(candidate)
            loss = out.prediction.square().sum() + out.aux_loss
            grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
            results.append((out, grads))
        (expected, expected_grads), (got, got_grads) = results
        torch.testing.assert_close(got.prediction, expected.prediction)
        torch.testing.assert_close(got.embedding, expected.embedding)
        torch.testing.assert_close(got.aux_loss, expected.aux_loss)
        for m in expected.importance:
            torch.testing.assert_close(got.importance[m], expected.importance[m])
        for a, b in zip(got_grads, expected_grads):
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a, b)
    assert len(model.propagation) == 6  # one entry per graph (3 radiology, 3 pathology)


def test_fast_dropout_keep_mask_matches_forward():
    """``keep_mask`` is the mask ``forward`` multiplies by (same draws)."""
    layer = FastDropout(0.3).train()
    x = torch.randn(64, 32)
    torch.manual_seed(5)
    out = layer(x)
    torch.manual_seed(5)
    torch.testing.assert_close(out, x * layer.keep_mask(x))
    assert layer.eval().keep_mask(x) is None


def test_host_memory_reuse_keeps_freed_blocks_for_the_next_allocation():
    """Inside ``host_memory_reuse`` a freed 200 MB block is handed out again without new page
    faults; outside, glibc maps it afresh (the kernel faults its pages in again)."""
    import resource

    import numpy as np

    from radiograph.devices import host_memory_reuse

    def faults_of_second_allocation() -> int:
        block = np.ones(25_000_000)
        del block
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(25_000_000)
        del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    with host_memory_reuse() as active:
        reused = faults_of_second_allocation()
    if not active:
        pytest.skip("not glibc: host_memory_reuse changes nothing")
    assert reused < 0.2 * max(faults_of_second_allocation(), 1)


def test_training_with_and_without_host_memory_reuse_is_identical(random_graph):
    """``fit`` and ``predict`` run inside ``host_memory_reuse``; their undecorated bodies give
    the same trained weights and predictions, bit for bit."""
    from radiograph.train.config import TrainConfig
    from radiograph.train.data import SubjectRecord
    from radiograph.train.trainer import fit, predict

    records = [
        SubjectRecord(
            f"S{i}",
            f"S{i}",
            float(i + 1),
            i % 2,
            None,
            {"pathology": random_graph(30 + i, 10, i, torch.float32)},
        )
        for i in range(6)
    ]
    config = TrainConfig(graphs_dir=".", manifest=".", out_dir=".", epochs=2, batch_size=3)
    outputs = []
    for train, run in ((fit, predict), (fit.__wrapped__, predict.__wrapped__)):
        torch.manual_seed(0)
        model = build_aggregator("sparra", {"pathology": 10}, **SMALL)
        train(
            model,
            records,
            config,
            device=torch.device("cpu"),
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        outputs.append(run(model, records, 3, torch.device("cpu")).prediction)
    assert (outputs[0] == outputs[1]).all()
