"""The aggregators, each declared once: its name, its label, its config dataclass and its class.

Everything that lists aggregators derives from :data:`REGISTRY`: the names a training or study
config accepts (:data:`AGGREGATORS`), the options an aggregator takes (:func:`config_class`),
:func:`build_aggregator`, checkpoint loading, the labels of tables and figures and the contract
test (``tests/nn/test_aggregator_contract.py``). Adding an aggregator is one entry here, a
module with its config dataclass and its :class:`~radiograph.nn.base.Aggregator` subclass
(constructor ``(in_dims, config, task, num_classes)``), and nothing else.

The classes are named by module and attribute, not imported: this module imports no torch, so
validating a config (``radiograph validate``, ``radiograph study --help``) stays light, and
the model modules (which import :mod:`radiograph.nn.base`) never import this one at load
time, so there is no import cycle through :func:`build_aggregator`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiograph.nn.base import Aggregator


@dataclass(frozen=True)
class AggregatorEntry:
    """One registered aggregator.

    Attributes:
        name: the name in configs and folder names (lower case).
        label: how tables and figures name it.
        module: the module defining both classes.
        config_class: the name of its config dataclass in ``module`` (every field has a
            default: the paper's).
        model_class: the name of its :class:`~radiograph.nn.base.Aggregator` subclass.
    """

    name: str
    label: str
    module: str
    config_class: str
    model_class: str

    def load(self) -> tuple[type, type[Aggregator]]:
        """(config dataclass, aggregator class), importing ``module`` (and torch)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, self.model_class)


REGISTRY: dict[str, AggregatorEntry] = {
    entry.name: entry
    for entry in (
        AggregatorEntry("mean", "Mean", "radiograph.nn.mean", "MeanConfig", "MeanPool"),
        AggregatorEntry("abmil", "ABMIL", "radiograph.nn.abmil", "AbmilConfig", "Abmil"),
        AggregatorEntry("sparra", "SPARRA", "radiograph.nn.sparra", "SparraConfig", "Sparra"),
    )
}
"""name -> entry, in the order studies train them and tables show them (the paper's: the
simplest first)."""

AGGREGATORS: tuple[str, ...] = tuple(REGISTRY)
"""The registered names, in :data:`REGISTRY` order."""

LABELS: dict[str, str] = {name: entry.label for name, entry in REGISTRY.items()}
"""name -> label in tables and figures."""


def aggregator_entry(name: str) -> AggregatorEntry:
    """The entry of ``name`` (case-insensitive).

    Raises:
        ValueError: ``name`` is not registered (the message lists the known names).
    """
    key = str(name).lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown aggregator {name!r}; choose one of {list(AGGREGATORS)}")
    return REGISTRY[key]


def config_class(name: str) -> type:
    """The config dataclass of aggregator ``name`` (imports its module)."""
    return aggregator_entry(name).load()[0]


def option_names(name: str) -> tuple[str, ...]:
    """The options aggregator ``name`` takes: the fields of its config dataclass."""
    return tuple(f.name for f in dataclasses.fields(config_class(name)))


def build_aggregator(
    name: str,
    in_dims: Mapping[str, int],
    task: str = "survival",
    num_classes: int = 2,
    **options: Any,
) -> Aggregator:
    """Build a registered aggregator by name from keyword options (e.g. a YAML mapping).

    Args:
        name: a name of :data:`AGGREGATORS` (case-insensitive).
        in_dims: modality -> input feature dimension d_m; the key order is the block order of
            the subject vector.
        task: ``"survival"`` or ``"classification"``.
        num_classes: number of classes C for classification.
        **options: fields of the aggregator's config dataclass (:func:`option_names`);
            missing fields take the paper's defaults.

    Raises:
        ValueError: unknown name or option (naming the allowed ones), or a bad value.
    """
    entry = aggregator_entry(name)
    config_cls, model_cls = entry.load()
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(
            f"aggregator {entry.name!r}: unknown options {sorted(unknown)}; "
            f"allowed {sorted(fields)}"
        )
    return model_cls(in_dims, config_cls(**options), task=task, num_classes=num_classes)
