"""SPARRA's ``reference`` preset: the options of the code that produced the paper's numbers
(docs/sparra.md, "Presets"), each checked against its definition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from radiograph.nn import build_aggregator
from radiograph.nn.sparra import REFERENCE_POOL_RATIO, SparraConfig
from radiograph.train.config import ConfigError, TrainConfig
from radiograph.train.data import load_graph_cohort
from radiograph.train.trainer import Targets, fit, task_loss


def _config(tiny, **overrides) -> TrainConfig:
    settings = dict(
        graphs_dir=tiny.graphs_dir,
        manifest=tiny.manifest,
        out_dir=tiny.root / "out",
        aggregator="sparra",
        epochs=1,
        batch_size=8,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def test_model_options_of_each_preset():
    paper, reference = SparraConfig(), SparraConfig(preset="reference")
    assert (paper.pool_ratio, paper.weight_norm) == (0.2, "modality")
    assert (reference.pool_ratio, reference.weight_norm) == (REFERENCE_POOL_RATIO, "joint")
    assert reference.ratio_for("radiology") == 0.7 and reference.ratio_for("pathology") == 0.2
    # An option given explicitly wins over the preset's value.
    assert SparraConfig(preset="reference", weight_norm="modality").weight_norm == "modality"
    # The preset's dict is a copy: changing one config leaves the preset alone.
    reference.pool_ratio["radiology"] = 0.5
    assert SparraConfig(preset="reference").pool_ratio["radiology"] == 0.7
    with pytest.raises(ValueError, match="preset"):
        SparraConfig(preset="released")


def test_reference_preset_builds_a_model_that_keeps_seventy_percent_of_radiology():
    model = build_aggregator(
        "sparra",
        {"radiology": 4, "pathology": 4},
        preset="reference",
        n_e=8,
        n_h=4,
        attention_dim=4,
    )
    assert model.pools["radiology"].pool1.ratio == 0.7
    assert model.pools["pathology"].pool1.ratio == 0.2


def test_training_settings_of_the_reference_preset(tiny):
    paper = _config(tiny)
    assert not paper.sparra_reference
    assert (paper.ties, paper.weight_decay) == ("efron", 1e-5)
    reference = _config(tiny, aggregator_options={"preset": "reference"})
    assert reference.sparra_reference
    assert (reference.ties, reference.weight_decay) == ("breslow", 0.0)
    assert reference.to_dict()["weight_decay"] == 0.0  # the settings record the values used
    # Only SPARRA has the preset.
    assert not _config(tiny, aggregator="abmil").sparra_reference


def test_a_weight_decay_that_contradicts_the_preset_is_an_error(tiny):
    with pytest.raises(ConfigError, match="weight_decay.*reference preset sets it to 0.0"):
        _config(tiny, aggregator_options={"preset": "reference"}, weight_decay=1e-3)


def test_unknown_preset_is_named(tiny):
    with pytest.raises(ConfigError, match="preset"):
        _config(tiny, aggregator_options={"preset": "released"})


def _reference_cox(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """The reference code's loss in float64: sort by decreasing time, then
    -mean_i (r_i - log sum_{j <= i} exp(r_j)) * delta_i over the whole batch."""
    order = np.argsort(-time, kind="stable")
    r, e = risk[order], event[order]
    return float(-np.mean((r - np.log(np.cumsum(np.exp(r)))) * e))


def _breslow(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Breslow's negative partial log-likelihood, summed over events (float64 loop)."""
    return float(
        -sum(risk[i] - np.log(np.exp(risk[time >= time[i]]).sum()) for i in np.flatnonzero(event))
    )


def test_batch_mean_cox_loss_matches_the_reference_formula():
    rng = np.random.default_rng(0)
    risk, time = rng.normal(size=40), rng.exponential(size=40)
    event = (rng.uniform(size=40) < 0.6).astype(float)
    targets = Targets(torch.from_numpy(time), torch.from_numpy(event), None)
    loss = task_loss(torch.from_numpy(risk), targets, "survival", "breslow", "batch")
    assert float(loss) == pytest.approx(_reference_cox(risk, time, event), rel=1e-12)
    # The default divides the same sum by the number of events instead.
    paper = task_loss(torch.from_numpy(risk), targets, "survival", "breslow")
    assert float(paper) == pytest.approx(float(loss) * 40 / event.sum(), rel=1e-12)


def test_batch_mean_cox_loss_with_tied_times_is_breslow_over_the_batch():
    rng = np.random.default_rng(1)
    risk, time = rng.normal(size=30), rng.integers(1, 6, size=30).astype(float)
    event = (rng.uniform(size=30) < 0.7).astype(float)
    targets = Targets(torch.from_numpy(time), torch.from_numpy(event), None)
    loss = task_loss(torch.from_numpy(risk), targets, "survival", "breslow", "batch")
    assert float(loss) == pytest.approx(_breslow(risk, time, event) / 30, rel=1e-12)
    with pytest.raises(ValueError, match="cox_mean"):
        task_loss(torch.from_numpy(risk), targets, "survival", "breslow", "subjects")


@pytest.mark.parametrize("preset, batches", [("paper", 4), ("reference", 3)])
def test_reference_preset_drops_the_last_incomplete_batch(tiny, preset, batches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, ["pathology"])
    records = list(cohort.records.values())
    assert len(records) == 29  # 3 full batches of 8 and one of 5
    config = _config(
        tiny, aggregator_options={"preset": preset, "n_e": 8, "n_h": 4, "attention_dim": 4}
    )
    torch.manual_seed(0)
    model = build_aggregator("sparra", cohort.in_dims, **config.aggregator_options)
    log = fit(
        model,
        records,
        config,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    assert log[0]["batches"] == batches
