"""``training.precision``: bf16 autocast against fp32 on a small case, and the settings.

What reduced precision does to each aggregator was measured on the case below (24 subjects x
(150 pathology 64-d + 50 radiology 48-d nodes), 3 epochs, lr 1e-3, batch 12, one thread) over
seeds 0-5; the thresholds sit outside those distributions. SPARRA's TopK keeps the nodes whose
score passes a rank cut, so rounding moves nodes near the cut in or out of the kept set and its
outputs are not a smooth function of the arithmetic: after training, bf16 and fp32 models differ
as two fp32 runs with other initial weights would. Its comparison is therefore the training
loss; the downstream C-index over seeds is measured in ``benchmarks/precision.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from radiograph.devices import autocast, check_precision, grad_scaler
from radiograph.nn import build_aggregator
from radiograph.synth.planted_graphs import PlantedParams, make_planted_cohort
from radiograph.train.config import ConfigError, TrainConfig
from radiograph.train.data import SubjectRecord, node_scaling
from radiograph.train.trainer import aggregator_options, fit, predict

CPU = torch.device("cpu")
DIMS = {"pathology": 64, "radiology": 48}
MODALITIES = tuple(DIMS)


def _records(seed: int) -> list[SubjectRecord]:
    cohort = make_planted_cohort(
        PlantedParams(
            n_subjects=24, n_nodes=150, n_nodes_radiology=50, dim=64, dim_radiology=48, knn=6
        ),
        seed=seed,
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


def compare_precisions(name: str, seed: int) -> dict[str, float]:
    """Train ``name`` from the same weights at fp32 and bf16 on the small case; return the
    relative change of the untrained model's predictions under bf16 (``forward``), the final
    training losses and the Spearman correlation and relative difference of the trained
    models' predictions."""
    records = _records(seed)
    config = TrainConfig(
        graphs_dir=".",
        manifest=".",
        out_dir=".",
        aggregator=name,
        modalities=MODALITIES,
        epochs=3,
        batch_size=12,
        lr=1e-3,
    )
    torch.manual_seed(seed)
    state = build_aggregator(name, DIMS, **aggregator_options(config)).state_dict()
    scaling = node_scaling(records, MODALITIES)

    def model() -> torch.nn.Module:
        fresh = build_aggregator(name, DIMS, **aggregator_options(config))
        fresh.load_state_dict(state)
        fresh.set_node_scaling(scaling)
        return fresh

    untrained = model()
    reference = predict(untrained, records, 12, CPU, "fp32").prediction
    reduced = predict(untrained, records, 12, CPU, "bf16").prediction
    out = {"forward": float(np.abs(reduced - reference).max() / np.abs(reference).max())}
    trained = {}
    for precision in ("fp32", "bf16"):
        candidate = model()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            log = fit(
                candidate,
                records,
                dataclasses.replace(config, precision=precision),
                device=CPU,
                generator=torch.Generator().manual_seed(seed),
                progress=False,
            )
        assert all(p.dtype == torch.float32 for p in candidate.parameters())
        out[f"loss_{precision}"] = log[-1]["loss"]
        trained[precision] = predict(candidate, records, 12, CPU, precision).prediction
    out["spearman"] = float(spearmanr(trained["fp32"], trained["bf16"]).correlation)
    out["relative"] = float(
        np.abs(trained["bf16"] - trained["fp32"]).max() / np.abs(trained["fp32"]).max()
    )
    return out


#: Per aggregator: (largest untrained forward change, smallest Spearman after training, largest
#: trained difference, largest final-loss change), each about 3x the worst of seeds 0-5.
BOUNDS = {"mean": (0.015, 0.999, 0.15, 0.001), "abmil": (0.06, 0.985, 0.3, 0.003)}


@pytest.mark.parametrize("name", ["mean", "abmil"])
def test_bf16_training_stays_close_to_fp32(name, one_torch_thread):
    """Mean and ABMIL, seeds 0-5 measured (worst case): the untrained model's predictions
    change by 0.0045 (Mean) and 0.021 (ABMIL) of the largest risk under bf16; after 3 epochs
    the risks' Spearman correlation with the fp32-trained model is >= 0.9998 and >= 0.9957,
    their largest difference 0.041 and 0.106 of the largest risk, and the final training loss
    within 5e-5 and 8e-4 (relative)."""
    forward, spearman, relative, loss = BOUNDS[name]
    result = compare_precisions(name, seed=0)
    assert result["forward"] < forward
    assert result["spearman"] > spearman
    assert result["relative"] < relative
    assert abs(result["loss_bf16"] - result["loss_fp32"]) < loss * result["loss_fp32"]


def test_bf16_sparra_trains_to_the_same_loss(one_torch_thread):
    """SPARRA, seeds 0-5 measured: the untrained model's predictions change by at most 0.028
    of the largest risk under bf16, and after 3 epochs the final training loss is within 0.8%
    (relative) of fp32's; the trained risks themselves correlate 0.46-0.88 (Spearman) with
    fp32's, no closer than two initialisations' would (TopK's kept sets differ)."""
    result = compare_precisions("sparra", seed=0)
    assert np.isfinite([result["loss_bf16"], result["loss_fp32"]]).all()
    assert result["forward"] < 0.08
    assert abs(result["loss_bf16"] - result["loss_fp32"]) < 0.025 * result["loss_fp32"]


def test_autocast_runs_products_in_bf16_and_fp32_is_unchanged():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert (a @ b).dtype == torch.float32
    assert not grad_scaler(CPU, "bf16").is_enabled()


def test_precision_settings_are_checked():
    with pytest.raises(ValueError, match="precision"):
        check_precision("fp8", CPU)
    with pytest.raises(ValueError, match="CUDA"):
        autocast(CPU, "fp16")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(graphs_dir=".", manifest=".", out_dir=".", precision="half")
    assert TrainConfig(graphs_dir=".", manifest=".", out_dir=".").precision == "fp32"
