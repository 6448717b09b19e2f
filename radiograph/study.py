"""The paper's study end to end, from one YAML config, skipping work already done.

Stages (each reads the files the previous one wrote, under ``out_dir``)::

    cohort      synthetic cohort (``cohort.synthetic``) or your manifest (``cohort.manifest``)
    pathology   slides -> features/pathology/<subject>/<slide>.h5
    radiology   CT + mask -> features/radiology/<subject>.h5
    graphs      features -> graphs/<modality>/<subject>.pt
    training    {aggregators} x {modality sets}, patient-level CV with one shared splits.json
                -> models/<aggregator>/<modalities>/fold_<k>/ (embeddings, risks, importances)
    baselines   RSF, CoxPH, Coxnet, FSVM on each fold's subject vectors (fitted on the
                training fold, tuned by inner CV) -> .../fold_<k>/baselines.csv
    report      report/results.csv (long), report/table1.{csv,md,tex}, Fig. 2-4 PNGs,
                report/look_inside_sparra_fold0/ (node importance), report/stage_seconds.json

Every stage resumes: a subject, fold or baseline whose output exists is not redone, so a
killed study restarts where it stopped. Per-subject failures are reported and the study goes
on with the subjects that remain (a subject without features lacks that modality).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from radiograph.io.atomic import atomic_open, write_json
from radiograph.manifest import Manifest, load_manifest
from radiograph.runner import Backend, RunRecord, default_backend, run_cohort

MODALITY_ORDER = ("radiology", "pathology")


class StudyConfigError(ValueError):
    """A problem in a study config; the message names the file and the key."""


@dataclass(frozen=True)
class StudyConfig:
    """A whole study. Paths in the YAML file are relative to that file.

    Attributes:
        out_dir: everything the study writes goes here.
        cohort: ``{"synthetic": {"subjects": N, "seed": S, ...make_cohort options}}`` or
            ``{"manifest": PATH}``.
        pathology: :class:`~radiograph.pathology.extract.ExtractionConfig` fields (encoder,
            weights, ...); None skips the stage.
        radiology: :class:`~radiograph.radiology.extract.RadiologyConfig` fields (features,
            units, ...); None skips the stage.
        graphs: ``{"method": NAME, "pathology": {overrides}, "radiology": {overrides}}`` (see
            ``radiograph build-graphs``).
        training: :class:`~radiograph.train.config.TrainConfig` fields shared by every model
            (epochs, lr, batch_size, folds, seed, ...).
        aggregators: aggregators to train.
        aggregator_options: per aggregator, its options (e.g. ``{"sparra": {"pool_ratio": 0.2}}``).
        modality_sets: modality combinations, e.g. ``[[radiology], [pathology],
            [radiology, pathology]]``.
        baselines: ``models`` (subset of rsf, coxph, coxnet, fsvm), ``screening`` (bool),
            ``screening_p``, ``inner_folds``, ``grids`` and ``model_params`` per model,
            ``n_jobs``; see :func:`radiograph.survival.make_baseline`.
        report: ``risk_rule`` (mean | median), ``km_model`` (baseline whose risk groups make
            Fig. 4), ``n_boot`` (patient bootstrap resamples for the CIs in results.csv).
        workers: local worker processes of the per-subject stages (None: number of cores).
        source: the YAML file (None when built in code).
    """

    out_dir: Path
    cohort: dict[str, Any]
    pathology: dict[str, Any] | None = field(default_factory=dict)
    radiology: dict[str, Any] | None = field(default_factory=dict)
    graphs: dict[str, Any] = field(default_factory=lambda: {"method": "slidegraph"})
    training: dict[str, Any] = field(default_factory=dict)
    aggregators: tuple[str, ...] = ("mean", "abmil", "sparra")
    aggregator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    modality_sets: tuple[tuple[str, ...], ...] = (
        ("radiology",), ("pathology",), ("radiology", "pathology"))
    baselines: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
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

    def modalities_in_use(self) -> list[str]:
        used = {m for s in self.modality_sets for m in s}
        return [m for m in MODALITY_ORDER if m in used]


def load_study_config(path: str | os.PathLike, *, out_dir: str | None = None) -> StudyConfig:
    """Read a study YAML file; unknown keys and missing required keys are errors."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise StudyConfigError(f"{path}: cannot read the study config ({err})") from err
    names = {f.name for f in dataclasses.fields(StudyConfig)} - {"source"}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise StudyConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(names)}")
    root = path.parent
    if out_dir is not None:
        raw["out_dir"] = out_dir
    for key in ("out_dir", "cohort"):
        if key not in raw:
            raise StudyConfigError(f"{path}: key {key!r} is required")
    raw["out_dir"] = _resolve(raw["out_dir"], root if out_dir is None else Path.cwd())
    cohort = dict(raw["cohort"] or {})
    if len(set(cohort) & {"synthetic", "manifest"}) != 1:
        raise StudyConfigError(f"{path}: key 'cohort' needs exactly one of 'synthetic' or 'manifest'")
    if "manifest" in cohort:
        cohort["manifest"] = _resolve(cohort["manifest"], root)
    raw["cohort"] = cohort
    for section in ("pathology", "radiology"):
        options = raw.get(section)
        if options:
            for key in ("weights", "stain_reference", "params", "habitat_model"):
                if options.get(key):
                    options[key] = str(_resolve(options[key], root))
    raw["aggregators"] = tuple(raw.get("aggregators", StudyConfig.aggregators))
    if "modality_sets" in raw:
        raw["modality_sets"] = tuple(tuple(s) for s in raw["modality_sets"])
    return StudyConfig(**raw, source=path)


def _resolve(value: Any, root: Path) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else (root / p).resolve()


def run_study(config: StudyConfig, *, progress: bool = True) -> pd.DataFrame:
    """Run every stage (skipping finished work); returns the long results table."""
    timer = StageTimer()
    backend = default_backend(config.workers)
    with timer("cohort"):
        manifest = prepare_cohort(config, backend)
    print(manifest.summary())
    records: list[RunRecord] = []
    if config.pathology is not None and "pathology" in config.modalities_in_use():
        with timer("pathology features"):
            records.append(extract_pathology(config, manifest, backend, progress))
    if config.radiology is not None and "radiology" in config.modalities_in_use():
        with timer("radiology features"):
            records.append(extract_radiology(config, manifest, backend, progress))
    with timer("graphs"):
        records += build_graphs(config, backend, progress)
    for record in records:
        if record.failed:
            print(record.report(), file=sys.stderr)
    with timer("training"):
        trained = train_models(config, progress)
    with timer("baselines"):
        results = fit_baselines(config, manifest, trained, progress)
    with timer("report"):
        write_report(config, manifest, results)
    timer.save(config.report_dir / "stage_seconds.json")
    print(timer.table())
    return results


class StageTimer:
    """Wall time per stage, printed and saved (the whole study's benchmark)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Stage:
            def __enter__(self) -> None:
                print(f"== {name}", flush=True)
                self.start = time.perf_counter()

            def __exit__(self, *exc: Any) -> None:
                timer.seconds[name] = time.perf_counter() - self.start

        return _Stage()

    def table(self) -> str:
        lines = ["stage                   seconds"]
        lines += [f"{name:<22}{s:>9.1f}" for name, s in self.seconds.items()]
        lines.append(f"{'total':<22}{sum(self.seconds.values()):>9.1f}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        write_json(path, self.seconds)


def prepare_cohort(config: StudyConfig, backend: Backend) -> Manifest:
    """Write the synthetic cohort (unless its manifest, written last, exists) and load the
    validated manifest."""
    if "synthetic" in config.cohort and not config.manifest_path.exists():
        from radiograph.synth import make_cohort

        options = dict(config.cohort["synthetic"] or {})
        subjects = int(options.pop("subjects", 60))
        seed = int(options.pop("seed", 0))
        if "slide_size" in options:
            options["slide_size"] = tuple(options["slide_size"])
        make_cohort(config.manifest_path.parent, subjects, seed, backend=backend, **options)
    return load_manifest(config.manifest_path)


def extract_pathology(config: StudyConfig, manifest: Manifest, backend: Backend,
                      progress: bool) -> RunRecord:
    """Slides -> patch features (``features/pathology``), one slide at a time in this process
    (the encoder stays loaded; tile reading runs in DataLoader workers)."""
    from radiograph.pathology.extract import ExtractionConfig, extract_cohort

    extraction = ExtractionConfig(**(config.pathology or {}))
    return extract_cohort(manifest, config.out_dir, extraction, progress=progress)


def extract_radiology(config: StudyConfig, manifest: Manifest, backend: Backend,
                      progress: bool) -> RunRecord:
    """CT + mask -> unit features (``features/radiology``). Habitat units without a given
    model fit one on every subject's tumour voxels (unsupervised: no outcome is used)."""
    from radiograph.radiology.extract import (
        RadiologyConfig,
        extract_cohort,
        features_dir,
        fit_habitat_model,
        radiology_jobs,
    )

    options = dict(config.radiology or {})
    jobs = radiology_jobs(manifest, config.out_dir)
    if options.get("units") == "habitat" and not options.get("habitat_model"):
        model_path = features_dir(config.out_dir) / "habitat_model.json"
        if not model_path.exists():
            model, failures = fit_habitat_model(jobs, RadiologyConfig(**{**options, "units": "grid"}),
                                                progress=progress)
            model.save(model_path)
            for subject, error in failures:
                print(f"habitat fit: left out {subject}: {error}", file=sys.stderr)
        options["habitat_model"] = str(model_path)
    return extract_cohort(jobs, config.out_dir, RadiologyConfig(**options), backend=backend,
                          progress=progress)


def build_graphs(config: StudyConfig, backend: Backend, progress: bool) -> list[RunRecord]:
    """Features -> one graph per subject and modality (``graphs/<modality>/<subject>.pt``)."""
    from radiograph.graph.commands import build_subject_graph, graph_tasks

    options = dict(config.graphs)
    method = options.pop("method", "slidegraph")
    records = []
    for modality in config.modalities_in_use():
        tasks = graph_tasks(config.features_dir, config.graphs_dir, method, (modality,),
                            options.get(modality) or {})
        records.append(run_cohort(tasks, build_subject_graph, stage=f"graphs {modality}",
                                  record_path=config.graphs_dir / f"build-graphs-{modality}.json",
                                  backend=backend, progress=progress))
    return records


@dataclass(frozen=True)
class TrainedModel:
    """One aggregator trained on one modality set: its fold folders."""

    aggregator: str
    modalities: tuple[str, ...]
    fold_dirs: tuple[Path, ...]


def train_models(config: StudyConfig, progress: bool) -> list[TrainedModel]:
    """Cross-validate every aggregator on every modality set, sharing one splits file."""
    from radiograph.train.config import TrainConfig
    from radiograph.train.trainer import format_results, run_cross_validation

    trained = []
    for modalities in config.modality_sets:
        for aggregator in config.aggregators:
            train_config = TrainConfig(
                graphs_dir=config.graphs_dir, manifest=config.manifest_path,
                out_dir=config.models_dir, modalities=modalities, aggregator=aggregator,
                aggregator_options=config.aggregator_options.get(aggregator, {}),
                splits=config.out_dir / "splits.json", **config.training)
            print(f"-- {aggregator} on {' + '.join(modalities)}", flush=True)
            results = run_cross_validation(train_config, progress=progress)
            print(format_results(results))
            trained.append(TrainedModel(aggregator, modalities,
                                        tuple(r.fold_dir for r in results)))
    return trained


def fit_baselines(config: StudyConfig, manifest: Manifest, trained: Sequence[TrainedModel],
                  progress: bool) -> pd.DataFrame:
    """Fit the survival baselines on each fold's subject vectors; returns long results.

    Per fold, the baselines see only the training subjects' vectors (scaling, screening and
    inner-CV tuning included) and are evaluated on the test subjects. Results and test risks
    are cached in ``fold_<k>/baselines.csv`` and ``fold_<k>/baseline_risks.csv``. Warnings of
    the hundreds of inner-CV fits (scikit-survival's overflows at weak penalties, screening's
    features without a finite estimate) are summarised at the end, one line per source.
    """
    frames = []
    with warnings.catch_warnings(record=True) as caught:
        for model in trained:
            for fold_dir in model.fold_dirs:
                results_path = fold_dir / "baselines.csv"
                if not results_path.exists():
                    results, risks = _fold_baselines(config, manifest, fold_dir)
                    with atomic_open(fold_dir / "baseline_risks.csv", "w", newline="") as fh:
                        risks.to_csv(fh, index=False)
                    with atomic_open(results_path, "w", newline="") as fh:
                        results.to_csv(fh, index=False)
                frame = pd.read_csv(results_path)
                frame.insert(0, "extractor", _extractor_label(config, model.modalities))
                frame.insert(1, "modality", " + ".join(model.modalities))
                frame.insert(2, "aggregator", model.aggregator)
                frame.insert(4, "fold", int(fold_dir.name.split("_")[-1]))
                frames.append(frame)
    if caught:
        print(summarise_warnings(caught, "baselines"), file=sys.stderr)
    return pd.concat(frames, ignore_index=True)


def summarise_warnings(caught: Sequence[warnings.WarningMessage], stage: str) -> str:
    """One line per source (file, line, category) of ``caught``: how often, first message.

    Returns:
        ``"<stage>: N warning(s) from K source(s), most frequent first:"`` and the lines.
    """
    groups: dict[tuple[str, int, str], list[str]] = {}
    for item in caught:
        key = (Path(item.filename).name, item.lineno, item.category.__name__)
        first_line = next(iter(str(item.message).strip().splitlines()), "")
        groups.setdefault(key, []).append(first_line)
    lines = [f"{stage}: {len(caught)} warning(s) from {len(groups)} source(s), "
             "most frequent first:"]
    for (filename, lineno, category), messages in sorted(groups.items(),
                                                         key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(messages):5d} x {filename}:{lineno} {category}: {messages[0]}")
    return "\n".join(lines)


def _fold_baselines(config: StudyConfig, manifest: Manifest,
                    fold_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.exceptions import FitFailedWarning
    from sksurv.util import Surv

    from radiograph.survival import (
        BASELINES,
        SURVIVAL_METRICS,
        evaluate_survival,
        make_baseline,
        risk_score,
    )

    options = dict(config.baselines)
    names = options.pop("models", BASELINES)
    grids = options.pop("grids", {}) or {}
    model_params = options.pop("model_params", {}) or {}
    n_boot = int(config.report.get("n_boot", 0))
    seed = int(config.training.get("seed", 0))
    embeddings = np.load(fold_dir / "embeddings.npz")
    subjects = manifest.by_id()
    ids = [str(s) for s in embeddings["subject_ids"]]
    x = np.asarray(embeddings["x"], dtype=np.float64)
    test = np.asarray(embeddings["split"]) == "test"
    y = Surv.from_arrays([bool(subjects[s].event) for s in ids], [subjects[s].time for s in ids])
    patients = np.array([subjects[s].patient_id for s in ids])
    rows, risks = [], []
    for name in names:
        model = make_baseline(name, seed=seed, grids=grids.get(name),
                              model_params=model_params.get(name), **options)
        try:
            with warnings.catch_warnings():
                # an inner-CV candidate that fails to fit scores NaN and is not chosen
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=FitFailedWarning)
                model.fit(x[~test], y[~test])
            metrics = evaluate_survival(model, y[~test], y[test], x[test],
                                        patient_ids=patients[test], n_boot=n_boot, seed=seed)
        except (ValueError, ArithmeticError) as err:  # a fold too small, no events, divergence
            reason = str(err).strip().splitlines()[0]
            print(f"baselines: {name} on {fold_dir} failed, its metrics are N/A: {reason}",
                  file=sys.stderr)
            rows += [{"model": name, "metric": k, "value": np.nan} for k in SURVIVAL_METRICS]
            continue
        rows += [{"model": name, "metric": k, "value": v} for k, v in metrics.items()]
        risk = risk_score(model, x)
        if np.ptp(risk[test]) == 0:
            why = {"rsf": f"min_samples_leaf may be too large for {int((~test).sum())} training "
                          "subjects (baselines.model_params.rsf)",
                   "coxnet": "the inner CV chose an alpha that zeroes every coefficient"}
            print(f"baselines: {name} on {fold_dir} gives every test subject the same risk "
                  f"(C-index 0.5); {why.get(name, 'no feature carries signal')}",
                  file=sys.stderr)
        risks.append(pd.DataFrame({"model": name, "subject_id": ids,
                                   "split": np.where(test, "test", "train"), "risk": risk}))
    columns = ["model", "subject_id", "split", "risk"]
    risks = pd.concat(risks, ignore_index=True) if risks else pd.DataFrame(columns=columns)
    return pd.DataFrame(rows), risks[columns]


def _extractor_label(config: StudyConfig, modalities: Sequence[str]) -> str:
    names = {"pathology": (config.pathology or {}).get("encoder", "efficientnet-lite0"),
             "radiology": (config.radiology or {}).get("features", "pyradiomics")}
    return " + ".join(str(names[m]) for m in modalities)


def write_report(config: StudyConfig, manifest: Manifest, results: pd.DataFrame) -> None:
    """Long results, Table 1 (CSV/Markdown/LaTeX), Fig. 2-4 and SPARRA's node importance of the
    top- and bottom-risk test subjects of fold 0 (``look_inside_sparra_fold0/``) under
    ``report/``."""
    from radiograph.report import (
        plot_fold_bands,
        plot_metric_bars,
        plot_risk_groups,
        table1,
        to_markdown,
        write_table,
    )

    folder = config.report_dir
    with atomic_open(folder / "results.csv", "w", newline="") as fh:
        results.to_csv(fh, index=False)
    point = results[~results["metric"].str.contains("_ci_")]
    table = table1(point, metrics=["c_index", "c_ipcw", "c_auc", "ibs"])
    write_table(table, folder / "table1")
    for modalities in config.modality_sets:
        label = " + ".join(modalities)
        subset = point[point["modality"] == label]
        slug = "_".join(modalities)
        plot_metric_bars(subset, folder / f"fig2_bars_{slug}.png")
        plot_fold_bands(subset, folder / f"fig3_bands_{slug}.png")
    km_model = config.report.get("km_model", "coxph")
    rule = config.report.get("risk_rule", "mean")
    full = max(config.modality_sets, key=len)
    groups = _pooled_risk_groups(config, manifest, full, km_model, rule)
    if groups:
        plot_risk_groups(groups, folder / f"fig4_km_{'_'.join(full)}.png",
                         time_unit=manifest.time_unit)
    if "sparra" in config.aggregators:
        from radiograph.train.look_inside import look_inside

        fold_dir = config.models_dir / "sparra" / "+".join(full) / "fold_0"
        look_inside(fold_dir, config.graphs_dir, config.manifest_path,
                    folder / "look_inside_sparra_fold0")
    print(f"\nTable 1 ({config.report_dir / 'table1.md'}):\n{to_markdown(table)}")


def _pooled_risk_groups(config: StudyConfig, manifest: Manifest, modalities: Sequence[str],
                        km_model: str, rule: str) -> dict[str, Any]:
    """Risk groups of ``km_model`` per aggregator, pooled over folds.

    Each fold's test risks are shifted by that fold's training threshold (mean or median of
    its training risks, as in the paper), so every test subject is classified by its own
    fold's model and threshold; pooled, the threshold is 0.
    """
    from sksurv.util import Surv

    from radiograph.survival import stratify_risk

    subjects = manifest.by_id()
    groups = {}
    for aggregator in config.aggregators:
        folder = config.models_dir / aggregator / "+".join(modalities)
        shifted, ids = [], []
        for risks_path in sorted(folder.glob("fold_*/baseline_risks.csv")):
            risks = pd.read_csv(risks_path)
            risks = risks[risks["model"] == km_model]
            train = risks[risks["split"] == "train"]["risk"].to_numpy()
            test = risks[risks["split"] == "test"]
            threshold = np.mean(train) if rule == "mean" else np.median(train)
            shifted.append(test["risk"].to_numpy() - threshold)
            ids += list(test["subject_id"].astype(str))
        if not ids:
            continue
        y = Surv.from_arrays([bool(subjects[s].event) for s in ids], [subjects[s].time for s in ids])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            groups[f"{aggregator} + {km_model}"] = stratify_risk(
                np.zeros(1), np.concatenate(shifted), y, rule="mean")
    return groups
