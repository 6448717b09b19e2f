"""SPARRA against a manual re-computation of docs/sparra.md steps 1-11, and its structural
properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from radiograph.nn import SparraConfig, build_aggregator, collate_subjects
from radiograph.nn.losses import reconstruction_mse, sparsity_kl

MODALITIES = ("radiology", "pathology")
DIMS = {"radiology": 6, "pathology": 10}
SMALL = {"n_e": 12, "n_h": 8, "attention_dim": 8}


def _model(seed: int = 0, **options):
    torch.manual_seed(seed)
    return build_aggregator("sparra", DIMS, **{**SMALL, **options}).double().eval()


def _subjects(random_graph):
    """Four subjects: both modalities, pathology only, radiology only, both."""
    return [
        {"radiology": random_graph(23, 6, 1), "pathology": random_graph(57, 10, 2)},
        {"pathology": random_graph(41, 10, 3)},
        {"radiology": random_graph(17, 6, 4), "pathology": None},
        {"radiology": random_graph(30, 6, 5), "pathology": random_graph(64, 10, 6)},
    ]


def _topk(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    k = math.ceil(ratio * scores.numel())
    return torch.tensor(np.argsort(-scores.detach().numpy(), kind="stable")[:k])


def _keep_edges(edge_index: torch.Tensor, keep: torch.Tensor, num_nodes: int) -> torch.Tensor:
    new_id = torch.full((num_nodes,), -1)
    new_id[keep] = torch.arange(keep.numel())
    mask = (new_id[edge_index[0]] >= 0) & (new_id[edge_index[1]] >= 0)
    return new_id[edge_index[:, mask]]


def _gcn(conv, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """GCNConv by hand, dense: D^-1/2 (A + I) D^-1/2 (h W^T) + b, A[target, source] = 1 per edge,
    a self loop added where a node has none, degrees as row sums."""
    n = h.size(0)
    a = torch.zeros(n, n, dtype=h.dtype)
    a.index_put_(
        (edge_index[1], edge_index[0]),
        torch.ones(edge_index.size(1), dtype=h.dtype),
        accumulate=True,
    )
    a[torch.arange(n), torch.arange(n)] = torch.where(a.diagonal() > 0, a.diagonal(), 1.0)
    scale = a.sum(1).rsqrt()
    return (scale[:, None] * a * scale[None, :]) @ (h @ conv.lin.weight.T) + conv.bias


def _manual_modality(model, modality: str, data: Data) -> dict:
    """Steps 1-5 and 9 for one graph written out by hand, TopK selection by numpy argsort."""
    cfg = model.config
    pool = model.pools[modality]
    n = data.num_nodes
    h = model.encoders[modality](data.x)
    h1 = _gcn(pool.conv1, h, data.edge_index)
    p1 = pool.pool1.select.weight[0]
    s1 = torch.tanh(h1 @ p1 / p1.norm())
    keep1 = _topk(s1, cfg.ratio_for(modality))
    x1 = h1[keep1] * s1[keep1, None]
    e1 = _keep_edges(data.edge_index, keep1, n)
    h2 = _gcn(pool.conv2, x1, e1)
    p2 = pool.pool2.select.weight[0]
    s2 = torch.tanh(h2 @ p2 / p2.norm())
    keep2 = _topk(s2, cfg.ratio_for(modality))
    pooled = h2[keep2] * s2[keep2, None]
    e2 = _keep_edges(e1, keep2, keep1.numel())
    out = model.attention(pooled)
    mu, logvar = out[:, 0], out[:, 1]
    beta = 2 * cfg.beta0 + cfg.lambda0 * (mu - cfg.mu0) ** 2 + cfg.lambda0 * torch.exp(logvar)
    alpha = torch.full_like(beta, 2 * cfg.alpha0 + 1)
    original = keep1[keep2]
    recon = model.decoder_out[modality](
        torch.relu(_gcn(model.decoder_conv, torch.relu(model.decoder_in(mu[:, None])), e2))
    )
    return {
        "pooled": pooled,
        "v_inv": beta / alpha,
        "mu": mu,
        "logvar": logvar,
        "alpha": alpha,
        "beta": beta,
        "original": original,
        "mse": reconstruction_mse(recon, data.x[original]),
    }


@pytest.mark.parametrize("weight_norm", ["modality", "joint"])
def test_matches_manual_recomputation(random_graph, weight_norm):
    """Prediction, subject vector, KL, MSE and every node importance equal the hand computation.

    The importance check puts w on ``keep1[keep2]`` found by argsort of the TopK scores, so a wrong
    composition of the two TopK permutations moves the mass to other nodes and fails.
    """
    model = _model(weight_norm=weight_norm, pool_ratio={"radiology": 0.7, "pathology": 0.2})
    subjects = _subjects(random_graph)
    batch = collate_subjects(subjects, MODALITIES)
    with torch.no_grad():
        out = model(batch)
        for index, subject in enumerate(subjects):
            parts = {m: _manual_modality(model, m, g) for m, g in subject.items() if g is not None}
            joint_total = sum(p["v_inv"].sum() for p in parts.values())
            blocks = []
            for m in MODALITIES:
                if m not in parts:
                    blocks.append(torch.zeros(SMALL["n_h"], dtype=torch.float64))
                    continue
                p = parts[m]
                w = p["v_inv"] / (p["v_inv"].sum() if weight_norm == "modality" else joint_total)
                blocks.append((w[:, None] * p["pooled"]).sum(0))
                expected = torch.zeros(subject[m].num_nodes, dtype=torch.float64)
                expected[p["original"]] = w
                graph = int((batch.subject_of_graph[m] == index).nonzero())
                ptr = batch.graphs[m].ptr
                torch.testing.assert_close(out.importance[m][ptr[graph] : ptr[graph + 1]], expected)
            embedding = torch.cat(blocks)
            torch.testing.assert_close(out.embedding[index], embedding)
            torch.testing.assert_close(out.prediction[index], model.head(embedding)[0])

        # KL and MSE of a one-subject batch against the hand computation.
        both = subjects[0]
        parts = {m: _manual_modality(model, m, both[m]) for m in MODALITIES}
        single = model(collate_subjects([both], MODALITIES))
        cat = {
            k: torch.cat([parts[m][k] for m in MODALITIES])
            for k in ("mu", "logvar", "alpha", "beta")
        }
        kl = sparsity_kl(
            cat["mu"],
            cat["logvar"],
            cat["alpha"],
            cat["beta"],
            model.config.mu0,
            model.config.lambda0,
        )
        torch.testing.assert_close(single.aux_terms["kl"], kl)
        torch.testing.assert_close(
            single.aux_terms["mse"], parts["radiology"]["mse"] + parts["pathology"]["mse"]
        )


def test_kept_nodes_are_the_planted_ones():
    """With identity encoder/convolutions and TopK projections on feature 0, TopK keeps exactly the
    ceil(k * ceil(k * N)) nodes with the largest feature 0, wherever they sit in the node order."""
    d, n, ratio = 4, 20, 0.5
    torch.manual_seed(0)
    model = (
        build_aggregator(
            "sparra", {"pathology": d}, n_e=d, n_h=d, attention_dim=4, pool_ratio=ratio
        )
        .double()
        .eval()
    )
    eye = torch.eye(d, dtype=torch.float64)
    with torch.no_grad():
        model.encoders["pathology"][0].weight.copy_(eye)
        model.encoders["pathology"][0].bias.zero_()
        pool = model.pools["pathology"]
        for conv, topk in ((pool.conv1, pool.pool1), (pool.conv2, pool.pool2)):
            conv.lin.weight.copy_(eye)
            conv.bias.zero_()
            topk.select.weight.copy_(eye[:1])
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(n, d, generator=gen, dtype=torch.float64)
    graph = Data(x=x, edge_index=torch.empty(2, 0, dtype=torch.long))
    with torch.no_grad():
        importance = model(collate_subjects([{"pathology": graph}], ["pathology"])).importance[
            "pathology"
        ]
    n_kept = math.ceil(ratio * math.ceil(ratio * n))
    planted = set(torch.argsort(x[:, 0], descending=True)[:n_kept].tolist())
    assert set(torch.nonzero(importance).flatten().tolist()) == planted
    assert importance.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("weight_norm", ["modality", "joint"])
def test_importance_sums_to_one(random_graph, weight_norm):
    model = _model(weight_norm=weight_norm)
    subjects = _subjects(random_graph)
    batch = collate_subjects(subjects, MODALITIES)
    with torch.no_grad():
        out = model(batch)
    totals = torch.zeros(len(subjects), dtype=torch.float64)
    for m, importance in out.importance.items():
        graphs = batch.graphs[m]
        assert (importance >= 0).all()
        per_graph = scatter(
            importance, graphs.batch, dim=0, dim_size=graphs.num_graphs, reduce="sum"
        )
        kept = scatter(
            (importance > 0).long(), graphs.batch, dim=0, dim_size=graphs.num_graphs, reduce="sum"
        )
        sizes = graphs.ptr.diff()
        expected_kept = [math.ceil(0.2 * math.ceil(0.2 * int(s))) for s in sizes]
        assert kept.tolist() == expected_kept
        if weight_norm == "modality":
            torch.testing.assert_close(per_graph, torch.ones_like(per_graph))
        totals.index_add_(0, batch.subject_of_graph[m], per_graph)
    if weight_norm == "joint":
        torch.testing.assert_close(totals, torch.ones_like(totals))


@pytest.mark.parametrize("weight_norm", ["modality", "joint"])
def test_subject_outputs_do_not_depend_on_the_batch(random_graph, weight_norm):
    """Eval mode: a subject alone gets the same prediction, vector and importances as in a batch."""
    model = _model(weight_norm=weight_norm)
    subjects = _subjects(random_graph)
    batch = collate_subjects(subjects, MODALITIES)
    with torch.no_grad():
        together = model(batch)
        for index, subject in enumerate(subjects):
            alone = model(collate_subjects([subject], MODALITIES))
            torch.testing.assert_close(alone.prediction[0], together.prediction[index])
            torch.testing.assert_close(alone.embedding[0], together.embedding[index])
            for m, importance in alone.importance.items():
                graph = int((batch.subject_of_graph[m] == index).nonzero())
                ptr = batch.graphs[m].ptr
                torch.testing.assert_close(
                    importance, together.importance[m][ptr[graph] : ptr[graph + 1]]
                )


def test_missing_modality(random_graph):
    """A subject with one modality gets a finite prediction; the missing block is zeros."""
    model = _model()
    batch = collate_subjects([{"pathology": random_graph(40, 10, 9)}], MODALITIES)
    assert set(batch.graphs) == {"pathology"}
    with torch.no_grad():
        out = model(batch)
    assert set(out.importance) == {"pathology"}
    assert torch.isfinite(out.prediction).all() and out.prediction.shape == (1,)
    assert torch.equal(
        out.embedding[0, : SMALL["n_h"]], torch.zeros(SMALL["n_h"], dtype=torch.float64)
    )
    assert out.embedding[0, SMALL["n_h"] :].abs().sum() > 0
    assert torch.isfinite(out.aux_loss)


def test_decoder_gradient_reaches_encoder_through_the_sample(random_graph):
    """Train mode: the MSE alone back-propagates into log sigma^2 (only possible through the
    reparameterised sample) and into the node encoder. Eval mode uses s = mu: no log sigma^2
    gradient."""
    model = _model()
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    model.train()
    model(batch).aux_terms["mse"].backward()
    out_weight = model.attention.out.weight.grad
    assert out_weight is not None, "the decoder loss does not reach the attention net"
    assert out_weight[1].abs().sum() > 0, "no gradient to log sigma^2 through the sample"
    assert out_weight[0].abs().sum() > 0
    assert model.encoders["pathology"][0].weight.grad.abs().sum() > 0

    model.zero_grad()
    model.eval()
    model(batch).aux_terms["mse"].backward()
    assert model.attention.out.weight.grad[1].abs().sum() == 0
    assert model.attention.out.weight.grad[0].abs().sum() > 0


def test_aux_loss_weighting_and_classification_head(random_graph):
    model = _model(tau_vi=0.3, tau_ae=0.05)
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    with torch.no_grad():
        out = model(batch)
    expected = 0.3 * (out.aux_terms["kl"] + 0.05 * out.aux_terms["mse"])
    torch.testing.assert_close(out.aux_loss, expected)
    assert out.prediction.shape == (4,) and out.embedding.shape == (4, 2 * SMALL["n_h"])

    torch.manual_seed(0)
    classifier = build_aggregator(
        "sparra", DIMS, task="classification", num_classes=3, **SMALL
    ).double()
    assert classifier(batch).prediction.shape == (4, 3)


def test_config_validation():
    with pytest.raises(ValueError, match="weight_norm"):
        SparraConfig(weight_norm="global")
    with pytest.raises(ValueError, match="pool_ratio"):
        SparraConfig(pool_ratio=1.5)
    with pytest.raises(ValueError, match="no entry"):
        build_aggregator("sparra", DIMS, pool_ratio={"radiology": 0.7})


@pytest.mark.parametrize("conv", ["gcn", "sage"])
def test_propagation_matrix_equals_pyg_message_passing(random_graph, conv):
    """The convolutions fed :func:`propagation_matrix` equal PyG's own ``edge_index`` path
    (GCNConv's normalisation, SAGEConv's mean), values and input gradients, on a graph with
    repeated edges, two self loops and an isolated node."""
    from torch_geometric.nn import GCNConv, SAGEConv

    from radiograph.nn.sparra import _conv, propagation_matrix

    graph = random_graph(40, 5, 7)
    x = torch.cat([graph.x, torch.randn(1, 5, dtype=torch.float64)]).requires_grad_()
    edge_index = torch.cat([graph.edge_index, torch.tensor([[3, 8], [3, 8]])], dim=1)
    torch.manual_seed(0)
    reference = (GCNConv(5, 3) if conv == "gcn" else SAGEConv(5, 3)).double()
    ours = _conv(conv, 5, 3).double()
    ours.load_state_dict(reference.state_dict())
    expected = reference(x, edge_index)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    got = ours(x, propagation_matrix(edge_index, x.size(0), conv, torch.float64))
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)


def test_topk_pooling_equals_pyg(random_graph):
    """The matrix-vector scoring of SPARRA's TopK layers equals PyG's ``TopKPooling``: kept
    nodes, their features, the filtered edges, and the gradients of features and projection."""
    from torch_geometric.data import Batch
    from torch_geometric.nn import TopKPooling

    from radiograph.nn.sparra import _topk_pooling

    graphs = Batch.from_data_list([random_graph(37, 6, 1), random_graph(52, 6, 2)])
    torch.manual_seed(0)
    reference = TopKPooling(6, ratio=0.3).double()
    ours = _topk_pooling(6, 0.3).double()
    ours.load_state_dict(reference.state_dict())
    results = []
    for pool in (reference, ours):
        x = graphs.x.clone().requires_grad_()
        out, edge_index, _, batch, perm, score = pool(x, graphs.edge_index, batch=graphs.batch)
        grads = torch.autograd.grad((out.square().sum() + score.sum()), [x, pool.select.weight])
        results.append((out, edge_index, batch, perm, score, *grads))
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected)
