"""Training configuration: a YAML file validated into a :class:`TrainConfig`.

Example (``experiments/configs/train_synthetic.yaml``)::

    graphs_dir: ../../runs/synthetic/graphs   # paths are relative to this file
    manifest: ../../runs/synthetic/manifest.csv
    out_dir: ../../runs/synthetic/train
    modalities: [pathology]
    task: survival
    aggregator: sparra
    aggregator_options: {pool_ratio: 0.2}
    lr: 3.0e-4
    epochs: 20

Every key not listed in :class:`TrainConfig` is an error naming the key, so a typo never falls
back silently to a default.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radiograph.devices import PRECISIONS
from radiograph.nn.registry import AGGREGATORS

TASKS = ("survival", "classification")
TIES = ("efron", "breslow")

SPARRA_REFERENCE_TRAINING: dict[str, Any] = {"ties": "breslow", "weight_decay": 0.0}
"""Training settings of SPARRA's ``reference`` preset (``aggregator_options: {preset:
reference}``), as in the code that produced the paper's numbers (shangqigao/RadioPath,
``m_gnn_survival_analysis.py``; ``docs/sparra.md``, "Presets"). The preset also makes the Cox
loss the batch mean (:attr:`TrainConfig.sparra_reference`) and drops the last incomplete
training batch (``drop_last=True``)."""


class ConfigError(ValueError):
    """A configuration problem; the message names the file and the key."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``radiograph train`` needs; defaults are the paper's (section 3.1).

    Attributes:
        graphs_dir: folder holding ``<modality>/<subject_id>.pt`` graph files.
        manifest: cohort manifest CSV (targets, patient ids).
        out_dir: results go to ``out_dir/<aggregator>/<modalities joined by '+'>/fold_<k>/``.
        modalities: modalities to use, e.g. ``("radiology", "pathology")``; the order is the
            block order of the subject vector.
        task: ``"survival"`` (Cox loss on time/event) or ``"classification"`` (cross-entropy on
            the manifest's ``label``).
        aggregator: a registered name (:data:`radiograph.nn.registry.AGGREGATORS`).
        aggregator_options: fields of the aggregator's config dataclass (e.g. ``pool_ratio``);
            ``dropout`` is set by the top-level key, not here. SPARRA's ``preset: reference``
            also sets ``ties`` and ``weight_decay`` (:data:`SPARRA_REFERENCE_TRAINING`; any
            other value than the paper's default or the reference's is an error), the Cox loss
            to the batch mean and drops the last incomplete training batch.
        lr: initial Adam learning rate (paper 3e-4), annealed to 0 by a cosine schedule over
            ``epochs``.
        weight_decay: Adam weight decay (paper 1e-5).
        epochs: training epochs (paper 20).
        batch_size: subjects per batch (paper 32); the Cox loss is computed within a batch.
        dropout: encoder dropout (paper 0.5), passed to aggregators that have one (SPARRA,
            ABMIL; Mean pooling has no dropout).
        seed: seeds the splits, the model initialisation, the batch order and the dropout.
        folds: number of outer cross-validation folds (default 5).
        run_folds: indices of the folds to run (default: all).
        restarts: independent initialisations tried per fold. 1 (default) is the paper's
            single run. With N > 1 each initialisation is trained on four fifths of the fold's
            training patients and scored by its task loss on the other fifth; the best one is
            then trained on the whole training fold (cost: about 0.8 N + 1 runs). Not part of
            the paper: a hedge against a two-basin outcome. Nothing in SPARRA's objective
            steers its TopK selection toward the prognostic nodes, so with the same data some
            runs (initial weights and dropout stream) keep a small prognostic region and others
            a distractor or background (measured: ``docs/sparra.md``).
        standardize: z-score each node feature with the mean and standard deviation of the
            fold's training nodes (default True); the statistics are stored in the model, so a
            checkpoint takes raw features. Radiomic features span orders of magnitude, and
            SPARRA's reconstruction loss weights every feature by its scale without this.
        ties: tie handling of the Cox loss, ``"efron"`` or ``"breslow"``.
        splits: the splits file shared by every model and baseline (default
            ``out_dir/splits.json``); written once, then reused.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        precision: arithmetic of the model's matrix products in training and prediction:
            ``"fp32"`` (default), ``"bf16"`` (autocast to bfloat16, CPU or CUDA) or ``"fp16"``
            (autocast to float16 with loss scaling, CUDA only); parameters stay float32
            (:func:`radiograph.devices.autocast`; speed and C-index change measured in
            ``benchmarks/README.md``).
        source: the YAML file this config was read from (None when built in code).
    """

    graphs_dir: Path
    manifest: Path
    out_dir: Path
    modalities: tuple[str, ...] = ("pathology",)
    task: str = "survival"
    aggregator: str = "sparra"
    aggregator_options: dict[str, Any] = field(default_factory=dict)
    lr: float = 3e-4
    weight_decay: float = 1e-5
    epochs: int = 20
    batch_size: int = 32
    dropout: float = 0.5
    seed: int = 0
    folds: int = 5
    run_folds: tuple[int, ...] | None = None
    restarts: int = 1
    standardize: bool = True
    ties: str = "efron"
    splits: Path | None = None
    device: str = "auto"
    precision: str = "fp32"
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""

        def fail(key: str, message: str) -> None:
            raise ConfigError(f"{where}key {key!r}: {message}")

        for key in ("graphs_dir", "manifest", "out_dir"):
            object.__setattr__(self, key, Path(getattr(self, key)))
        if self.splits is not None:
            object.__setattr__(self, "splits", Path(self.splits))
        if isinstance(self.modalities, str) or not self.modalities:
            fail("modalities", f"give a non-empty list of modality names, got {self.modalities!r}")
        object.__setattr__(self, "modalities", tuple(str(m) for m in self.modalities))
        if len(set(self.modalities)) != len(self.modalities):
            fail("modalities", f"duplicate modality in {list(self.modalities)}")
        if self.task not in TASKS:
            fail("task", f"must be one of {TASKS}, got {self.task!r}")
        if str(self.aggregator).lower() not in AGGREGATORS:
            fail("aggregator", f"must be one of {list(AGGREGATORS)}, got {self.aggregator!r}")
        object.__setattr__(self, "aggregator", str(self.aggregator).lower())
        if not isinstance(self.aggregator_options, dict):
            fail("aggregator_options", f"must be a mapping, got {self.aggregator_options!r}")
        if "dropout" in self.aggregator_options:
            fail("aggregator_options", "set 'dropout' at the top level, not in aggregator_options")
        if not isinstance(self.standardize, bool):
            fail("standardize", f"must be true or false, got {self.standardize!r}")
        if self.ties not in TIES:
            fail("ties", f"must be one of {TIES}, got {self.ties!r}")
        for key in ("lr", "weight_decay", "dropout"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                fail(key, f"must be a number, got {value!r}")
        if not self.lr > 0:
            fail("lr", f"must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            fail("weight_decay", f"must be >= 0, got {self.weight_decay}")
        preset = self.aggregator_options.get("preset", "paper")
        if self.aggregator == "sparra" and preset not in ("paper", "reference"):
            fail("aggregator_options", f"preset must be 'paper' or 'reference', got {preset!r}")
        if self.sparra_reference:
            for key, value in SPARRA_REFERENCE_TRAINING.items():
                if getattr(self, key) not in (value, _DEFAULTS[key]):
                    fail(
                        key,
                        f"SPARRA's reference preset sets it to {value!r}; got "
                        f"{getattr(self, key)!r} (remove the key or the preset)",
                    )
                object.__setattr__(self, key, value)
        if not 0 <= self.dropout < 1:
            fail("dropout", f"must lie in [0, 1), got {self.dropout}")
        for key, low in (
            ("epochs", 1),
            ("batch_size", 2),
            ("folds", 2),
            ("seed", 0),
            ("restarts", 1),
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                fail(key, f"must be an integer >= {low}, got {value!r}")
        if self.run_folds is not None:
            folds = tuple(self.run_folds)
            if not folds or any(not isinstance(k, int) or not 0 <= k < self.folds for k in folds):
                fail("run_folds", f"must list fold indices in [0, {self.folds}), got {folds!r}")
            object.__setattr__(self, "run_folds", folds)
        if not isinstance(self.device, str) or not self.device:
            fail("device", f"must be a string such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.precision not in PRECISIONS:
            fail("precision", f"must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def sparra_reference(self) -> bool:
        """Whether SPARRA runs with its ``reference`` preset (see ``aggregator_options``)."""
        return self.aggregator == "sparra" and self.aggregator_options.get("preset") == "reference"

    @property
    def splits_path(self) -> Path:
        """The splits file (``splits`` or ``out_dir/splits.json``)."""
        return self.splits if self.splits is not None else self.out_dir / "splits.json"

    @property
    def model_dir(self) -> Path:
        """``out_dir/<aggregator>/<modalities joined by '+'>``: the folds of this model."""
        return self.out_dir / self.aggregator / "+".join(self.modalities)

    @property
    def fold_indices(self) -> tuple[int, ...]:
        """The folds to run."""
        return self.run_folds if self.run_folds is not None else tuple(range(self.folds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of the settings (paths as strings; ``source`` left out)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

PATH_KEYS = ("graphs_dir", "manifest", "out_dir", "splits")
FLOAT_KEYS = ("lr", "weight_decay", "dropout")


def config_from_dict(
    values: dict[str, Any], base_dir: str | os.PathLike | None = None, source: Path | None = None
) -> TrainConfig:
    """Validate a mapping (e.g. parsed YAML) into a :class:`TrainConfig`.

    Args:
        values: key -> value; keys are the fields of :class:`TrainConfig` (except ``source``).
        base_dir: relative paths are resolved against this folder (the YAML file's folder).
        source: the file the mapping came from, for error messages.

    Raises:
        ConfigError: unknown or missing key, or a bad value, naming the key.
    """
    where = f"{source}: " if source else ""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}expected a mapping of settings, got {type(values).__name__}")
    allowed = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "source"]
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}unknown key {unknown[0]!r}"
            + (f" (and {unknown[1:]})" if unknown[1:] else "")
            + f"; allowed keys: {', '.join(allowed)}"
        )
    missing = [k for k in ("graphs_dir", "manifest", "out_dir") if values.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"{where}missing required key {missing[0]!r}")
    resolved = dict(values)
    for key in PATH_KEYS:
        if resolved.get(key) is not None:
            path = Path(str(resolved[key])).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = Path(base_dir) / path
            resolved[key] = path
    if resolved.get("aggregator_options") is None:
        resolved["aggregator_options"] = {}
    for key in FLOAT_KEYS:
        # PyYAML reads 3e-4 (no dot) as a string; accept any text that is a plain number.
        if isinstance(resolved.get(key), str):
            try:
                resolved[key] = float(resolved[key])
            except ValueError:
                raise ConfigError(
                    f"{where}key {key!r}: must be a number, got {resolved[key]!r}"
                ) from None
    for key in ("modalities", "run_folds"):
        if isinstance(resolved.get(key), list):
            resolved[key] = tuple(resolved[key])
    return TrainConfig(**resolved, source=source)


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a YAML training config; relative paths are taken from the file's folder.

    Raises:
        ConfigError: unreadable YAML, unknown or missing key, or bad value (naming the key).
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return config_from_dict(values or {}, base_dir=path.parent.resolve(), source=path)
