"""The aggregator registry: each entry resolves to a config dataclass and an aggregator class,
everything that names aggregators derives from it, and it imports without torch and without an
import cycle (each import check runs in a fresh interpreter)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from radiograph.nn.base import Aggregator
from radiograph.nn.registry import (
    AGGREGATORS,
    LABELS,
    REGISTRY,
    aggregator_entry,
    build_aggregator,
    option_names,
)
from radiograph.train.config import ConfigError, TrainConfig

DIMS = {"radiology": 3, "pathology": 4}


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_registry_imports_no_torch():
    assert (
        _fresh(
            "import sys, radiograph.nn.registry, radiograph.train.config, "
            "radiograph.study_config; print('torch' in sys.modules)"
        )
        == "False"
    )


@pytest.mark.parametrize("first", ["radiograph.nn.sparra", "radiograph.nn.registry"])
def test_no_import_cycle_through_build_aggregator(first):
    """Whether a model module or the registry is imported first, every registered aggregator
    builds (a fresh interpreter importing torch each: about 5 s)."""
    names = _fresh(
        f"import {first}\n"
        "from radiograph.nn.registry import AGGREGATORS, build_aggregator\n"
        "print(','.join(type(build_aggregator(n, {'pathology': 3})).__name__ "
        "for n in AGGREGATORS))"
    )
    assert names.split(",") == [REGISTRY[n].model_class for n in AGGREGATORS]


@pytest.mark.parametrize("name", AGGREGATORS)
def test_each_entry_resolves_to_a_config_and_an_aggregator(name):
    entry = aggregator_entry(name)
    assert entry.name == name == name.lower()
    config_cls, model_cls = entry.load()
    assert dataclasses.is_dataclass(config_cls) and issubclass(model_cls, Aggregator)
    assert option_names(name) == tuple(f.name for f in dataclasses.fields(config_cls))
    model = build_aggregator(name.upper(), DIMS)
    assert type(model) is model_cls and model.config == config_cls()
    assert aggregator_entry(name.upper()) is entry


def test_unknown_names_and_options_name_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown aggregator 'transmil'.*" + AGGREGATORS[0]):
        build_aggregator("transmil", DIMS)
    allowed = option_names("sparra")
    with pytest.raises(ValueError, match=f"unknown options.*{allowed[0]}"):
        build_aggregator("sparra", DIMS, n_hidden=4)


def test_configs_tables_and_study_defaults_derive_from_the_registry(tmp_path):
    from radiograph.report.tables import display_name
    from radiograph.study_config import StudyConfig

    paths = {"graphs_dir": tmp_path, "manifest": tmp_path / "m.csv", "out_dir": tmp_path}
    for name in AGGREGATORS:
        assert TrainConfig(**paths, aggregator=name).aggregator == name
        assert display_name(name) == LABELS[name] == REGISTRY[name].label
    with pytest.raises(ConfigError, match=str(list(AGGREGATORS)).replace("[", r"\[")):
        TrainConfig(**paths, aggregator="transmil")
    assert StudyConfig(out_dir=Path(tmp_path), cohort={}).aggregators == AGGREGATORS
