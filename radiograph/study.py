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
                intervals and paired comparisons (concordance_pooled.csv,
                comparisons_pooled.{csv,md}, comparisons_cv.{csv,md}, risk_groups.csv;
                for classification auc_pooled.csv, threshold_metrics.csv, calibration and
                decision curves), forest plots, report/index.html (everything on one page),
                report/look_inside_sparra_fold0/ (node importance), report/stage_seconds.json

Every stage resumes: a subject, fold or baseline whose output exists is not redone, so a
killed study restarts where it stopped. Per-subject failures are reported and the study goes
on with the subjects that remain (a subject without features lacks that modality).

Run it with ``radiograph study CONFIG.yaml`` (the config is checked whole by
:mod:`radiograph.study_config`, then :mod:`radiograph.preflight` checks files, weights, device
and disk); ``radiograph report OUT_DIR`` redraws the report from the saved results.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from radiograph.io.atomic import atomic_open, read_json, write_json
from radiograph.lock import LockHolder, folder_lock
from radiograph.manifest import Manifest, load_manifest
from radiograph.provenance import (
    Provenance,
    begin_outputs,
    make_provenance,
    prepare_rerun,
    record_outputs,
)
from radiograph.runner import (
    Backend,
    RunRecord,
    allowed_failures,
    default_backend,
    run_cohort,
)
from radiograph.study_config import (  # noqa: F401 - load_study_config: callers import it here
    StudyConfig,
    StudyConfigError,
    load_study_config,
)

#: The subjects left out of the study, under ``report/``: one row per failed per-subject task.
EXCLUDED_CSV = "excluded_subjects.csv"
EXCLUDED_COLUMNS = ("subject_id", "stage", "error")


class SubjectsFailedError(RuntimeError):
    """More subjects failed than the study allows; raised after every stage has run.

    Attributes:
        excluded: the left-out subjects (:data:`EXCLUDED_COLUMNS`, as in
            ``report/excluded_subjects.csv``).
        results: the long results table of the subjects that remained.
    """

    def __init__(self, message: str, excluded: pd.DataFrame, results: pd.DataFrame):
        super().__init__(message)
        self.excluded = excluded
        self.results = results


def check_failures(
    excluded: pd.DataFrame,
    total: int,
    allow_failures: int | float | None,
    listed_in: Path,
    scope: str,
    results: pd.DataFrame,
) -> None:
    """Print the left-out subjects, or raise when more were left out than allowed.

    Args:
        excluded: the left-out subjects (:data:`EXCLUDED_COLUMNS`: subject_id, stage, error).
        total: subjects the run started with.
        allow_failures: a count or a fraction of ``total``
            (:func:`radiograph.runner.allowed_failures`).
        listed_in: the file that lists them (named in the message).
        scope: what they were left out of (``"the study"``, ``"an analysis"``).
        results: what the run produced from the others (carried by the error).

    Raises:
        SubjectsFailedError: more distinct subjects in ``excluded`` than allowed.
    """
    failed = excluded["subject_id"].nunique()
    if not failed:
        return
    allowed = allowed_failures(allow_failures, total)
    summary = (
        f"{failed} of {total} subjects left out of {scope} "
        f"(at most {allowed} allowed by allow_failures {allow_failures}), see {listed_in}:\n"
        + "\n".join(
            f"  {row.subject_id} ({row.stage}): {row.error}"
            for row in excluded.itertuples(index=False)
        )
    )
    if failed > allowed:
        raise SubjectsFailedError(summary, excluded, results)
    print(summary, file=sys.stderr)


def run_study(
    config: StudyConfig,
    *,
    progress: bool = True,
    wait: bool = False,
    allow_failures: int | float | None = None,
    command: str | None = None,
    on_wait: Callable[[LockHolder | None], None] | None = None,
    backend: Backend | None = None,
) -> pd.DataFrame:
    """Run every stage (skipping finished work) holding the lock of ``config.out_dir``;
    returns the long results table. The resolved config is saved first as
    ``out_dir/study.yaml`` (:data:`STUDY_YAML`), which ``radiograph report`` reads.

    Subjects that fail a per-subject stage are left out, the rest of the study runs, and
    ``report/excluded_subjects.csv`` lists them (subject_id, stage, error; header only when
    none failed).

    Args:
        config: the study.
        progress: show progress bars.
        wait: when another run holds ``out_dir``, wait for it instead of failing.
        allow_failures: failed subjects accepted, a count or a fraction of the cohort
            (None: ``config.allow_failures``).
        command: recorded as the lock holder's command (default: this process's command line).
        on_wait: called once with the holder when ``wait`` has to wait.
        backend: where the per-subject stages run (None: local processes, ``config.workers``).

    Raises:
        radiograph.lock.LockedError: another run holds ``out_dir`` (and not ``wait``).
        SubjectsFailedError: after the report, when more subjects failed than allowed.
    """
    allow = config.allow_failures if allow_failures is None else allow_failures
    with folder_lock(config.out_dir, wait=wait, what=command, on_wait=on_wait):
        save_config(config)
        return _run_study(config, progress, allow, backend or default_backend(config.workers))


def save_config(config: StudyConfig) -> None:
    """Write the resolved config to ``out_dir/study.yaml`` (:data:`STUDY_YAML`), unless that
    file already holds it (a rerun rewrites nothing before the report)."""
    path = config.out_dir / STUDY_YAML
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        with atomic_open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


#: The resolved config of the study, saved under its ``out_dir``.
STUDY_YAML = "study.yaml"


def _run_study(
    config: StudyConfig, progress: bool, allow_failures: int | float, backend: Backend
) -> pd.DataFrame:
    timer = StageTimer()
    with timer("cohort"):
        manifest = prepare_cohort(config, backend)
    print(manifest.summary())
    records: list[RunRecord] = []
    if config.pathology is not None and "pathology" in config.modalities_in_use():
        with timer("pathology features"):
            records.append(extract_pathology(config, manifest, backend, progress))
        _print_reports(records[-1:])
    if config.radiology is not None and "radiology" in config.modalities_in_use():
        with timer("radiology features"):
            records.append(extract_radiology(config, manifest, backend, progress))
        _print_reports(records[-1:])
    with timer("graphs"):
        graphs = build_graphs(config, backend, progress)
    _print_reports(graphs)
    records += graphs
    excluded = excluded_subjects(records)
    with atomic_open(config.report_dir / EXCLUDED_CSV, "w", newline="") as fh:
        excluded.to_csv(fh, index=False)
    with timer("training"):
        trained = train_models(config, progress)
    with timer("baselines"):
        results = fit_baselines(config, manifest, trained, progress)
    with timer("report"):
        write_report(config, manifest, results)
    timer.save(config.report_dir / "stage_seconds.json")
    print(timer.table())
    check_failures(
        excluded,
        len(manifest.subjects),
        allow_failures,
        config.report_dir / EXCLUDED_CSV,
        "the study",
        results,
    )
    return results


def _print_reports(records: Sequence[RunRecord]) -> None:
    """One summary line per per-subject stage (done, skipped, failed), and its failures on
    stderr: what a log shows where the progress bars are off (not a terminal)."""
    for record in records:
        print(record.report(), file=sys.stderr if record.failed else sys.stdout, flush=True)


def excluded_subjects(records: Sequence[RunRecord]) -> pd.DataFrame:
    """The failed tasks of the study's per-subject stages as :data:`EXCLUDED_COLUMNS`: the
    subject (from the task key: ``subject/slide`` for pathology, ``modality/subject`` for the
    graph stages, the subject itself for radiology), the stage, and the error's first line."""
    rows = []
    for record in records:
        for key, error in record.failed:
            graph_stage = record.stage.startswith("graphs")
            subject = key.partition("/")[2] if graph_stage else key.partition("/")[0]
            rows.append((subject, record.stage, next(iter(error.splitlines()), "")))
    return pd.DataFrame(rows, columns=list(EXCLUDED_COLUMNS))


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
        from radiograph.synth import SynthParams, make_cohort

        options = dict(config.cohort["synthetic"] or {})
        subjects = int(options.pop("subjects", 60))
        seed = int(options.pop("seed", 0))
        params = SynthParams(signal=options.pop("signal", "abundance"))
        if "slide_size" in options:
            options["slide_size"] = tuple(options["slide_size"])
        make_cohort(
            config.manifest_path.parent, subjects, seed, params=params, backend=backend, **options
        )
    return load_manifest(config.manifest_path)


def extract_pathology(
    config: StudyConfig, manifest: Manifest, backend: Backend, progress: bool
) -> RunRecord:
    """Slides -> patch features (``features/pathology``), one slide at a time in this process
    (the encoder stays loaded; tile reading runs in DataLoader workers)."""
    from radiograph.pathology.extract import ExtractionConfig, extract_cohort

    extraction = ExtractionConfig(**(config.pathology or {}))
    return extract_cohort(manifest, config.out_dir, extraction, progress=progress)


def extract_radiology(
    config: StudyConfig, manifest: Manifest, backend: Backend, progress: bool
) -> RunRecord:
    """CT + mask -> unit features (``features/radiology``). Habitat units without a given
    model fit one on every subject's tumour voxels (unsupervised: no outcome is used).

    The fitted ``habitat_model.json`` has a provenance record (:func:`habitat_provenance`):
    it is refitted when a subject it is fitted on, one of their volumes or masks, or a setting
    of the fit changed; a refitted model changes every subject's features (it is an input of
    each), so they and everything downstream are redone.
    """
    from radiograph.provenance import discard, is_current, write_provenance
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
        fit_config = RadiologyConfig(**{**options, "units": "grid"})
        expected = habitat_provenance(jobs, fit_config)
        current, reason = is_current(model_path, expected)
        if not current:
            if model_path.exists():
                print(f"habitat model: refitting ({reason})", flush=True)
            discard(model_path)
            model, failures = fit_habitat_model(jobs, fit_config, progress=progress)
            model.save(model_path)
            write_provenance(model_path, expected)
            for subject, error in failures:
                print(f"habitat fit: left out {subject}: {error}", file=sys.stderr)
        options["habitat_model"] = str(model_path)
    return extract_cohort(
        jobs, config.out_dir, RadiologyConfig(**options), backend=backend, progress=progress
    )


def habitat_provenance(jobs: Sequence[Any], config: Any) -> Provenance:
    """What the study's habitat model is fitted on: the fingerprints of every subject's
    volume(s) and mask (named ``<subject>/volume_<i>``, ``<subject>/mask``; a subject added
    or removed changes the names) and the settings of the fit (the volume loading options,
    the seed and the candidate K).

    Args:
        jobs: the :class:`radiograph.radiology.extract.RadiologyJob` s the model is fitted on.
        config: the :class:`radiograph.radiology.config.RadiologyConfig` of the fit.
    """
    from radiograph.radiology.config import DEFAULT_K_RANGE

    files: dict[str, Path] = {}
    for job in jobs:
        files.update({f"{job.subject_id}/volume_{i}": p for i, p in enumerate(job.volume_paths)})
        files[f"{job.subject_id}/mask"] = job.mask_path
    settings = {
        "spacing_mm": config.spacing_mm,
        "resample_mask": config.resample_mask,
        "mask_label": config.mask_label,
        "hu_window": config.hu_window,
        "seed": config.seed,
        "k_range": DEFAULT_K_RANGE,
        "modalities": {job.subject_id: job.modality for job in jobs},
    }
    return make_provenance(settings, files=files)


def build_graphs(config: StudyConfig, backend: Backend, progress: bool) -> list[RunRecord]:
    """Features -> one graph per subject and modality (``graphs/<modality>/<subject>.pt``)."""
    from radiograph.graph.commands import build_subject_graph, graph_tasks

    options = dict(config.graphs)
    method = options.pop("method", "slidegraph")
    records = []
    for modality in config.modalities_in_use():
        tasks = graph_tasks(
            config.features_dir, config.graphs_dir, method, (modality,), options.get(modality) or {}
        )
        records.append(
            run_cohort(
                tasks,
                build_subject_graph,
                stage=f"graphs {modality}",
                record_path=config.graphs_dir / f"build-graphs-{modality}.json",
                backend=backend,
                progress=progress,
            )
        )
    return records


@dataclass(frozen=True)
class TrainedModel:
    """One aggregator trained on one modality set in one repeat (seed): its fold folders."""

    aggregator: str
    modalities: tuple[str, ...]
    fold_dirs: tuple[Path, ...]
    seed: int = 0


def train_models(config: StudyConfig, progress: bool) -> list[TrainedModel]:
    """Cross-validate every aggregator on every modality set, for each seed of the repeated
    cross-validation; the models of one seed share one splits file.

    The graphs of a modality set are loaded once and shared by its aggregators and seeds
    (:func:`radiograph.train.trainer.load_training_data`), then released before the next set:
    memory holds one modality set's graphs at a time. Returns the models in (seed, modality
    set, aggregator) order.
    """
    from radiograph.train.trainer import format_results, load_training_data, run_cross_validation

    trained = {}
    for modalities in config.modality_sets:
        data = None
        for seed in config.seeds:
            for aggregator in config.aggregators:
                train_config = config.train_config(aggregator, modalities, seed)
                if data is None:
                    data = load_training_data(train_config, progress=progress)
                repeat = f" (seed {seed})" if len(config.seeds) > 1 else ""
                print(f"-- {aggregator} on {' + '.join(modalities)}{repeat}", flush=True)
                results = run_cross_validation(train_config, data=data, progress=progress)
                print(format_results(results))
                trained[seed, modalities, aggregator] = TrainedModel(
                    aggregator, modalities, tuple(r.fold_dir for r in results), seed
                )
    return [
        trained[seed, modalities, aggregator]
        for seed in config.seeds
        for modalities in config.modality_sets
        for aggregator in config.aggregators
    ]


def fit_baselines(
    config: StudyConfig, manifest: Manifest, trained: Sequence[TrainedModel], progress: bool
) -> pd.DataFrame:
    """Fit the survival baselines on each fold's subject vectors; returns long results.

    Per fold, the baselines see only the training subjects' vectors (scaling, screening and
    inner-CV tuning included) and are evaluated on the test subjects. Results and test risks
    are cached in ``fold_<k>/baselines.csv`` and ``fold_<k>/baseline_risks.csv``, each with a
    provenance record (:func:`baselines_provenance`); a fold whose embeddings or baselines
    settings changed since is refitted, and how many is printed. Warnings of the hundreds of
    inner-CV fits (scikit-survival's overflows at weak penalties, screening's features without
    a finite estimate) are summarised at the end, one line per source.
    """
    from radiograph.runner import Task

    tasks = [
        Task(
            str(fold_dir.relative_to(config.models_dir)),
            (fold_dir / "baselines.csv", fold_dir / "baseline_risks.csv"),
            (model, fold_dir),
            baselines_provenance(config, fold_dir, model.seed),
        )
        for model in trained
        for fold_dir in model.fold_dirs
    ]
    changes = prepare_rerun("baselines", tasks, noun="folds")
    if changes:
        print(changes, flush=True)
    frames = []
    with warnings.catch_warnings(record=True) as caught:
        for task in tasks:
            model, fold_dir = task.payload
            results_path, risks_path = task.outputs
            if not task.is_complete():
                fit_fold = _fold_classifiers if config.task == "classification" else _fold_baselines
                results, risks = fit_fold(config, manifest, fold_dir, model.seed)
                begin_outputs(task.outputs, task.provenance)
                with atomic_open(risks_path, "w", newline="") as fh:
                    risks.to_csv(fh, index=False)
                with atomic_open(results_path, "w", newline="") as fh:
                    results.to_csv(fh, index=False)
                record_outputs(task.outputs, task.provenance)
            frame = pd.read_csv(results_path)
            frame.insert(0, "extractor", _extractor_label(config, model.modalities))
            frame.insert(1, "modality", " + ".join(model.modalities))
            frame.insert(2, "aggregator", model.aggregator)
            frame.insert(4, "seed", model.seed)
            frame.insert(5, "fold", int(fold_dir.name.split("_")[-1]))
            frames.append(frame)
    if caught:
        print(summarise_warnings(caught, "baselines"), file=sys.stderr)
    return pd.concat(frames, ignore_index=True)


def baselines_provenance(config: StudyConfig, fold_dir: Path, seed: int) -> Provenance:
    """What a fold's baselines are made from: the fingerprint of its ``embeddings.npz``, the
    fold's digest (``summary.json``: training settings, split, targets, graphs) and the
    settings the baselines use (``baselines``, ``report.n_boot``, the repeat's seed, the
    task)."""
    summary = read_json(fold_dir / "summary.json")
    settings = {
        "baselines": config.baselines,
        "n_boot": int(config.report.get("n_boot", 0)),
        "seed": seed,
        "task": config.task,
    }
    return make_provenance(
        settings,
        files={"embeddings": fold_dir / "embeddings.npz"},
        upstream={"fold": str(summary.get("fold_digest", ""))},
    )


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
    lines = [
        f"{stage}: {len(caught)} warning(s) from {len(groups)} source(s), most frequent first:"
    ]
    for (filename, lineno, category), messages in sorted(
        groups.items(), key=lambda kv: -len(kv[1])
    ):
        lines.append(f"  {len(messages):5d} x {filename}:{lineno} {category}: {messages[0]}")
    return "\n".join(lines)


def _fold_baselines(
    config: StudyConfig, manifest: Manifest, fold_dir: Path, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The survival baselines of one fold (:func:`radiograph.survival.fit_fold_baselines`) on
    its subject vectors (``embeddings.npz``); problems are printed, one line each.

    Returns:
        Long metrics (model, metric, value) and every subject's risk (model, subject_id,
        split, risk).
    """
    from sksurv.util import Surv

    from radiograph.survival import BASELINES, fit_fold_baselines

    options = dict(config.baselines)
    names = options.pop("models", BASELINES)
    embeddings = np.load(fold_dir / "embeddings.npz")
    subjects = manifest.by_id()
    ids = [str(s) for s in embeddings["subject_ids"]]
    test = np.asarray(embeddings["split"]) == "test"
    y = Surv.from_arrays([bool(subjects[s].event) for s in ids], [subjects[s].time for s in ids])
    fitted = fit_fold_baselines(
        embeddings["x"],
        y,
        test,
        names=names,
        seed=seed,
        patient_ids=[subjects[s].patient_id for s in ids],
        n_boot=int(config.report.get("n_boot", 0)),
        **options,
    )
    for note in fitted.notes:
        print(f"baselines on {fold_dir}: {note}", file=sys.stderr)
    columns = ["model", "subject_id", "split", "risk"]
    risks = [
        pd.DataFrame(
            {
                "model": name,
                "subject_id": ids,
                "split": np.where(test, "test", "train"),
                "risk": risk,
            }
        )
        for name, risk in fitted.risks.items()
    ]
    risks = pd.concat(risks, ignore_index=True) if risks else pd.DataFrame(columns=columns)
    return fitted.metrics, risks[columns]


def _extractor_label(config: StudyConfig, modalities: Sequence[str]) -> str:
    names = {
        "pathology": (config.pathology or {}).get("encoder", "efficientnet-lite0"),
        "radiology": (config.radiology or {}).get("features", "pyradiomics"),
    }
    return " + ".join(str(names[m]) for m in modalities)


def write_report(config: StudyConfig, manifest: Manifest, results: pd.DataFrame) -> None:
    """Long results, Table 1 (CSV/Markdown/LaTeX), Fig. 2-4, the intervals and comparisons and
    SPARRA's node importance of the top- and bottom-risk test subjects of fold 0
    (``look_inside_sparra_fold0/``) under ``report/``, then ``report/index.html``.

    The statistics and figures are made again only when the fold results, the per-subject
    risks or the report settings changed (:func:`report_inputs`), the node importance pictures
    when SPARRA's fold 0 changed (:mod:`radiograph.report.cache`); a rerun without changes
    keeps them and rewrites only the tables and the page.
    """
    from radiograph.report import table1, to_markdown, write_table
    from radiograph.report.cache import reuse_or_make
    from radiograph.stats.discrimination import CLASSIFICATION_METRICS
    from radiograph.survival import SURVIVAL_METRICS

    folder = config.report_dir
    classification = config.task == "classification"
    with atomic_open(folder / "results.csv", "w", newline="") as fh:
        results.to_csv(fh, index=False)
    point = results[~results["metric"].str.contains("_ci_")]
    metrics = CLASSIFICATION_METRICS if classification else SURVIVAL_METRICS
    table = table1(point, metrics=list(metrics))
    write_table(table, folder / "table1")
    risks = long_risks(config, manifest)
    made, reason = reuse_or_make(
        folder,
        "statistics",
        report_inputs(config, manifest, results, risks),
        lambda: _statistics_and_figures(config, manifest, results, risks),
    )
    if not made:
        print(
            "report: statistics and figures kept, made from the same fold results, risks and "
            f"report settings (recorded in {folder / '.provenance'})",
            flush=True,
        )
    elif reason != "no record":
        print(f"report: statistics and figures redone ({reason})", flush=True)
    if "sparra" in config.aggregators:
        _look_inside_fold0(config)
    print(f"\nTable 1 ({config.report_dir / 'table1.md'}):\n{to_markdown(table)}")
    from radiograph.report.html import write_html_report

    write_html_report(config, manifest, results)


def report_inputs(
    config: StudyConfig, manifest: Manifest, results: pd.DataFrame, risks: pd.DataFrame
) -> dict[str, Any]:
    """What the report's statistics and figures are computed from: the digests
    (:func:`radiograph.report.cache.frame_digest`) of the long fold results and of the
    per-subject risks (:func:`long_risks`), and the settings they use (``report``, seeds,
    modality sets, aggregators, task, folds, the time unit, the radiograph version)."""
    from radiograph import __version__
    from radiograph.report.cache import frame_digest

    settings = {
        "report": config.report,
        "seeds": config.seeds,
        "task": config.task,
        "modality_sets": config.modality_sets,
        "aggregators": config.aggregators,
        "folds": config.training.get("folds", 5),
        "time_unit": manifest.time_unit,
        "radiograph": __version__,
    }
    return {"results": frame_digest(results), "risks": frame_digest(risks), "settings": settings}


def _statistics_and_figures(
    config: StudyConfig, manifest: Manifest, results: pd.DataFrame, risks: pd.DataFrame
) -> list[Path]:
    """Fig. 2-4 and the statistics of the report; returns the files written."""
    from radiograph.report import plot_fold_bands, plot_metric_bars, plot_risk_groups
    from radiograph.report.cache import with_twins

    folder = config.report_dir
    point = results[~results["metric"].str.contains("_ci_")]
    figures = []
    for modalities in config.modality_sets:
        subset = point[point["modality"] == " + ".join(modalities)]
        slug = "_".join(modalities)
        figures += [folder / f"fig2_bars_{slug}.png", folder / f"fig3_bands_{slug}.png"]
        plot_metric_bars(subset, figures[-2])
        plot_fold_bands(subset, figures[-1])
    if config.task == "classification":
        written = write_classification_statistics(config, risks)
        written += write_cv_comparisons(config, results, risks, metric="auroc")
    else:
        full = max(config.modality_sets, key=len)
        groups = _pooled_risk_groups(
            config,
            risks,
            full,
            config.report.get("km_model", "coxph"),
            config.report.get("risk_rule", "mean"),
        )
        if groups:
            figures.append(folder / f"fig4_km_{'_'.join(full)}.png")
            plot_risk_groups(groups, figures[-1], time_unit=manifest.time_unit)
        written = write_statistics(config, results, risks)
    return [*with_twins(figures), *written]


def _look_inside_fold0(config: StudyConfig) -> None:
    """SPARRA's node importance pictures of fold 0 of the first seed on the largest modality
    set (``report/look_inside_sparra_fold0/``), drawn again only when that fold (its digest,
    predictions and importance files) or the manifest changed."""
    from radiograph.provenance import file_fingerprint
    from radiograph.report.cache import reuse_or_make, with_twins

    full = max(config.modality_sets, key=len)
    fold_dir = config.seed_dir(config.seeds[0]) / "sparra" / "+".join(full) / "fold_0"
    out = config.report_dir / "look_inside_sparra_fold0"
    summary = fold_dir / "summary.json"
    predictions = fold_dir / "predictions.csv"
    parts = {
        "fold": read_json(summary).get("fold_digest") if summary.exists() else None,
        "predictions": file_fingerprint(predictions) if predictions.exists() else None,
        "importance": sorted(p.name for p in fold_dir.glob("importance/*.npz")),
        "manifest": file_fingerprint(config.manifest_path),
        "graphs": config.graphs_dir,
    }

    def make() -> list[Path]:
        from radiograph.train.look_inside import look_inside  # matplotlib: only when drawing

        return with_twins(look_inside(fold_dir, config.graphs_dir, config.manifest_path, out))

    reuse_or_make(config.report_dir, "look_inside_sparra_fold0", parts, make)


def write_statistics(config: StudyConfig, results: pd.DataFrame, risks: pd.DataFrame) -> list[Path]:
    """The study's intervals and paired comparisons under ``report/``; returns the files
    written (none without test predictions):

    - ``concordance_pooled.csv``: Harrell's C of each aggregator x baseline (and their
      average) on the pooled out-of-fold test predictions, with a patient-level bootstrap
      interval (``report.pooled_boot`` resamples, default 1000);
    - ``comparisons_pooled.{csv,md}``: every pair of aggregators on the same test subjects
      (Kang et al. 2015 and the paired bootstrap per baseline; the paired bootstrap for the
      average over baselines);
    - ``comparisons_cv.{csv,md}``: per-fold paired differences of the C-index over every
      repeat and fold with the corrected resampled t-test (Nadeau & Bengio 2003);
    - ``risk_groups.csv``: per fold and pooled, the hazard ratio of the high- vs low-risk test
      subjects at the training fold's threshold (``report.risk_rule``: mean, median or
      optimal) for the ``report.km_model`` baseline.
    """
    from radiograph.report.comparisons import (
        aggregator_comparisons,
        fold_risk_groups,
        pooled_concordance,
    )
    from radiograph.report.tables import comparisons_to_markdown

    folder = config.report_dir
    n_boot = int(config.report.get("pooled_boot", 1000))
    level = float(config.report.get("level", 0.95))
    seed = config.seeds[0]
    test = risks[risks["split"] == "test"]
    if test.empty:
        return []
    concordance = pooled_concordance(risks, n_boot=n_boot, seed=seed, level=level)
    pairs = aggregator_comparisons(risks, n_boot=n_boot, seed=seed, level=level)
    groups = fold_risk_groups(
        risks,
        config.report.get("km_model", "coxph"),
        rule=config.report.get("risk_rule", "mean"),
        level=level,
    )
    written = []
    for name, frame in (
        ("concordance_pooled", concordance),
        ("comparisons_pooled", pairs),
        ("risk_groups", groups),
    ):
        written.append(folder / f"{name}.csv")
        with atomic_open(written[-1], "w", newline="") as fh:
            frame.to_csv(fh, index=False)
    written.append(folder / "comparisons_pooled.md")
    with atomic_open(written[-1], "w") as fh:
        fh.write(comparisons_to_markdown(pairs))
    return written + write_cv_comparisons(config, results, risks, metric="c_index")


def write_cv_comparisons(
    config: StudyConfig, results: pd.DataFrame, risks: pd.DataFrame, *, metric: str
) -> list[Path]:
    """``report/comparisons_cv.{csv,md}``: the per-fold paired differences of ``metric``
    between every pair of aggregators over every repeat and fold, with the corrected
    resampled t-test (Nadeau & Bengio 2003), per downstream model and for their average.
    Returns the two files."""
    from radiograph.report.comparisons import cross_validated_comparisons
    from radiograph.report.tables import comparisons_to_markdown

    folder = config.report_dir
    sizes = (
        risks.groupby(["seed", "modality", "aggregator", "fold", "model", "split"])
        .size()
        .unstack("split")
        .reset_index()
        .rename(columns={"train": "n_train", "test": "n_test"})
    )
    cv = cross_validated_comparisons(
        results, sizes, metric=metric, level=float(config.report.get("level", 0.95))
    )
    with atomic_open(folder / "comparisons_cv.csv", "w", newline="") as fh:
        cv.to_csv(fh, index=False)
    with atomic_open(folder / "comparisons_cv.md", "w") as fh:
        fh.write(comparisons_to_markdown(cv))
    if not cv.empty:
        average = cv[cv["model"] == "avg"]
        print(
            f"\nPaired comparisons of the aggregators ({metric}, average of the downstream "
            f"models; corrected resampled t-test over {len(config.seeds)} seed(s) x "
            f"{config.training.get('folds', 5)} folds; {folder / 'comparisons_cv.md'}):\n"
            f"{comparisons_to_markdown(average)}"
        )
    return [folder / "comparisons_cv.csv", folder / "comparisons_cv.md"]


def long_risks(config: StudyConfig, manifest: Manifest) -> pd.DataFrame:
    """Every baseline's train and test risks of every repeat, modality set, aggregator and
    fold, with the subjects' targets and patients
    (:data:`radiograph.report.comparisons.RISK_COLUMNS`)."""
    from radiograph.report.comparisons import RISK_COLUMNS
    from radiograph.train.data import class_names

    subjects = manifest.by_id()
    frames = []
    for seed in config.seeds:
        for modalities in config.modality_sets:
            for aggregator in config.aggregators:
                folder = config.seed_dir(seed) / aggregator / "+".join(modalities)
                for path in sorted(folder.glob("fold_*/baseline_risks.csv")):
                    frame = pd.read_csv(path, dtype={"subject_id": str})
                    frame["seed"], frame["modality"] = seed, " + ".join(modalities)
                    frame["aggregator"] = aggregator
                    frame["fold"] = int(path.parent.name.split("_")[-1])
                    frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*RISK_COLUMNS, "label"])
    risks = pd.concat(frames, ignore_index=True)
    risks["patient_id"] = [subjects[s].patient_id for s in risks["subject_id"]]
    risks["time"] = [subjects[s].time for s in risks["subject_id"]]
    risks["event"] = [bool(subjects[s].event) for s in risks["subject_id"]]
    classes = class_names({s.label for s in manifest.subjects if s.label is not None})
    risks["label"] = [
        classes.index(subjects[s].label) if subjects[s].label is not None else -1
        for s in risks["subject_id"]
    ]
    return risks[[*RISK_COLUMNS, "label"]]


def _pooled_risk_groups(
    config: StudyConfig, risks: pd.DataFrame, modalities: Sequence[str], km_model: str, rule: str
) -> dict[str, Any]:
    """Risk groups of ``km_model`` per aggregator, pooled over the folds of the first repeat.

    Each fold's test risks are shifted by that fold's training threshold (mean or median of
    its training risks, as in the paper, or the training fold's maximally selected log-rank
    cut-point), so every test subject is classified by its own fold's model and threshold;
    pooled, the threshold is 0.
    """
    from sksurv.util import Surv

    from radiograph.report.comparisons import training_threshold
    from radiograph.survival import stratify_risk

    chosen = risks[
        (risks["model"] == km_model)
        & (risks["seed"] == config.seeds[0])
        & (risks["modality"] == " + ".join(modalities))
    ]
    groups = {}
    for aggregator, block in chosen.groupby("aggregator", sort=False):
        shifted, tests = [], []
        for _, fold_rows in block.groupby("fold", sort=True):
            train = fold_rows[fold_rows["split"] == "train"]
            test = fold_rows[fold_rows["split"] == "test"]
            shifted.append(test["risk"].to_numpy(float) - training_threshold(train, rule))
            tests.append(test)
        test = pd.concat(tests)
        y = Surv.from_arrays(test["event"].to_numpy(bool), test["time"].to_numpy(float))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            groups[f"{aggregator} + {km_model}"] = stratify_risk(
                np.zeros(1), np.concatenate(shifted), y, rule="mean"
            )
    return groups


def _fold_classifiers(
    config: StudyConfig, manifest: Manifest, fold_dir: Path, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The classifier baselines of one fold (``training.task: classification``): each fitted
    on the training fold's subject vectors (inner-CV tuning included), evaluated on the test
    fold at the training fold's Youden threshold.

    Returns:
        Long metrics (model, metric, value) and every subject's class-1 probability (columns
        model, subject_id, split, risk: the probability, so that the files of both tasks
        share one layout).
    """
    from radiograph.classify import DEFAULT_CLASSIFIERS, make_classifier, positive_probability
    from radiograph.stats.discrimination import CLASSIFICATION_METRICS, evaluate_classification
    from radiograph.train.data import class_names

    options = dict(config.baselines)
    names = options.pop("models", DEFAULT_CLASSIFIERS)
    grids = options.pop("grids", {}) or {}
    model_params = options.pop("model_params", {}) or {}
    inner_folds = int(options.pop("inner_folds", 5))
    n_jobs = options.pop("n_jobs", None)
    if options:
        raise StudyConfigError(
            f"{config.source}: key(s) {sorted(options)} under 'baselines' "
            "do not apply to classification (models, inner_folds, grids, "
            "model_params, n_jobs)"
        )
    n_boot = int(config.report.get("n_boot", 0))
    embeddings = np.load(fold_dir / "embeddings.npz")
    subjects = manifest.by_id()
    ids = [str(s) for s in embeddings["subject_ids"]]
    classes = class_names({s.label for s in manifest.subjects if s.label is not None})
    if len(classes) != 2:
        raise ValueError(
            f"{manifest.path}: the classification report needs two classes in "
            f"column 'label', found {list(classes)}"
        )
    label = np.array([classes.index(subjects[s].label) for s in ids])
    x = np.asarray(embeddings["x"], dtype=np.float64)
    test = np.asarray(embeddings["split"]) == "test"
    patients = np.array([subjects[s].patient_id for s in ids])
    rows, probs = [], []
    for name in names:
        model = make_classifier(
            name,
            seed=seed,
            inner_folds=inner_folds,
            grids=grids.get(name),
            model_params=model_params.get(name),
            n_jobs=n_jobs,
        )
        try:
            model.fit(x[~test], label[~test])
            prob = positive_probability(model, x)
            metrics = evaluate_classification(
                prob[~test],
                label[~test],
                prob[test],
                label[test],
                patient_ids=patients[test],
                n_boot=n_boot,
                seed=seed,
            )
        except ValueError as err:  # a fold with one class
            reason = str(err).strip().splitlines()[0]
            print(
                f"baselines: {name} on {fold_dir} failed, its metrics are N/A: {reason}",
                file=sys.stderr,
            )
            rows += [{"model": name, "metric": k, "value": np.nan} for k in CLASSIFICATION_METRICS]
            continue
        rows += [{"model": name, "metric": k, "value": v} for k, v in metrics.items()]
        probs.append(
            pd.DataFrame(
                {
                    "model": name,
                    "subject_id": ids,
                    "split": np.where(test, "test", "train"),
                    "risk": prob,
                }
            )
        )
    columns = ["model", "subject_id", "split", "risk"]
    probs = pd.concat(probs, ignore_index=True) if probs else pd.DataFrame(columns=columns)
    return pd.DataFrame(rows), probs[columns]


def write_classification_statistics(config: StudyConfig, probs: pd.DataFrame) -> list[Path]:
    """A classification study's statistics under ``report/``, on the pooled out-of-fold test
    probabilities of the first repeat (:mod:`radiograph.report.classification`); returns the
    files written:

    - ``auc_pooled.csv``: AUROC of each aggregator x classifier with DeLong's interval;
    - ``comparisons_pooled.{csv,md}``: DeLong's paired test of every pair of aggregators per
      classifier; ``delong_<modalities>.csv``: DeLong p-values between every aggregator x
      classifier;
    - ``threshold_metrics.csv``: accuracy, sensitivity, specificity, PPV, NPV, F1 (Wilson
      intervals) at each fold's training Youden threshold;
    - ``calibration.csv``, ``calibration_<modalities>.png``: intercept, slope,
      Hosmer-Lemeshow, Brier; ``decision_curves.csv``, ``decision_<modalities>.png``: net
      benefit with bootstrap bands (``report.km_model`` names the classifier drawn, default
      the first).
    """
    from radiograph.report.cache import with_twins
    from radiograph.report.classification import (
        auc_comparisons,
        calibration_curves,
        calibration_summary,
        decision_curves,
        delong_p_matrix,
        pooled_auc,
        threshold_metrics,
    )
    from radiograph.report.figures import plot_calibration_curves, plot_decision_curves
    from radiograph.report.tables import comparisons_to_markdown

    folder = config.report_dir
    level = float(config.report.get("level", 0.95))
    n_boot = int(config.report.get("pooled_boot", 1000))
    seed = config.seeds[0]
    probs = probs.rename(columns={"risk": "prob"})
    first = probs[probs["seed"] == seed]
    model = config.report.get("km_model") or str(first["model"].iloc[0])
    pairs = auc_comparisons(first, level=level)
    tables = {
        "auc_pooled": pooled_auc(probs, level=level),
        "comparisons_pooled": pairs,
        "threshold_metrics": threshold_metrics(probs, level=level),
        "calibration": calibration_summary(probs, level=level),
    }
    decision_frames = []
    thresholds = np.round(np.arange(0.05, 0.951, 0.05), 2)
    for modalities in config.modality_sets:
        label = " + ".join(modalities)
        slug = "_".join(modalities)
        tables[f"delong_{slug}"] = delong_p_matrix(first, seed, label).reset_index(names="model")
        title = f"{label}, {model} (pooled out-of-fold predictions)"
        plot_calibration_curves(
            calibration_curves(first, seed, label, model, level=level),
            folder / f"calibration_{slug}.png",
            title=title,
        )
        curves = decision_curves(
            first, seed, label, model, thresholds, n_boot=n_boot, boot_seed=seed, level=level
        )
        plot_decision_curves(curves, folder / f"decision_{slug}.png", title=title)
        decision_frames += [
            curve.to_frame().assign(modality=label, aggregator=aggregator, model=model)
            for aggregator, curve in curves.items()
        ]
    tables["decision_curves"] = pd.concat(decision_frames, ignore_index=True)
    written = [folder / f"{name}.csv" for name in tables]
    for path, frame in zip(written, tables.values()):
        with atomic_open(path, "w", newline="") as fh:
            frame.to_csv(fh, index=False)
    written.append(folder / "comparisons_pooled.md")
    with atomic_open(written[-1], "w") as fh:
        fh.write(comparisons_to_markdown(pairs))
    print(
        f"\nAUROC (DeLong 95% CI) and paired DeLong tests ({folder}):\n"
        f"{comparisons_to_markdown(pairs)}"
    )
    pngs = [
        folder / f"{kind}_{'_'.join(m)}.png"
        for m in config.modality_sets
        for kind in ("calibration", "decision")
    ]
    return written + with_twins(pngs)
