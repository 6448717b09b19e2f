"""A study's YAML config, checked whole when it is read: every key and every value's type.

Each section is validated against a typed dataclass, whose fields are the keys it takes:

=====================  ===========================================================================
section                keys (dataclass)
=====================  ===========================================================================
``kind``               ``radiopathomics`` (the default; the study kinds of ``radiograph study``)
``out_dir``            a folder; relative paths are taken from the YAML file's folder
``cohort``             ``synthetic:`` :class:`SyntheticCohort` or ``manifest: PATH``
``pathology``          :class:`~radiograph.pathology.config.ExtractionConfig`, with ``tissue:``
                       :class:`~radiograph.pathology.config.TissueParams`; ``null`` skips it
``radiology``          :class:`~radiograph.radiology.config.RadiologyConfig`; ``null`` skips it
``graphs``             :class:`GraphSettings` (per-modality parameter overrides)
``training``           :class:`~radiograph.train.config.TrainConfig` fields, and ``seeds``
``aggregators``        names of :data:`radiograph.nn.registry.AGGREGATORS`
``aggregator_options`` per aggregator, the fields of its config (checked by the preflight)
``modality_sets``      lists of ``radiology`` / ``pathology``
``baselines``          :class:`SurvivalBaselines`, or :class:`ClassificationBaselines` with
                       ``training.task: classification``
``report``             :class:`ReportSettings`
``workers``            local worker processes of the per-subject stages
``allow_failures``     failed subjects accepted (:func:`radiograph.runner.parse_allow_failures`)
=====================  ===========================================================================

An unknown key is an error naming the file, the key path (``training.lr``), the keys allowed
there and the closest one ("did you mean"); a value of the wrong type names what was expected.
A number written ``3e-4`` (YAML 1.1 reads it as text) is a number wherever one is expected.
Every problem of the file is listed in one :class:`ConfigError`.

Nothing here imports torch, scikit-learn or pandas: the whole check takes milliseconds. Names
resolved against registries that need them (encoders, aggregator options, the survival
models' parameters) are checked by :mod:`radiograph.preflight`, with the files, devices and
disk space, before any long work.

Only the keys written in the file are kept in :class:`StudyConfig`'s sections (values converted
to their declared types), so a stage's own defaults apply to the others.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from radiograph.graph.params import STEP_DEFAULTS
from radiograph.nn.registry import AGGREGATORS
from radiograph.pathology.config import ExtractionConfig
from radiograph.radiology.config import RadiologyConfig
from radiograph.runner import parse_allow_failures
from radiograph.synth import SIGNALS
from radiograph.train.config import TASKS, ConfigError, TrainConfig

#: The name :mod:`radiograph.study` gave :class:`ConfigError`, kept for its callers.
StudyConfigError = ConfigError

MODALITY_ORDER = ("radiology", "pathology")
#: The study kind this module reads (``kind:`` in the YAML file).
RADIOPATHOMICS = "radiopathomics"

#: TrainConfig fields the study sets itself, and the study's key that sets each.
SET_BY_THE_STUDY = {
    "graphs_dir": "the study's graphs folder (out_dir/graphs)",
    "manifest": "'cohort'",
    "out_dir": "the top-level 'out_dir'",
    "modalities": "'modality_sets'",
    "aggregator": "'aggregators'",
    "aggregator_options": "the top-level 'aggregator_options'",
    "splits": "one splits file per seed under out_dir",
    "source": "the study",
}


@dataclass(frozen=True)
class SyntheticCohort:
    """``cohort: {synthetic: ...}``: the options of :func:`radiograph.synth.make_cohort`.

    Attributes:
        subjects: number of subjects.
        seed: random seed of the cohort.
        slide_mpp: level-0 microns per pixel of the slides.
        slide_size: level-0 (width, height) of the slides in pixels (None: make_cohort's).
        signal: what sets the slide's term of the hazard, ``abundance`` (default) or
            ``focal`` (:data:`radiograph.synth.SIGNALS`, :mod:`radiograph.synth.cohort`).
    """

    subjects: int = 60
    seed: int = 0
    slide_mpp: float = 0.5
    slide_size: tuple[int, int] | None = None
    signal: str = "abundance"

    def __post_init__(self) -> None:
        if self.subjects < 2:
            raise ValueError(f"subjects must be >= 2, got {self.subjects}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not self.slide_mpp > 0:
            raise ValueError(f"slide_mpp must be > 0, got {self.slide_mpp}")
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")


@dataclass(frozen=True)
class GraphSettings:
    """``graphs``: the construction method and, per modality, overrides of its parameters (in
    grid steps; names and defaults in :data:`radiograph.graph.params.STEP_DEFAULTS`).

    Attributes:
        method: ``slidegraph``, ``knn``, ``radius`` or ``delaunay``.
        pathology: parameter -> value for the pathology graphs.
        radiology: parameter -> value for the radiology graphs.
    """

    method: str = "slidegraph"
    pathology: dict[str, Any] = field(default_factory=dict)
    radiology: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SurvivalBaselines:
    """``baselines`` of a survival study: the downstream models fitted on each fold's subject
    vectors (:func:`radiograph.survival.make_baseline`).

    Attributes:
        models: names from :data:`radiograph.survival.BASELINES` (default: all of them).
        screening: univariate Cox screening before the model (paper: true).
        scaling: standardise the features first.
        screening_p: p-value threshold of the screening (paper: 0.2).
        inner_folds: folds of the inner CV that tunes each model.
        grids: model -> parameter -> candidates of the inner CV.
        model_params: model -> constructor arguments.
        n_jobs: parallel jobs of the grid searches (None: one).
    """

    models: tuple[str, ...] = ()
    screening: bool = True
    scaling: bool = True
    screening_p: float = 0.2
    inner_folds: int = 5
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.screening_p <= 1.0:
            raise ValueError(f"screening_p must be in (0, 1], got {self.screening_p}")
        _check_inner(self.inner_folds, self.n_jobs)


@dataclass(frozen=True)
class ClassificationBaselines:
    """``baselines`` of a classification study (``training.task: classification``):
    :func:`radiograph.classify.make_classifier`.

    Attributes:
        models: names from :data:`radiograph.classify.CLASSIFIERS` (default: all of them).
        inner_folds: folds of the stratified inner CV.
        grids: model -> parameter -> candidates of the inner CV.
        model_params: model -> constructor arguments.
        n_jobs: parallel jobs of the grid searches (None: one).
    """

    models: tuple[str, ...] = ()
    inner_folds: int = 5
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        _check_inner(self.inner_folds, self.n_jobs)


def _check_inner(inner_folds: int, n_jobs: int | None) -> None:
    if inner_folds < 2:
        raise ValueError(f"inner_folds must be >= 2, got {inner_folds}")
    if n_jobs is not None and n_jobs == 0:
        raise ValueError("n_jobs must be a number of jobs (or -1: every core), not 0")


@dataclass(frozen=True)
class ReportSettings:
    """``report``: how the report summarises the folds.

    Attributes:
        risk_rule: threshold of the risk groups, fitted on each training fold: the mean or
            median training risk, or the maximally selected log-rank cut-point.
        km_model: the downstream model whose risk groups make the Kaplan-Meier figure and
            ``risk_groups.csv`` (classification: the classifier drawn; default the first).
        n_boot: patient bootstrap resamples for the per-fold intervals in results.csv.
        pooled_boot: resamples for the pooled C-index intervals and paired comparisons.
        level: confidence level of every interval.
    """

    risk_rule: Literal["mean", "median", "optimal"] = "mean"
    km_model: str = "coxph"
    n_boot: int = 0
    pooled_boot: int = 1000
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.n_boot < 0 or self.pooled_boot < 0:
            raise ValueError("n_boot and pooled_boot must be >= 0")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class StudyConfig:
    """A whole study. Paths in the YAML file are relative to that file.

    Attributes:
        out_dir: everything the study writes goes here.
        cohort: ``{"synthetic": {SyntheticCohort fields}}`` or ``{"manifest": PATH}``.
        pathology: :class:`~radiograph.pathology.config.ExtractionConfig` fields (encoder,
            weights, ...; ``tissue`` a :class:`~radiograph.pathology.config.TissueParams`);
            None skips the stage.
        radiology: :class:`~radiograph.radiology.config.RadiologyConfig` fields (features,
            units, ...); None skips the stage.
        graphs: :class:`GraphSettings` fields: ``{"method": NAME, "pathology": {overrides},
            "radiology": {overrides}}`` (see ``radiograph build-graphs``).
        training: :class:`~radiograph.train.config.TrainConfig` fields shared by every model
            (epochs, lr, batch_size, folds, seed, ...); ``seeds: [0, 1, 2, ...]`` instead of
            ``seed`` repeats the whole cross-validation once per seed (new splits and
            initialisations each time, under ``models/seed_<s>/``).
        aggregators: aggregators to train.
        aggregator_options: per aggregator, its options (e.g. ``{"sparra": {"pool_ratio": 0.2}}``).
        modality_sets: modality combinations, e.g. ``[[radiology], [pathology],
            [radiology, pathology]]``.
        baselines: :class:`SurvivalBaselines` fields, or :class:`ClassificationBaselines`
            fields for ``training.task: classification``.
        report: :class:`ReportSettings` fields.
        workers: local worker processes of the per-subject stages (None: number of cores).
        allow_failures: how many subjects may fail a per-subject stage (extraction, graphs)
            with the study still succeeding: a count (int) or a fraction of the cohort (float
            in [0, 1]); default 0. The study always runs on the subjects that remain and lists
            the left-out ones in ``report/excluded_subjects.csv``; beyond the allowance,
            :func:`radiograph.study.run_study` then raises
            :class:`~radiograph.study.SubjectsFailedError`.
        source: the YAML file (None when built in code).
    """

    out_dir: Path
    cohort: dict[str, Any]
    pathology: dict[str, Any] | None = field(default_factory=dict)
    radiology: dict[str, Any] | None = field(default_factory=dict)
    graphs: dict[str, Any] = field(default_factory=lambda: {"method": "slidegraph"})
    training: dict[str, Any] = field(default_factory=dict)
    aggregators: tuple[str, ...] = AGGREGATORS
    aggregator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    modality_sets: tuple[tuple[str, ...], ...] = (
        ("radiology",),
        ("pathology",),
        ("radiology", "pathology"),
    )
    baselines: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    allow_failures: int | float = 0
    source: Path | None = None

    @property
    def manifest_path(self) -> Path:
        if "manifest" in self.cohort:
            return Path(self.cohort["manifest"])
        return self.out_dir / "cohort" / "manifest.csv"

    @property
    def features_dir(self) -> Path:
        return self.out_dir / "features"

    @property
    def graphs_dir(self) -> Path:
        return self.out_dir / "graphs"

    @property
    def models_dir(self) -> Path:
        return self.out_dir / "models"

    @property
    def report_dir(self) -> Path:
        return self.out_dir / "report"

    @property
    def task(self) -> str:
        """``training.task``: ``"survival"`` (default) or ``"classification"``."""
        return str(self.training.get("task", "survival"))

    @property
    def seeds(self) -> tuple[int, ...]:
        """Seeds of the repeated cross-validation: ``training.seeds`` (each seed draws its own
        patient-level splits and initialisations), else the single ``training.seed``."""
        if "seeds" in self.training:
            return tuple(int(s) for s in self.training["seeds"])
        return (int(self.training.get("seed", 0)),)

    def seed_dir(self, seed: int) -> Path:
        """Models of one repeat: ``models/`` for a single-seed study (the layout of earlier
        versions, so finished work is reused), ``models/seed_<s>/`` with ``training.seeds``."""
        return self.models_dir / f"seed_{seed}" if "seeds" in self.training else self.models_dir

    def splits_path(self, seed: int) -> Path:
        """The splits file of one repeat, shared by every model and baseline of that repeat."""
        if "seeds" in self.training:
            return self.out_dir / f"splits_seed_{seed}.json"
        return self.out_dir / "splits.json"

    def modalities_in_use(self) -> list[str]:
        used = {m for s in self.modality_sets for m in s}
        return [m for m in MODALITY_ORDER if m in used]

    def train_config(self, aggregator: str, modalities: tuple[str, ...], seed: int) -> TrainConfig:
        """The training settings of one model of one repeat: ``training`` (less the seeds)
        with the study's folders, the model and its options."""
        shared = {k: v for k, v in self.training.items() if k not in ("seed", "seeds")}
        return TrainConfig(
            graphs_dir=self.graphs_dir,
            manifest=self.manifest_path,
            out_dir=self.seed_dir(seed),
            modalities=modalities,
            aggregator=aggregator,
            aggregator_options=self.aggregator_options.get(aggregator, {}),
            splits=self.splits_path(seed),
            seed=seed,
            **shared,
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-ready data (absolute paths, lists, mappings):
        :func:`load_study_config` reads it back to an equal config (``radiograph report``
        reads the copy a study saves as ``out_dir/study.yaml``)."""
        out: dict[str, Any] = {"kind": RADIOPATHOMICS}
        for f in dataclasses.fields(self):
            if f.name != "source":
                out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    """``value`` with paths as strings, tuples as lists and dataclasses as mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the choice closest to ``word`` (difflib's ratio >= 0.6), or
    an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping at the top of a YAML file.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping (naming the file).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the study config ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a study config is a mapping of sections (out_dir, cohort, "
            f"...), got {type(raw).__name__}"
        )
    return raw


def load_study_config(
    path: str | os.PathLike, *, out_dir: str | os.PathLike | None = None
) -> StudyConfig:
    """Read a study YAML file and check all of it (module docstring).

    Args:
        path: the YAML file.
        out_dir: replaces the file's ``out_dir`` (relative to the working directory).

    Raises:
        ConfigError: every problem of the file, each naming its key path.
    """
    path = Path(path)
    raw = read_yaml(path)
    if out_dir is not None:
        raw["out_dir"] = str(_resolve(out_dir, Path.cwd()))
    return _Reader(path).study(raw)


def _resolve(value: Any, root: Path) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (root / p).resolve()


#: Top-level keys: the StudyConfig fields and ``kind``.
_TOP_KEYS = ("kind", *[f.name for f in dataclasses.fields(StudyConfig) if f.name != "source"])
#: File paths in the extraction sections, resolved against the YAML file's folder.
_PATH_KEYS = ("weights", "stain_reference", "params", "habitat_model")
#: Marks a value that failed its check (its problem is recorded).
_BAD = object()


class _Reader:
    """Checks one file's mapping, collecting every problem before raising one ConfigError."""

    def __init__(self, path: Path):
        self.path = path
        self.root = path.parent
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> object:
        self.problems.append(f"key {key!r}: {message}" if key else message)
        return _BAD

    def study(self, raw: dict[str, Any]) -> StudyConfig:
        kind = raw.pop("kind", RADIOPATHOMICS)
        if kind != RADIOPATHOMICS:
            self.fail("kind", f"this reader takes kind {RADIOPATHOMICS!r}, got {kind!r}")
        self.unknown_keys(raw, _TOP_KEYS, "")
        for key in ("out_dir", "cohort"):
            if raw.get(key) in (None, ""):
                self.fail(key, "is required")
        values: dict[str, Any] = {}
        if raw.get("out_dir") not in (None, ""):
            values["out_dir"] = _resolve(raw["out_dir"], self.root)
        if raw.get("cohort") not in (None, ""):
            values["cohort"] = self.cohort(raw["cohort"])
        training = self.training(raw.get("training"))
        task = training.get("task", "survival")
        values["training"] = training
        for section, cls in (("pathology", ExtractionConfig), ("radiology", RadiologyConfig)):
            if section in raw:
                values[section] = self.extraction(section, raw[section], cls)
        if "graphs" in raw:
            values["graphs"] = self.graphs(raw["graphs"])
        if "aggregators" in raw:
            values["aggregators"] = self.aggregators(raw["aggregators"])
        if "aggregator_options" in raw:
            values["aggregator_options"] = self.aggregator_options(raw["aggregator_options"])
        if "modality_sets" in raw:
            values["modality_sets"] = self.modality_sets(raw["modality_sets"])
        baselines_cls = ClassificationBaselines if task == "classification" else SurvivalBaselines
        values["baselines"] = self.section("baselines", raw.get("baselines"), baselines_cls)
        values["report"] = self.section("report", raw.get("report"), ReportSettings)
        if "workers" in raw:
            values["workers"] = self.value("workers", raw["workers"], int | None)
            if isinstance(values["workers"], int) and values["workers"] < 1:
                self.fail("workers", f"must be >= 1 (1: in this process), got {raw['workers']}")
        if "allow_failures" in raw:
            try:
                values["allow_failures"] = parse_allow_failures(raw["allow_failures"])
            except ValueError as err:
                self.fail("allow_failures", str(err))
        if not self.problems:
            self.cross_checks(values)
        if self.problems:
            raise ConfigError(self.report())
        config = StudyConfig(**values, source=self.path)
        self.trainable(config)
        if self.problems:
            raise ConfigError(self.report())
        return config

    def report(self) -> str:
        if len(self.problems) == 1:
            return f"{self.path}: {self.problems[0]}"
        return f"{self.path}: {len(self.problems)} problems\n" + "\n".join(
            f"  {p}" for p in self.problems
        )

    def unknown_keys(
        self,
        raw: dict[str, Any],
        allowed: Iterable[str],
        where: str,
        why: dict[str, str] | None = None,
    ) -> None:
        allowed = list(allowed)
        for key in raw:
            if key in allowed:
                continue
            path = f"{where}.{key}" if where else str(key)
            if why and key in why:
                self.fail(path, f"is set by the study: use {why[key]}")
                continue
            place = f"under {where!r}" if where else "at the top level"
            self.problems.append(
                f"unknown key {path!r}{did_you_mean(key, allowed)}; allowed "
                f"{place}: {', '.join(allowed)}"
            )

    def mapping(self, key: str, raw: Any) -> dict[str, Any] | object:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            return self.fail(key, f"must be a mapping of settings, got {raw!r}")
        return raw

    def value(self, key: str, raw: Any, hint: Any) -> Any:
        try:
            return _coerce(raw, hint, key)
        except _TypeProblem as problem:
            return self.fail(problem.key, problem.message)

    def dataclass_values(
        self,
        key: str,
        raw: Any,
        cls: type,
        *,
        exclude: Iterable[str] = (),
        extra: dict[str, Any] | None = None,
        why: dict[str, str] | None = None,
    ) -> dict[str, Any] | object:
        """The given keys of ``raw`` converted to ``cls``'s field types (and ``extra``
        name -> type), unknown keys reported; _BAD when anything failed."""
        raw = self.mapping(key, raw)
        if raw is _BAD:
            return _BAD
        hints = typing.get_type_hints(cls)
        excluded = set(exclude)
        names = [f.name for f in dataclasses.fields(cls) if f.name not in excluded]
        hints.update(extra or {})
        names += list(extra or {})
        before = len(self.problems)
        self.unknown_keys(raw, names, key, why)
        values = {k: self.value(f"{key}.{k}", v, hints[k]) for k, v in raw.items() if k in names}
        return _BAD if len(self.problems) > before else values

    def construct(self, key: str, cls: type, values: dict[str, Any]) -> Any:
        """``cls(**values)``, its own checks (``__post_init__``) reported under ``key``."""
        try:
            return cls(**values)
        except (ValueError, TypeError) as err:
            return self.fail(key, str(err))

    def section(self, key: str, raw: Any, cls: type) -> dict[str, Any]:
        values = self.dataclass_values(key, raw, cls)
        if values is _BAD:
            return {}
        self.construct(key, cls, values)
        return values

    def cohort(self, raw: Any) -> dict[str, Any]:
        raw = self.mapping("cohort", raw)
        if raw is _BAD:
            return {}
        self.unknown_keys(raw, ("synthetic", "manifest"), "cohort")
        if len(set(raw) & {"synthetic", "manifest"}) != 1:
            self.fail("cohort", "needs exactly one of 'synthetic' or 'manifest'")
            return {}
        if "manifest" in raw:
            manifest = self.value("cohort.manifest", raw["manifest"], Path)
            return {} if manifest is _BAD else {"manifest": _resolve(manifest, self.root)}
        return {"synthetic": self.section("cohort.synthetic", raw["synthetic"], SyntheticCohort)}

    def extraction(self, key: str, raw: Any, cls: type) -> dict[str, Any] | None:
        if raw is None:
            return None
        values = self.dataclass_values(key, raw, cls)
        if values is _BAD:
            return {}
        for name in _PATH_KEYS:
            if values.get(name):
                values[name] = str(_resolve(values[name], self.root))
        self.construct(key, cls, values)
        return values

    def graphs(self, raw: Any) -> dict[str, Any]:
        values = self.dataclass_values("graphs", raw, GraphSettings)
        if values is _BAD:
            return {"method": "slidegraph"}
        method = values.get("method", GraphSettings.method)
        methods = list(STEP_DEFAULTS["pathology"])
        if method not in methods:
            self.fail(
                "graphs.method",
                f"must be one of {', '.join(methods)}, got {method!r}"
                f"{did_you_mean(method, methods)}",
            )
            return values
        for modality in MODALITY_ORDER:
            if modality in values:
                values[modality] = self.graph_params(modality, method, values[modality])
        return values

    def graph_params(self, modality: str, method: str, raw: dict[str, Any]) -> dict[str, Any]:
        defaults = STEP_DEFAULTS[modality][method]
        key = f"graphs.{modality}"
        self.unknown_keys(raw, defaults, key)
        hints = {
            name: (int if isinstance(default, int) else float) | None
            for name, default in defaults.items()
        }
        return {k: self.value(f"{key}.{k}", v, hints[k]) for k, v in raw.items() if k in hints}

    def training(self, raw: Any) -> dict[str, Any]:
        values = self.dataclass_values(
            "training",
            raw,
            TrainConfig,
            exclude=SET_BY_THE_STUDY,
            extra={"seeds": Any},
            why=SET_BY_THE_STUDY,
        )
        if values is _BAD:
            return {}
        if "seeds" in values:
            seeds = values["seeds"]
            if (
                not isinstance(seeds, list)
                or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
                or len(set(seeds)) != len(seeds)
            ):
                self.fail(
                    "training.seeds",
                    f"must be a non-empty list of distinct non-negative integers, got {seeds!r}",
                )
            if "seed" in values:
                self.problems.append("give either 'training.seed' or 'training.seeds', not both")
        task = values.get("task", "survival")
        if task not in TASKS:
            self.fail(
                "training.task",
                f"must be one of {', '.join(TASKS)}, got {task!r}{did_you_mean(task, TASKS)}",
            )
        return values

    def aggregators(self, raw: Any) -> tuple[str, ...]:
        names = self.value("aggregators", raw, tuple[str, ...])
        if names is _BAD:
            return ()
        if not names:
            self.fail("aggregators", "give at least one of " + ", ".join(AGGREGATORS))
        for name in names:
            if name not in AGGREGATORS:
                self.fail(
                    "aggregators",
                    f"unknown aggregator {name!r}"
                    f"{did_you_mean(name, AGGREGATORS)}; known: {', '.join(AGGREGATORS)}",
                )
        if len(set(names)) != len(names):
            self.fail("aggregators", f"lists an aggregator twice: {list(names)}")
        return names

    def aggregator_options(self, raw: Any) -> dict[str, dict[str, Any]]:
        options = self.value("aggregator_options", raw, dict[str, dict[str, Any]] | None)
        if options is _BAD or options is None:
            return {}
        self.unknown_keys(options, AGGREGATORS, "aggregator_options")
        return options

    def modality_sets(self, raw: Any) -> tuple[tuple[str, ...], ...]:
        sets = self.value("modality_sets", raw, tuple[tuple[str, ...], ...])
        if sets is _BAD:
            return ()
        if not sets:
            self.fail("modality_sets", "give at least one set, e.g. [[radiology, pathology]]")
        for i, modalities in enumerate(sets):
            where = f"modality_sets[{i}]"
            if not modalities or len(set(modalities)) != len(modalities):
                self.fail(where, f"must list distinct modalities, got {list(modalities)}")
            for name in modalities:
                if name not in MODALITY_ORDER:
                    self.fail(
                        where,
                        f"unknown modality {name!r}"
                        f"{did_you_mean(name, MODALITY_ORDER)}; known: radiology, pathology",
                    )
        return sets

    def cross_checks(self, values: dict[str, Any]) -> None:
        """Checks between sections: the models named by grids, model_params and km_model."""
        baselines, report = values["baselines"], values["report"]
        models = baselines.get("models")
        if models is not None and not models:
            self.fail(
                "baselines.models", "give at least one model, or leave the key out for every model"
            )
        if models:
            for key in ("grids", "model_params"):
                for name in baselines.get(key, {}):
                    if name not in models:
                        self.fail(
                            f"baselines.{key}.{name}",
                            f"names no model of "
                            f"baselines.models ({', '.join(models)})"
                            f"{did_you_mean(name, models)}",
                        )
            if "km_model" in report and report["km_model"] not in models:
                self.fail(
                    "report.km_model",
                    f"must be one of baselines.models "
                    f"({', '.join(models)}), got {report['km_model']!r}"
                    f"{did_you_mean(report['km_model'], models)}",
                )

    def trainable(self, config: StudyConfig) -> None:
        """Every model's TrainConfig builds (its own checks: ranges, presets)."""
        seen = set()
        for aggregator in config.aggregators:
            for modalities in config.modality_sets:
                try:
                    config.train_config(aggregator, modalities, config.seeds[0])
                except ConfigError as err:
                    message = _study_key(str(err), aggregator)
                    if message not in seen:
                        seen.add(message)
                        self.problems.append(message)


def _study_key(message: str, aggregator: str) -> str:
    """A :class:`TrainConfig` message (``key 'lr': ...``) with the study's key path."""
    match = re.match(r"key '(\w+)': (.*)", message, flags=re.S)
    if match is None:
        return f"training: {message}"
    key, rest = match.groups()
    if key == "aggregator_options":
        path = f"aggregator_options.{aggregator}"
    elif key in SET_BY_THE_STUDY:
        path = key
    else:
        path = f"training.{key}"
    return f"key {path!r}: {rest}"


class _TypeProblem(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (parsed YAML) as type ``hint``, or a _TypeProblem naming ``key``.

    Understood: Any, bool, int, float (also from text such as ``"3e-4"``), str, Path, ``X |
    None``, ``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]``, ``Literal[...]``
    and dataclasses (from a mapping, checked key by key).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _coerce(value, members[0], key)
        for member in members:
            try:
                return _coerce(value, member, key)
            except _TypeProblem:
                continue
        raise _TypeProblem(key, f"must be {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise _TypeProblem(
                key,
                f"must be one of {', '.join(map(str, args))}, got {value!r}"
                f"{did_you_mean(value, map(str, args))}",
            )
        return value
    if dataclasses.is_dataclass(hint):
        return _dataclass(value, hint, key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _TypeProblem(key, f"must be {_describe(hint)}, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _TypeProblem(key, f"must be {_describe(hint)}, got {value!r}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _TypeProblem(key, f"must be a mapping, got {value!r}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise _TypeProblem(key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _TypeProblem(key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        return _number(value, key)
    if hint is str:
        if not isinstance(value, str):
            raise _TypeProblem(key, f"must be text, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise _TypeProblem(key, f"must be a path, got {value!r}")
        return Path(value)
    raise TypeError(f"{key}: no rule for type {hint!r}")  # a field type this module must learn


def _number(value: Any, key: str) -> float:
    """A finite number; text such as ``"3e-4"`` (how YAML 1.1 reads it) is converted."""
    if isinstance(value, bool):
        raise _TypeProblem(key, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _TypeProblem(key, f"must be a number, got {value!r}") from None
    else:
        raise _TypeProblem(key, f"must be a number, got {value!r}")
    if not math.isfinite(number):
        raise _TypeProblem(key, f"must be a finite number, got {value!r}")
    return number


def _dataclass(value: Any, cls: type, key: str) -> Any:
    """A nested dataclass (e.g. ``pathology.tissue``) from a mapping, key by key."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise _TypeProblem(key, f"must be a mapping of {cls.__name__} settings, got {value!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for name in value:
        if name not in names:
            raise _TypeProblem(
                f"{key}.{name}",
                f"unknown key{did_you_mean(name, names)}; "
                f"allowed under {key!r}: {', '.join(names)}",
            )
    values = {k: _coerce(v, hints[k], f"{key}.{k}") for k, v in value.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise _TypeProblem(key, str(err)) from None


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, for messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return f"a list (each {_describe(args[0]) if args else 'any value'})"
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        Path: "a path",
        type(None): "null",
        dict: "a mapping",
    }
    if origin is dict:
        return "a mapping"
    return names.get(hint, getattr(hint, "__name__", str(hint)))
