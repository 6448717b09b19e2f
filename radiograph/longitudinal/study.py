"""The longitudinal response-prediction study (seeds/002, "MRP"), one call:
:func:`run_longitudinal_study` (``radiograph study`` with ``kind: longitudinal``).

1. Read and validate the longitudinal manifest; load every volume and view once.
2. Centres named in ``external_centres`` are external cohorts; the others are split into
   patient-level stratified folds (a patient's time points never sit in two folds).
3. Per fold, :func:`radiograph.longitudinal.fusion.fit_system` on the training patients only:
   clinical encoding, clinical-only model, mammography and MRI models (plus the ablations),
   late-fusion weight on an inner validation split.
4. Predictions at each phase ``k`` for the patients with an image at that phase, from their
   data up to ``k``; at later phases also from the pre-treatment data alone (``*_pre_only``),
   so the gain of the later phases is measured on the same patients. External patients get
   the mean of the fold systems' probabilities.
5. Tables (:mod:`radiograph.longitudinal.evaluate`), explanations
   (:mod:`radiograph.longitudinal.explain`), figures and ``report.md``
   (:mod:`radiograph.longitudinal.report`).
"""

from __future__ import annotations

import dataclasses
import os
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from radiograph.fusion.clinical import ClinicalVariable
from radiograph.io.atomic import atomic_path, write_json
from radiograph.longitudinal import evaluate
from radiograph.longitudinal.cohort import (
    LongitudinalCohort,
    patient_folds,
    read_longitudinal_manifest,
)
from radiograph.longitudinal.explain import image_attributions, permutation_importance
from radiograph.longitudinal.fusion import ABLATIONS, MRPSystem, fit_system
from radiograph.longitudinal.train import PatientImages, TrainSettings, load_patients
from radiograph.nn.longitudinal import MRPConfig
from radiograph.preflight import PreflightReport
from radiograph.train.config import ConfigError

KIND = "longitudinal"
"""The ``kind`` of this study's configs and of its ``config.json``."""
#: Models compared with the MRP system by DeLong at every phase.
REFERENCES = ("clinical", "clinical_logistic", "mammo", "mri")


@dataclass(frozen=True)
class ModelSettings:
    """The ``model`` section: architecture and optimisation of both modality models.

    Attributes:
        encoder: ``small`` (3-layer CNN, the CPU default) or ``resnet`` (r3d_18 / resnet18).
        mri_weights, mammo_weights: local torchvision state dicts for ``resnet`` (None:
            random init).
        feature_dim: image feature width; hidden: tabular MLP width.
        epochs, batch_size, lr, weight_decay: optimisation (AdamW).
        flip: random flips of the training images.
        validation_fraction: training patients held out to choose the fusion weight.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``: where every
            model trains and predicts.
        precision: ``fp32`` (default), ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA only): the
            forward passes' arithmetic (:class:`~radiograph.longitudinal.train.TrainSettings`;
            speed in ``benchmarks/README.md``, "Longitudinal study (issue 20)").
    """

    encoder: Literal["small", "resnet"] = "small"
    mri_weights: Path | None = None
    mammo_weights: Path | None = None
    feature_dim: int = 32
    hidden: int = 32
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    flip: bool = True
    validation_fraction: float = 0.25
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            device=self.device,
            precision=self.precision,
        )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction: must lie in (0, 1), got {self.validation_fraction}"
            )


@dataclass(frozen=True)
class LongitudinalStudyConfig:
    """The study's settings (``experiments/configs/longitudinal.yaml``).

    Attributes:
        manifest: the longitudinal manifest CSV.
        out: output folder.
        phases: declared phases in time order.
        clinical: the clinical variables (name, kind, levels, reference).
        label_column: the 0/1 pCR column; reader_columns: optional reader-score columns.
        external_centres: centres reported as external cohorts (never trained on).
        folds: patient-level cross-validation folds over the other centres.
        seed: seeds the folds, the inner splits, the models and the bootstraps.
        volume_shape: (D, H, W) voxels of every volume; image_shape: (H, W) of every view.
        model: :class:`ModelSettings`.
        ablations: names of :data:`radiograph.longitudinal.fusion.ABLATIONS` to fit.
        n_boot: bootstrap resamples of the AUROC/AUPRC intervals and decision-curve bands.
        permutation_repeats: permutations per clinical variable (seeds/002: 10).
        ig_patients: test patients whose images get integrated-gradient overlays.
        threads: torch CPU threads (None: torch's default).
    """

    manifest: Path
    out: Path
    phases: tuple[str, ...] = ("pre", "mid", "post")
    clinical: tuple[ClinicalVariable, ...] = ()
    label_column: str = "pcr"
    reader_columns: tuple[str, ...] = ()
    external_centres: tuple[str, ...] = ()
    folds: int = 3
    seed: int = 0
    volume_shape: tuple[int, int, int] = (32, 32, 32)
    image_shape: tuple[int, int] = (64, 64)
    model: ModelSettings = field(default_factory=ModelSettings)
    ablations: tuple[str, ...] = tuple(ABLATIONS)
    n_boot: int = 1000
    permutation_repeats: int = 10
    ig_patients: int = 2
    threads: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ablations) - set(ABLATIONS))
        if unknown:
            raise ValueError(f"ablations: unknown {unknown}; known: {sorted(ABLATIONS)}")
        if self.folds < 2:
            raise ValueError(f"folds: must be >= 2, got {self.folds}")
        if min(self.volume_shape) < 8 or min(self.image_shape) < 8:
            raise ValueError("volume_shape, image_shape: each size must be >= 8")
        for name in ("n_boot", "permutation_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


def load_config(path: str | os.PathLike, **overrides: Any) -> LongitudinalStudyConfig:
    """Read and check the YAML config (paths relative to its folder); ``overrides`` win.

    Raises:
        ConfigError: every problem, each naming its key path (unknown keys with a
            did-you-mean), as the other study configs.
    """
    from radiograph.study_config import _coerce, _Reader, _TypeProblem, read_yaml

    path = Path(path)
    raw = {**read_yaml(path), **overrides}
    reader = _Reader(path)
    kind = raw.pop("kind", KIND)
    if kind != KIND:
        reader.fail("kind", f"this reader takes kind 'longitudinal', got {kind!r}")
    hints = typing.get_type_hints(LongitudinalStudyConfig)
    names = [f.name for f in dataclasses.fields(LongitudinalStudyConfig)]
    reader.unknown_keys(raw, names, "")
    for key in ("manifest", "out"):
        if raw.get(key) in (None, ""):
            reader.fail(key, "is required")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            continue
        try:
            values[key] = _coerce(value, hints[key], key)
        except _TypeProblem as problem:
            reader.fail(problem.key, problem.message)
    for key in ("manifest", "out"):
        if (
            isinstance(values.get(key), Path)
            and not values[key].is_absolute()
            and key not in overrides
        ):
            values[key] = (path.parent / values[key]).resolve()
    if not reader.problems:
        try:
            return LongitudinalStudyConfig(**values)
        except (TypeError, ValueError) as err:
            reader.fail("", str(err))
    raise ConfigError(reader.report())


def read_cohort(config: LongitudinalStudyConfig) -> LongitudinalCohort:
    """The study's manifest, read and checked with its declared phases, clinical variables,
    label and reader columns (:func:`radiograph.longitudinal.cohort.read_longitudinal_manifest`)."""
    return read_longitudinal_manifest(
        config.manifest,
        config.phases,
        config.clinical,
        label_column=config.label_column,
        reader_columns=config.reader_columns,
    )


def preflight(config: LongitudinalStudyConfig) -> PreflightReport:
    """The checks of ``radiograph study --check`` for this kind, in seconds (image headers
    only, nothing trained): the output folder is writable; the manifest passes
    :func:`read_longitudinal_manifest` (every problem listed: line, patient, phase, column,
    file); ``model.mri_weights`` and ``model.mammo_weights`` exist; some centre is left to
    train on besides ``external_centres``; notes on the labels of the internal patients
    (one class only, or fewer of the smaller class than ``folds``)."""
    from radiograph.preflight import check_outcomes, error_lines, kind_preflight, list_problems

    def checks(found) -> None:
        for key in ("mri_weights", "mammo_weights"):
            weights = getattr(config.model, key)
            if weights is not None and not Path(weights).is_file():
                found.problems.append(f"key 'model.{key}': weights file not found: {weights}")
        try:
            cohort = read_cohort(config)
        except ValueError as err:
            list_problems(error_lines(err), found, prefix="key 'manifest': ")
            return
        internal = [p for p in cohort.patients if p.centre not in config.external_centres]
        if not internal:
            found.problems.append(
                f"key 'external_centres': every centre of {config.manifest} is external "
                f"{sorted(config.external_centres)}; nothing to train on"
            )
            return
        check_outcomes(
            found,
            "internal patients (cross-validated)",
            [p.label for p in internal],
            folds=config.folds,
        )

    return kind_preflight(Path(config.out), checks)


@dataclass
class StudyResult:
    """What the study produced: ``tables`` by name, the long ``predictions`` and
    ``validation`` tables (:data:`radiograph.longitudinal.evaluate.PREDICTION_COLUMNS`), the
    fusion weight per fold, the decision curves and the stage times in seconds."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: list[float] = field(default_factory=list)
    curves: dict = field(default_factory=dict)
    attributions: list = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def run_longitudinal_study(config: LongitudinalStudyConfig) -> StudyResult:
    """Run the whole study (module docstring) and write its tables, figures and report
    under ``config.out``."""
    from radiograph.longitudinal import report

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"kind": KIND, **_plain(dataclasses.asdict(config))})
    result = StudyResult()
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        """Record the stage's wall seconds and print one line for it (a log, or a terminal)."""
        nonlocal clock
        now = time.perf_counter()
        result.timings[stage] = round(now - clock, 2)
        print(f"== {stage}: {now - clock:.1f} s", flush=True)
        clock = now

    cohort = read_cohort(config)
    patients = load_patients(cohort, config.volume_shape, config.image_shape)
    table = cohort.clinical_table()
    lap("load")
    internal = np.array(
        [i for i, p in enumerate(cohort.patients) if p.centre not in config.external_centres]
    )
    external = np.array(
        [i for i, p in enumerate(cohort.patients) if p.centre in config.external_centres]
    )
    if len(internal) == 0:
        raise ValueError(
            f"external_centres: every centre is external "
            f"{sorted(config.external_centres)}; nothing to train on"
        )
    sub = dataclasses.replace(cohort, patients=tuple(cohort.patients[i] for i in internal))
    preds, vals, externals, systems = [], [], [], []
    for fold, (train, test) in enumerate(patient_folds(sub, config.folds, config.seed)):
        train, test = internal[train], internal[test]
        print(
            f"   fold {fold + 1}/{config.folds}: training on {len(train)} patients, "
            f"testing on {len(test)}",
            flush=True,
        )
        system = _fit(
            config, cohort, [patients[i] for i in train], table.iloc[train], seed=config.seed + fold
        )
        systems.append((system, test))
        result.weights.append(system.weight)
        by_id = {p.patient_id: i for i, p in enumerate(cohort.patients)}
        val = np.array([by_id[pid] for pid in system.validation_ids])
        preds.append(_phase_predictions(system, cohort, patients, table, test, "internal", fold))
        vals.append(_phase_predictions(system, cohort, patients, table, val, "validation", fold))
        if len(external):
            externals.append(
                _phase_predictions(system, cohort, patients, table, external, "external", fold)
            )
    lap("train_and_predict")
    if externals:
        ext = (
            pd.concat(externals)
            .groupby(
                ["cohort", "patient_id", "centre", "phase", "model", "label"],
                sort=False,
                as_index=False,
            )["prob"]
            .mean()
            .assign(fold=-1)
        )
        ext["cohort"] = "external:" + ext["centre"]
        preds.append(ext)
    pred = pd.concat(preds, ignore_index=True)
    pred = pd.concat([pred, _reader_rows(cohort, pred)], ignore_index=True)
    result.predictions = pred[list(evaluate.PREDICTION_COLUMNS)]
    result.validation = pd.concat(vals, ignore_index=True)[list(evaluate.PREDICTION_COLUMNS)]
    _tables(config, cohort, table, result, external)
    lap("evaluate")
    _explain(config, cohort, patients, table, systems, result)
    lap("explain")
    with atomic_path(out / "predictions.csv") as path:
        result.predictions.to_csv(path, index=False)
    for name, frame in result.tables.items():
        with atomic_path(out / f"{name}.csv") as path:
            frame.to_csv(path, index=False)
    report.write_figures(out, config, result)
    lap("report")
    report.write_markdown(out / "report.md", config, cohort, result)
    write_json(out / "timings.json", result.timings)
    return result


def _fit(
    config: LongitudinalStudyConfig,
    cohort: LongitudinalCohort,
    patients: list[PatientImages],
    table: pd.DataFrame,
    *,
    seed: int,
) -> MRPSystem:
    m = config.model
    common = dict(
        n_phases=len(config.phases), encoder=m.encoder, feature_dim=m.feature_dim, hidden=m.hidden
    )
    configs = {
        "mri": MRPConfig("mri", weights=m.mri_weights, **common),
        "mammo": MRPConfig("mammo", weights=m.mammo_weights, **common),
    }
    settings = TrainSettings(
        epochs=m.epochs,
        batch_size=m.batch_size,
        lr=m.lr,
        weight_decay=m.weight_decay,
        seed=seed,
        flip=m.flip,
        device=m.device,
        precision=m.precision,
    )
    return fit_system(
        patients,
        table,
        cohort.clinical_variables,
        configs,
        settings,
        validation_fraction=m.validation_fraction,
        ablations=config.ablations,
    )


def _phase_predictions(
    system: MRPSystem,
    cohort: LongitudinalCohort,
    patients: list[PatientImages],
    table: pd.DataFrame,
    rows: np.ndarray,
    name: str,
    fold: int,
) -> pd.DataFrame:
    """Long predictions of ``rows`` at each phase (module docstring, step 4)."""
    chosen = [patients[i] for i in rows]
    frame_rows = table.iloc[rows]
    x = system.clinical.inputs(frame_rows)
    centre = {p.patient_id: p.centre for p in cohort.patients}
    pre_only = system.predictions_encoded(chosen, x, upto=0)
    parts = []
    for k, phase in enumerate(cohort.phases):
        seen = [j for j, p in enumerate(chosen) if any(i[0] == k for i in (*p.mri, *p.mammo))]
        if not seen:
            continue
        wide = system.predictions_encoded([chosen[j] for j in seen], x[seen], upto=k)
        if k > 0:
            for model in ("mrp", "mri"):
                wide[f"{model}_pre_only"] = pre_only[model].to_numpy()[seen]
        long = wide.reset_index().melt(id_vars="patient_id", var_name="model", value_name="prob")
        parts.append(long.assign(phase=phase))
    long = pd.concat(parts, ignore_index=True)
    labels = {p.patient_id: p.label for p in chosen}
    return long.assign(
        cohort=name,
        fold=fold,
        centre=long["patient_id"].map(centre),
        label=long["patient_id"].map(labels),
    )


def _reader_rows(cohort: LongitudinalCohort, pred: pd.DataFrame) -> pd.DataFrame:
    """Reader scores as extra ``model`` rows (``reader:<column>``) for the evaluated
    patient-phase pairs."""
    frames = []
    keys = pred[pred["model"] == "mrp"][
        ["cohort", "fold", "patient_id", "centre", "phase", "label"]
    ]
    for phase in cohort.phases:
        scores = cohort.reader_table(phase)
        at = keys[keys["phase"] == phase]
        for column in cohort.reader_columns:
            frames.append(
                at.assign(
                    model=f"reader:{column}", prob=at["patient_id"].map(scores[column]).to_numpy()
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tables(
    config: LongitudinalStudyConfig,
    cohort: LongitudinalCohort,
    table: pd.DataFrame,
    result: StudyResult,
    external: np.ndarray,
) -> None:
    pred, phases = result.predictions, config.phases
    readers = [f"reader:{c}" for c in cohort.reader_columns]
    t = result.tables
    t["per_phase"] = evaluate.phase_metrics(pred, n_boot=config.n_boot, seed=config.seed)
    t["delong"] = evaluate.delong_table(pred, "mrp", [*REFERENCES, *readers])
    gain = [evaluate.delong_table(pred, m, [f"{m}_pre_only"]) for m in ("mrp", "mri")]
    t["later_phases"] = pd.concat(gain, ignore_index=True)
    ablated = ["mrp_equal", *[f"mrp_{a}" for a in config.ablations]]
    per = t["per_phase"]
    t["ablation"] = per[per["model"].isin(["mrp", *ablated])].merge(
        evaluate.delong_table(pred, "mrp", ablated).rename(
            columns={"model": "full", "reference": "model"}
        )[["cohort", "phase", "model", "difference", "p"]],
        on=["cohort", "phase", "model"],
        how="left",
    )
    models = ["mrp", "clinical", "clinical_logistic", *readers]
    result.curves = evaluate.decision_curves(
        pred, phases, models, n_boot=min(config.n_boot, 200), seed=config.seed
    )
    t["decision_curves"] = evaluate.decision_table(result.curves)
    t["operating_points"] = evaluate.operating_points(
        pred, result.validation, phases, ["mrp", "mri", "clinical"]
    )
    internal = [i for i, p in enumerate(cohort.patients) if p.centre not in config.external_centres]
    t["subgroup_odds_ratios"] = evaluate.subgroup_odds_ratios(
        table.iloc[internal], cohort.labels()[internal], cohort.clinical_variables
    )
    summary = cohort.availability_summary()
    summary["cohort"] = np.where(
        summary["centre"].isin(config.external_centres), "external:" + summary["centre"], "internal"
    )
    t["availability"] = summary
    t["fusion_weights"] = pd.DataFrame(
        {"fold": range(len(result.weights)), "mammo_weight": result.weights}
    )


def _explain(
    config: LongitudinalStudyConfig,
    cohort: LongitudinalCohort,
    patients: list[PatientImages],
    table: pd.DataFrame,
    systems: list,
    result: StudyResult,
) -> None:
    """Permutation importance of the clinical variables for the MRP system (per fold, test
    patients, all their data), and integrated gradients of the first fold's MRI and
    mammography models for ``ig_patients`` test patients with the most images."""
    frames = []
    names = [v.name for v in cohort.clinical_variables]
    for fold, (system, test) in enumerate(systems):
        chosen = [patients[i] for i in test]
        x = system.clinical.inputs(table.iloc[test])
        y = np.array([p.label for p in chosen])
        if y.min() == y.max():
            continue
        used = [
            n
            for n in names
            if any(c == n or c.startswith(f"{n}[") for c in system.clinical.encoder_.columns_)
        ]
        fused = dataclasses.replace(system, models={m: system.models[m] for m in ("mammo", "mri")})
        frames.append(
            permutation_importance(
                lambda z, c=chosen, s=fused: s.predictions_encoded(c, z)["mrp"].to_numpy(),
                x,
                y,
                system.clinical.widths_,
                used,
                repeats=config.permutation_repeats,
                seed=config.seed + fold,
            ).assign(fold=fold)
        )
    if frames:
        pooled = pd.concat(frames)
        result.tables["permutation_importance"] = (
            pooled.groupby("variable", as_index=False)
            .agg(
                importance=("importance", "mean"),
                sd=("importance", "std"),
                folds=("fold", "nunique"),
            )
            .sort_values("importance", ascending=False)
        )
    system, test = systems[0]
    x = system.clinical.inputs(table.iloc[test])
    for modality in ("mri", "mammo"):
        ranked = sorted(range(len(test)), key=lambda j: -len(patients[test[j]].items(modality)))
        for j in ranked[: config.ig_patients]:
            p = patients[test[j]]
            if p.items(modality):
                result.attributions.append(
                    (
                        modality,
                        p.patient_id,
                        p.label,
                        image_attributions(system.models[modality], p, x[j]),
                    )
                )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
