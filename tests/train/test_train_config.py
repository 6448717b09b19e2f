"""Training config: YAML -> TrainConfig, with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiograph.train.config import ConfigError, TrainConfig, config_from_dict, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "train_synthetic.yaml"
BASE = {"graphs_dir": "g", "manifest": "m.csv", "out_dir": "out"}


def test_example_config_loads_with_paths_relative_to_the_file():
    config = load_config(EXAMPLE)
    root = EXAMPLE.parent.resolve()
    assert config.graphs_dir == root / "../../runs/planted/graphs"
    assert config.manifest == root / "../../runs/planted/manifest.csv"
    assert config.aggregator == "sparra"
    assert config.aggregator_options == {"pool_ratio": 0.2, "weight_norm": "modality"}
    assert config.lr == pytest.approx(1e-3)
    assert config.modalities == ("pathology",)
    assert config.model_dir == config.out_dir / "sparra" / "pathology"
    assert config.splits_path == config.out_dir / "splits.json"


def test_paper_defaults():
    config = config_from_dict(BASE)
    assert (config.lr, config.weight_decay, config.dropout) == (3e-4, 1e-5, 0.5)
    assert (config.batch_size, config.epochs, config.folds) == (32, 20, 5)
    assert config.fold_indices == (0, 1, 2, 3, 4)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("graphs_dir: g\nmanifest: m.csv\nout_dir: o\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'learning_rate'"):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("task", "regression", "key 'task'"),
        ("aggregator", "transformer", "key 'aggregator'"),
        ("lr", 0, "key 'lr'"),
        ("lr", "fast", "key 'lr'"),
        ("dropout", 1.0, "key 'dropout'"),
        ("epochs", 0, "key 'epochs'"),
        ("batch_size", 1.5, "key 'batch_size'"),
        ("folds", 1, "key 'folds'"),
        ("run_folds", [5], "key 'run_folds'"),
        ("modalities", "pathology", "key 'modalities'"),
        ("modalities", ["pathology", "pathology"], "key 'modalities'"),
        ("ties", "exact", "key 'ties'"),
        ("aggregator_options", {"dropout": 0.1}, "key 'aggregator_options'"),
    ],
)
def test_bad_value_is_named(key, value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict({**BASE, key: value})


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'manifest'"):
        config_from_dict({"graphs_dir": "g", "out_dir": "o"})


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    """PyYAML reads ``3e-4`` as a string; the config accepts it as the number it means."""
    path = tmp_path / "c.yaml"
    path.write_text("graphs_dir: g\nmanifest: m.csv\nout_dir: o\nlr: 3e-4\nweight_decay: 1e-5\n")
    config = load_config(path)
    assert config.lr == 3e-4 and config.weight_decay == 1e-5
    assert config.graphs_dir == tmp_path.resolve() / "g"


def test_to_dict_round_trips():
    config = config_from_dict({**BASE, "modalities": ["radiology", "pathology"], "run_folds": [1]})
    again = TrainConfig(**config.to_dict())
    assert again == config
