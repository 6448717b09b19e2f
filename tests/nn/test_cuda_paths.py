"""Every stage's CUDA path against its CPU path. The CUDA tests skip without a GPU and run in
``benchmarks/gpu_check.sh``; the last test runs the GPU check's study part on the CPU (its
fallback), where every difference must be exactly 0."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from radiograph.nn import build_aggregator, collate_subjects
from radiograph.nn.sparra import PropagationCache
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort
from radiograph.train.config import TrainConfig
from radiograph.train.data import SubjectRecord
from radiograph.train.trainer import aggregator_options, fit, predict

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
MODALITIES = ("radiology", "pathology")
DIMS = {"radiology": 6, "pathology": 10}
SMALL = {"n_e": 12, "n_h": 8, "attention_dim": 8}


def _subjects(random_graph):
    return [
        {"radiology": random_graph(23, 6, 1), "pathology": random_graph(57, 10, 2)},
        {"pathology": random_graph(41, 10, 3)},
        {"radiology": random_graph(30, 6, 5), "pathology": random_graph(64, 10, 6)},
    ]


def _records(n_subjects: int = 12) -> list[SubjectRecord]:
    cohort = make_planted_cohort(
        PlantedParams(
            n_subjects=n_subjects, n_nodes=120, n_nodes_radiology=40, dim=16, dim_radiology=8, knn=6
        ),
        seed=0,
    )
    return [
        SubjectRecord(
            s,
            s,
            float(cohort.time[i]),
            int(cohort.event[i]),
            None,
            {m: g[i] for m, g in cohort.graphs.items()},
        )
        for i, s in enumerate(cohort.subject_ids)
    ]


@needs_cuda
@pytest.mark.parametrize("name", ["sparra", "abmil", "mean"])
def test_forward_and_backward_on_cuda_equal_cpu(random_graph, name):
    """Float64, evaluation mode (deterministic: no dropout, SPARRA's s = mu): outputs,
    importances and parameter gradients on CUDA equal the CPU's."""
    torch.manual_seed(0)
    options = SMALL if name == "sparra" else {}
    model = build_aggregator(name, DIMS, **options).double().eval()
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    results = []
    for device in (torch.device("cpu"), CUDA):
        model = model.to(device)
        out = model(batch.to(device))
        grads = torch.autograd.grad(
            out.prediction.square().sum() + out.aux_loss,
            list(model.parameters()),
            allow_unused=True,
        )
        results.append((out, [None if g is None else g.cpu() for g in grads]))
    (cpu, cpu_grads), (gpu, gpu_grads) = results
    torch.testing.assert_close(gpu.prediction.cpu(), cpu.prediction)
    torch.testing.assert_close(gpu.embedding.cpu(), cpu.embedding)
    for m in cpu.importance:
        torch.testing.assert_close(gpu.importance[m].cpu(), cpu.importance[m])
    for a, b in zip(gpu_grads, cpu_grads):
        if b is not None:
            torch.testing.assert_close(a, b)


@needs_cuda
def test_cached_propagation_on_cuda(random_graph):
    """The per-graph cache builds its matrices on the batch's device; they equal the CPU's."""
    graphs = [random_graph(n, 4, seed) for seed, n in enumerate((15, 40, 22))]
    batch = Batch.from_data_list(graphs)
    edges = [g.edge_index for g in graphs]
    cpu = PropagationCache("gcn").batch_step(edges, batch, torch.float32)
    gpu = PropagationCache("gcn").batch_step(edges, batch.to(CUDA), torch.float32)
    assert gpu.matrix.device.type == "cuda"
    torch.testing.assert_close(gpu.matrix.to_dense().cpu(), cpu.matrix.to_dense())
    torch.testing.assert_close(gpu.transpose.to_dense().cpu(), cpu.transpose.to_dense())


@needs_cuda
def test_pinned_batch_copies_without_blocking(random_graph):
    batch = collate_subjects(_subjects(random_graph), MODALITIES)
    pinned = batch.pin_memory()
    assert all(g.x.is_pinned() and g.edge_index.is_pinned() for g in pinned.graphs.values())
    moved = pinned.to(CUDA, non_blocking=True)
    torch.cuda.synchronize()
    for m, graphs in batch.graphs.items():
        assert torch.equal(moved.graphs[m].x.cpu(), graphs.x)
    assert moved.source_edges is batch.source_edges


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_and_prediction_on_cuda(precision):
    """fit (pinned batches, autocast, fp16 loss scaling) and predict on CUDA: finite losses
    and outputs, float32 parameters; at fp32 Mean pooling (no randomness) trains to the CPU's
    predictions."""
    records = _records()
    config = TrainConfig(
        graphs_dir=".",
        manifest=".",
        out_dir=".",
        aggregator="sparra",
        modalities=("pathology", "radiology"),
        epochs=2,
        batch_size=6,
        precision=precision,
    )
    torch.manual_seed(0)
    model = build_aggregator(
        "sparra", {"pathology": 16, "radiology": 8}, **aggregator_options(config)
    ).to(CUDA)
    log = fit(
        model,
        records,
        config,
        device=CUDA,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert np.isfinite([row["loss"] for row in log]).all()
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())
    out = predict(model, records, 6, CUDA, precision)
    assert np.isfinite(out.prediction).all() and np.isfinite(out.embedding).all()
    if precision == "fp32":
        mean_config = dataclasses.replace(config, aggregator="mean")
        predictions = []
        for device in (torch.device("cpu"), CUDA):
            torch.manual_seed(0)
            mean = build_aggregator("mean", {"pathology": 16, "radiology": 8}).to(device)
            fit(
                mean,
                records,
                mean_config,
                device=device,
                generator=torch.Generator().manual_seed(0),
                progress=False,
            )
            predictions.append(predict(mean, records, 6, device).prediction)
        np.testing.assert_allclose(predictions[1], predictions[0], rtol=1e-4, atol=1e-5)


@needs_cuda
def test_pathology_extraction_on_cuda_matches_cpu(tmp_path):
    """A slide through ``extract_slide`` on CUDA (pinned tile batches, float16 autocast) gives
    the CPU's coordinates and features within float16 rounding."""
    from radiograph.io.features import read_features
    from radiograph.pathology.extract import ExtractionConfig, SlideJob, extract_slide

    sys.path.insert(0, str(BENCHMARKS))
    from gpu_check import _slides

    (path,) = _slides(tmp_path, 1, 1024)
    features = {}
    for device in ("cpu", "cuda"):
        config = ExtractionConfig(encoder="efficientnet-lite0", device=device, num_workers=0)
        job = SlideJob("S", path, tmp_path / f"{device}.h5", tmp_path / f"{device}.png")
        features[device] = read_features(extract_slide(job, config, progress=False))
    np.testing.assert_array_equal(features["cuda"].coords, features["cpu"].coords)
    a, b = features["cpu"].features, features["cuda"].features
    assert np.abs(a - b).max() <= 2e-2 * np.abs(a).max()


@needs_cuda
def test_3d_encoder_on_cuda_matches_cpu():
    """The 3D ViT's tokens on CUDA (pinned windows, float16 autocast) equal the CPU's within
    float16 rounding."""
    from radiograph.encoders.vit3d import build_volume_encoder
    from radiograph.radiology.deep_features import encode_volume

    encoder = build_volume_encoder("vit3d-tiny", random_weights=True)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 40, 80, 80)).astype(np.float32)
    region = np.zeros((40, 80, 80), dtype=bool)
    region[10:30, 20:60, 20:60] = True
    cpu = encode_volume(encoder, image, region, device="cpu")
    gpu = encode_volume(encoder.to(CUDA), image, region, device=CUDA)
    np.testing.assert_array_equal(gpu.boxes, cpu.boxes)
    assert np.abs(gpu.features - cpu.features).max() <= 2e-2 * np.abs(cpu.features).max()


def test_gpu_check_cpu_fallback(tmp_path, one_torch_thread):
    """``benchmarks/gpu_check.py``'s study part with no GPU: both runs on the CPU, so features,
    re-evaluated checkpoints and retrained models agree exactly."""
    sys.path.insert(0, str(BENCHMARKS))
    from gpu_check import small_study

    args = argparse.Namespace(
        subjects=4, folds=2, epochs=1, study_encoder="efficientnet-lite0", slide_size=(900, 600)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = small_study(tmp_path, torch.device("cpu"), args)
    assert result["features"] == {"pathology": 0.0, "radiology": 0.0}
    assert (result["checkpoints"]["max_abs_diff"] < 1e-12).all()
    assert (result["trained"]["c_test_cpu"] == result["trained"]["c_test_device"]).all()
    assert set(result["seconds"].columns) == {"cpu", "device"}
