"""The multi-modal platinum-resistance study of seeds/000, one call: :func:`run_fusion_study`
(``radiograph study experiments/configs/habitat_fusion.yaml``).

**Input** (``config.cohort``, validated in full by :func:`read_cohort` before any model is
fitted): a CSV with one row per patient and the columns

- ``subject_id`` (unique), ``patient_id``, ``centre``, ``label`` (0/1);
- the declared clinical variables (:mod:`radiograph.fusion.clinical`);
- one column per MRI sequence (``config.sequences``) and ``mask``: ``.npy`` files relative to
  the CSV's folder, a (D, H, W) float volume per sequence, co-registered, and a bool tumour
  mask; all blank = no MRI; a mask with a blank sequence (or the reverse) is an error;
- ``patches``: a ``.npy`` (N, D) array of frozen patch features of the subject's slide; blank =
  no slide.

``radiograph synth --kind habitat-fusion`` writes exactly this table.

**Per design** (the configured ``design``: training centres with a stratified, patient-level
internal split, external centres; then, with ``leave_one_centre_out``, one design per centre
held out with all others training), fitted on the training subjects only:

1. habitat K-means (k by Calinski-Harabasz) on training MRI, applied to everyone; habitat
   features (:mod:`radiograph.fusion.habitat_features`);
2. the pathology slide signature (patch classifier and TF-IDF on training slides,
   :func:`radiograph.signature.slide_features.slide_features`);
3. the Clinic model (univariable -> multivariable logistic);
4. per feature modality (habitat, pathology): the selection chain and the classifier bank;
   ``outer_folds``-fold CV on the training subjects gives out-of-fold (OOF) probabilities, the
   classifier with the best OOF AUC is the modality's model, refitted on all training subjects;
5. stacking ensembles fitted once on the training OOF probabilities (plus the selected clinical
   predictors when C is in the ensemble) and applied unchanged elsewhere;
6. MHA fusion over the clinical, habitat and pathology tokens (padding mask for absent ones).

Training-cohort predictions are OOF (the ensembles': the meta-model on OOF inputs); each
model's threshold is Youden's on them. Within the training CV, the pathology signature (its
patch classifier sees labels) is refitted without the held-out fold; the habitat model and the
clinical encoder (no labels) are fitted once on all training subjects.

Written under ``out_dir/designs/<design>/``:
``split.csv``, ``predictions.csv`` (model, subject, cohort, label, prob), ``thresholds.csv``,
``selected_features.csv`` (modality, fold, feature), ``classifier_cv.csv``, ``clinical_or.csv``,
``habitat_model.json``, ``habitat_absent.csv``, ``stage_times.csv`` and ``done.json`` (last; a
design with it and the same config is not recomputed). Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from radiograph.classify.baselines import make_classifier, positive_probability
from radiograph.fusion.clinical import ClinicalModel, check_clinical, fit_clinical_model
from radiograph.fusion.config import KIND, MODALITY_LETTERS, FusionStudyConfig
from radiograph.fusion.habitat_features import check_sequences, extract_habitat_features
from radiograph.fusion.mha import MHAClassifier
from radiograph.fusion.selection import make_selection_chain, selected_names
from radiograph.fusion.stacking import StackingEnsemble
from radiograph.io.atomic import atomic_open, read_json, write_json
from radiograph.preflight import PreflightReport
from radiograph.radiology.habitats import HabitatModel
from radiograph.runner import Backend, InProcessBackend, Task, default_backend, run_cohort
from radiograph.signature.slide_features import FEATURE_NAMES, PatchClassifier, slide_features
from radiograph.stats import auc_ci, choose_threshold

MAIN_DESIGN = "split"
MODALITIES = ("clinic", "habitat", "pathology")
UNIMODAL = {"clinic": "Clinic", "habitat": "Habitat", "pathology": "Pathology"}
MHA_MODEL = "MHA_CHP"


@dataclass
class Cohort:
    """The validated cohort (index ``subject_id``), MRI volumes and patch features in memory.

    Attributes:
        table: the CSV's rows with ``has_clinic``, ``has_habitat``, ``has_pathology`` added.
        volumes: subject -> (image (C, D, H, W) float64, normalised as configured, mask bool).
        patches: subject -> (N, D) patch features.
        source: the CSV path (for messages).
    """

    table: pd.DataFrame
    volumes: dict[str, tuple[np.ndarray, np.ndarray]]
    patches: dict[str, np.ndarray]
    source: Path


def read_cohort(config: FusionStudyConfig, *, load: bool = True) -> Cohort:
    """Check the whole cohort table (module docstring), then load its arrays.

    Every check runs before any array is read or any model is fitted: columns, unique ids,
    0/1 labels, every clinical cell (:func:`check_clinical`), every sequence and mask of a
    subject with MRI (:func:`check_sequences`), the patch files, and that each centre named in
    the design occurs. Past the columns (without which nothing else can be read), every kind
    of problem is reported together.

    Raises:
        ValueError: naming the file, and the subject and column of each bad cell.
    """
    source = Path(config.cohort)
    if not source.is_file():
        raise ValueError(f"cohort: {source} does not exist")
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    needed = ["subject_id", "patient_id", "centre", "label", *config.sequences, "mask", "patches"]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise ValueError(f"{source}: column(s) {absent} absent (needed: {needed})")
    problems: list[str] = []
    duplicated = table["subject_id"][table["subject_id"].duplicated()].tolist()
    if duplicated:
        problems.append(f"subject_id {duplicated[:5]} occur more than once")
    bad = table[~table["label"].isin(["0", "1"])]
    if len(bad):
        problems.append(
            f"subject {bad['subject_id'].iloc[0]}, column 'label': value "
            f"{bad['label'].iloc[0]!r} is not 0 or 1 ({len(bad)} such rows)"
        )
    try:
        check_clinical(table.replace("", np.nan), config.clinical, source=source)
    except ValueError as err:
        problems.append(str(err))
    root = source.parent
    mri_columns = [*config.sequences, "mask"]
    has_mri = (table[mri_columns] != "").any(axis=1)
    paths = {
        row.subject_id: {
            c: str(root / getattr(row, c)) if getattr(row, c) else "" for c in mri_columns
        }
        for row in table[has_mri].itertuples()
    }
    try:
        check_sequences(paths, mri_columns)
    except ValueError as err:
        problems.append(str(err))
    gone = [
        f"subject {s}, column 'patches': file {root / p} does not exist"
        for s, p in zip(table["subject_id"], table["patches"])
        if p and not (root / p).is_file()
    ]
    problems += gone[:20]
    try:
        config.design.check(table["centre"].tolist(), str(source))
    except ValueError as err:
        problems.append(str(err))
    if problems:
        raise ValueError(f"{source}:\n  " + "\n  ".join(problems))
    table = table.assign(
        label=table["label"].astype(int),
        has_clinic=True,
        has_habitat=has_mri.to_numpy(),
        has_pathology=(table["patches"] != ""),
    )
    table = table.set_index("subject_id", drop=False)
    volumes, patches = {}, {}
    if load:
        for sid in table.index[table["has_habitat"]]:
            volumes[sid] = _volume(root, table.loc[sid], config)
        for sid in table.index[table["has_pathology"]]:
            patches[sid] = np.load(root / table.at[sid, "patches"]).astype(np.float64)
    return Cohort(table, volumes, patches, source)


def preflight(config: FusionStudyConfig) -> PreflightReport:
    """The checks of ``radiograph study --check`` for this kind, in seconds (no array is
    read, nothing is fitted): the output folder is writable; the cohort table passes
    :func:`read_cohort` (columns, ids, labels, clinical cells, every sequence, mask and
    patch file exists, the design's centres occur), each of its problems listed; notes on the
    labels of the whole cohort and of the training centres (one class only, or fewer of the
    smaller class than ``outer_folds``)."""
    from radiograph.preflight import check_outcomes, error_lines, kind_preflight, list_problems

    def checks(found) -> None:
        try:
            cohort = read_cohort(config, load=False)
        except ValueError as err:
            list_problems(error_lines(err), found, prefix="key 'cohort': ")
            return
        table = cohort.table
        check_outcomes(found, f"cohort {cohort.source}", table["label"].tolist())
        home = table[table["centre"].astype(str).isin(config.design.train_centres)]
        check_outcomes(
            found,
            f"training centre(s) {list(config.design.train_centres)}",
            home["label"].tolist(),
            folds=config.outer_folds,
        )

    return kind_preflight(Path(config.out_dir), checks)


def _volume(root: Path, row: pd.Series, config: FusionStudyConfig) -> tuple[np.ndarray, np.ndarray]:
    image = np.stack([np.load(root / row[s]) for s in config.sequences]).astype(np.float64)
    mask = np.load(root / row["mask"]).astype(bool)
    if mask.shape != image.shape[1:] or not mask.any():
        raise ValueError(
            f"subject {row['subject_id']}, column 'mask': shape {mask.shape} vs "
            f"volume {image.shape[1:]}, {int(mask.sum())} tumour voxels"
        )
    if config.habitat.normalise == "background_median":
        background = np.median(image[:, ~mask], axis=1)
        image = image / np.where(background > 0, background, 1.0)[:, None, None, None]
    return image, mask


def designs(config: FusionStudyConfig, table: pd.DataFrame) -> dict[str, pd.Series]:
    """Design name -> cohort per subject (``train`` / ``internal`` / ``external`` / ``unused``):
    :data:`MAIN_DESIGN` from ``config.design``, then ``loco_<centre>`` per centre."""
    out = {MAIN_DESIGN: config.design.assign(table, source=str(config.cohort))}
    if config.leave_one_centre_out:
        centres = table["centre"].astype(str)
        for centre in sorted(set(centres)):
            out[f"loco_{centre}"] = pd.Series(
                np.where(centres == centre, "external", "train"), index=table.index
            )
    return out


@dataclass
class DesignResult:
    """Everything one design writes (module docstring), as tables."""

    predictions: pd.DataFrame
    thresholds: pd.DataFrame
    selected: pd.DataFrame
    classifier_cv: pd.DataFrame
    clinical_or: pd.DataFrame
    habitat_absent: pd.DataFrame
    stage_times: pd.DataFrame
    habitat_k: int = 0
    calinski_harabasz: dict[int, float] = field(default_factory=dict)


def run_fusion_study(
    config: FusionStudyConfig, options: object | None = None
) -> dict[str, DesignResult]:
    """Run every design (module docstring) and write the report (:mod:`radiograph.fusion.report`).

    Designs are independent: those not finished with this config run as tasks of
    ``options.backend`` (``radiograph study --workers N``; without it one process per core,
    at most one per design), each reading the cohort itself; without ``options`` (a call from
    Python) they run one after another in this process. A design runs on one thread (BLAS and
    OpenMP: K-means, the gradient boosting; torch: MHA): the models are small, and OpenMP's
    threads waiting on busy cores made the gradient boosting's grid search 25 times slower
    (35 s instead of 1.4 s per grid search on the 2-core machine while another job ran).
    Every stage prints one line (design, stage, wall and CPU seconds). A design that fails does
    not stop the others; the finished ones are kept (a rerun resumes) and the study then stops
    with the failures named.

    Args:
        config: the checked config.
        options: the ``radiograph study`` run options (:class:`radiograph.study_commands.
            RunOptions`; ``backend`` and ``progress`` are used), or None.

    Raises:
        RuntimeError: a design failed (its error is in the message).
    """
    from radiograph.fusion import report

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cohort = read_cohort(config)
    fingerprint = config_fingerprint(config)
    write_json(out / "config.json", {"kind": KIND, **_plain_config(config)})
    names = list(designs(config, cohort.table))
    todo = [name for name in names if _done_fingerprint(out / "designs" / name) != fingerprint]
    if todo:
        if options is None:
            backend: Backend = InProcessBackend()
        else:
            backend = getattr(options, "backend", None) or default_backend(
                min(len(todo), os.cpu_count() or 1)
            )
        tasks = [
            Task(
                key=name,
                outputs=(out / "designs" / name / "done.json",),
                payload=(config, name, fingerprint),
            )
            for name in todo
        ]
        print(f"habitat-fusion: {len(todo)} design(s) to fit ({', '.join(todo)}) on {backend.name}")
        record = run_cohort(
            tasks,
            _design_task,
            record_path=out / "designs_run.json",
            stage="designs",
            backend=backend,
            overwrite=True,
            progress=bool(getattr(options, "progress", False)),
        )
        if record.failed:
            raise RuntimeError(
                f"{len(record.failed)} design(s) failed (finished designs are kept; a rerun "
                "resumes): " + "; ".join(f"{name}: {error}" for name, error in record.failed)
            )
    results = {name: load_design(out / "designs" / name) for name in names}
    report.write_report(out, config, cohort.table, results)
    return results


def _done_fingerprint(folder: Path) -> str | None:
    """The config fingerprint a finished design recorded in its ``done.json``, else None."""
    done = folder / "done.json"
    return read_json(done).get("fingerprint") if done.is_file() else None


def _design_task(task: Task) -> None:
    """Fit one design (a :class:`radiograph.runner.Task` of :func:`run_fusion_study`): read
    the cohort, :func:`run_design`, then ``done.json`` with the config's fingerprint."""
    config, name, fingerprint = task.payload
    with threadpool_limits(limits=1):
        cohort = read_cohort(config)
        folder = Path(task.outputs[0]).parent
        run_design(config, cohort, designs(config, cohort.table)[name], folder)
    write_json(task.outputs[0], {"fingerprint": fingerprint, "design": name})


def config_fingerprint(config: FusionStudyConfig) -> str:
    """SHA-256 of the config and the cohort file's bytes: a design is reused only if both
    are unchanged."""
    digest = hashlib.sha256(json.dumps(_plain_config(config), sort_keys=True).encode())
    digest.update(Path(config.cohort).read_bytes())
    return digest.hexdigest()


def _plain_config(config: FusionStudyConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


TABLES = (
    "predictions",
    "thresholds",
    "selected",
    "classifier_cv",
    "clinical_or",
    "habitat_absent",
    "stage_times",
)


def load_design(folder: Path) -> DesignResult:
    """Read back what :func:`run_design` wrote."""
    frames = {
        t: pd.read_csv(folder / f"{t}.csv", keep_default_na=False, na_values=[""]) for t in TABLES
    }
    model = read_json(folder / "habitat_model.json")
    return DesignResult(
        **frames,
        habitat_k=int(model["k"]),
        calinski_harabasz={int(k): float(v) for k, v in model["calinski_harabasz"].items()},
    )


@dataclass
class _Modality:
    """One modality's fitted pieces: OOF and final probabilities, per-fold chains, the
    features from pieces fitted on all training subjects and, per outer fold, from pieces
    fitted without that fold (the pathology signature's patch classifier sees labels)."""

    oof: pd.Series
    final: pd.Series
    classifier: str
    fold_chains: list[Pipeline | None]
    final_chain: Pipeline | None
    features: pd.DataFrame
    fold_features: list[pd.DataFrame]


class _Clock:
    """Wall and process CPU seconds per stage (CPU time is the figure to compare on shared
    cores, where wall time depends on the other jobs), one printed line per finished stage."""

    def __init__(self, design: str) -> None:
        self.design = design
        self.rows: list[dict] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        row = {
            "stage": name,
            "seconds": round(time.perf_counter() - wall, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }
        self.rows.append(row)
        print(
            f"  design {self.design}: {name} {row['seconds']:.1f} s "
            f"(CPU {row['cpu_seconds']:.1f} s)",
            flush=True,
        )


def run_design(
    config: FusionStudyConfig, cohort: Cohort, assignment: pd.Series, folder: Path
) -> DesignResult:
    """Fit every model of one design on its training subjects; predict everyone; write."""
    folder.mkdir(parents=True, exist_ok=True)
    table = cohort.table.assign(cohort=assignment)
    table = table[table["cohort"] != "unused"]
    _write(folder / "split.csv", table[["subject_id", "patient_id", "centre", "cohort", "label"]])
    train = table[table["cohort"] == "train"]
    fold = _folds(train, config)
    clock = _Clock(folder.name)
    selected: list[dict] = []
    with clock.stage("habitat_fit"):
        model = HabitatModel.fit(
            [cohort.volumes[s] for s in train.index[train["has_habitat"]]],
            k_range=range(config.habitat.k_min, config.habitat.k_max + 1),
            voxels_per_subject=config.habitat.voxels_per_subject,
            seed=config.seed,
            n_init=config.habitat.n_init,
            subjects=list(train.index[train["has_habitat"]]),
            selection_voxels=config.habitat.selection_voxels,
        )
        model.save(folder / "habitat_model.json")
    with clock.stage("habitat_features"):
        mri = table.index[table["has_habitat"]]
        habitat = extract_habitat_features(
            model,
            {s: cohort.volumes[s] for s in mri},
            config.sequences,
            config.habitat.spacing_mm,
            radiomics=config.habitat.radiomics,
        )
        habitat_x = pd.DataFrame(habitat.values, index=list(habitat.ids), columns=habitat.names)
    with clock.stage("pathology_signature"):
        slides = table.index[table["has_pathology"]]
        train_slides = [s for s in train.index if s in set(slides)]
        labels = dict(zip(train.index, train["label"]))

        def signature(fit_slides: list[str]) -> pd.DataFrame:
            x, _, _ = slide_features(
                {s: cohort.patches[s] for s in slides},
                labels,
                fit_slides,
                classifier=PatchClassifier(C=config.patch_C, seed=config.seed),
            )
            return pd.DataFrame(x, index=list(slides), columns=FEATURE_NAMES)

        pathology_x = signature(train_slides)
        pathology_folds = [
            signature([s for s in train_slides if fold[s] != k]) for k in range(config.outer_folds)
        ]
    with clock.stage("clinic_model"):
        clinic, clinical_model = _clinic(config, table, fold, selected)
    fitted, cv_frames = {"clinic": clinic}, []
    for name, features, per_fold in (
        ("habitat", habitat_x, None),
        ("pathology", pathology_x, pathology_folds),
    ):
        with clock.stage(f"{name}_selection_and_bank"):
            fitted[name], cv = _feature_modality(
                config, name, features, table, fold, selected, per_fold
            )
        cv_frames.append(cv)
    preds = {UNIMODAL[m]: (fitted[m].oof, fitted[m].final) for m in MODALITIES}
    with clock.stage("stacking"):
        preds |= _stacking(config, table, fitted, clinical_model)
    with clock.stage("mha_fusion"):
        preds[MHA_MODEL] = _mha(config, table, fold, fitted)
    predictions, thresholds = _predictions(table, preds)
    thresholds["classifier"] = (
        thresholds["model"].map({UNIMODAL[m]: fitted[m].classifier for m in MODALITIES}).fillna("")
    )
    result = DesignResult(
        predictions=predictions,
        thresholds=thresholds,
        selected=pd.DataFrame(selected),
        classifier_cv=pd.concat(cv_frames, ignore_index=True),
        clinical_or=_odds_ratios(clinical_model),
        habitat_absent=pd.DataFrame(habitat.absent, columns=["subject_id", "habitat"]),
        stage_times=pd.DataFrame(clock.rows),
        habitat_k=model.k,
        calinski_harabasz=dict(model.calinski_harabasz),
    )
    for name in TABLES:
        _write(folder / f"{name}.csv", getattr(result, name))
    return result


def _write(path: Path, frame: pd.DataFrame) -> None:
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, index=False)


def _folds(train: pd.DataFrame, config: FusionStudyConfig) -> pd.Series:
    """Outer fold (0..K-1) of each training subject: stratified by label, grouped by patient."""
    splitter = StratifiedGroupKFold(config.outer_folds, shuffle=True, random_state=config.seed)
    fold = pd.Series(-1, index=train.index)
    for k, (_, test) in enumerate(splitter.split(train, train["label"], train["patient_id"])):
        fold.iloc[test] = k
    return fold


def _clinic(
    config: FusionStudyConfig, table: pd.DataFrame, fold: pd.Series, selected: list[dict]
) -> tuple[_Modality, ClinicalModel]:
    train = table.loc[fold.index]
    oof = pd.Series(np.nan, index=fold.index)
    for k in range(config.outer_folds):
        fit_rows, held = train[fold != k], train[fold == k]
        model = fit_clinical_model(
            fit_rows, fit_rows["label"], config.clinical, p_enter=config.clinical_p_enter
        )
        oof[held.index] = _clinic_proba(model, held, fit_rows["label"].mean())
        selected += [{"modality": "clinic", "fold": str(k), "feature": v} for v in model.kept]
    final = fit_clinical_model(
        train, train["label"], config.clinical, p_enter=config.clinical_p_enter
    )
    selected += [{"modality": "clinic", "fold": "final", "feature": v} for v in final.kept]
    others = table.drop(index=fold.index)
    probs = pd.Series(_clinic_proba(final, others, train["label"].mean()), index=others.index)
    features = final.encoder.transform(table)
    return _Modality(
        oof,
        probs,
        "logistic (univariable -> multivariable)",
        [],
        None,
        features,
        [features] * config.outer_folds,
    ), final


def _clinic_proba(model: ClinicalModel, rows: pd.DataFrame, prevalence: float) -> np.ndarray:
    """The clinical model's probabilities; the training prevalence when it kept no variable."""
    if not model.kept:
        return np.full(len(rows), prevalence)
    return model.predict_proba(rows)


def _feature_modality(
    config: FusionStudyConfig,
    name: str,
    features: pd.DataFrame,
    table: pd.DataFrame,
    fold: pd.Series,
    selected: list[dict],
    fold_features: list[pd.DataFrame] | None = None,
) -> tuple[_Modality, pd.DataFrame]:
    """Selection chain + classifier bank: OOF per classifier, best OOF AUC chosen, refit.
    ``fold_features[k]``: the features of outer fold k's fit (default ``features``)."""
    fold_features = fold_features or [features] * config.outer_folds
    train_ids = [s for s in fold.index if s in features.index]
    x_train = features.loc[train_ids].to_numpy()
    y_train = table.loc[train_ids, "label"].to_numpy()
    folds = fold[train_ids].to_numpy()
    oof = {c: np.full(len(train_ids), np.nan) for c in config.classifiers}
    chains: list[Pipeline | None] = []
    for k in range(config.outer_folds):
        fit_rows, held = folds != k, folds == k
        x_fold = fold_features[k].loc[train_ids].to_numpy()
        chain = _chain(config).fit(x_fold[fit_rows], y_train[fit_rows])
        chains.append(chain)
        selected += [
            {"modality": name, "fold": str(k), "feature": f}
            for f in selected_names(chain, features.columns)
        ]
        if not held.any():
            continue
        z_fit, z_held = chain.transform(x_fold[fit_rows]), chain.transform(x_fold[held])
        for c in config.classifiers:
            clf = make_classifier(
                c,
                seed=config.seed,
                inner_folds=config.inner_folds,
                model_params=config.classifier_params.get(c),
            )
            oof[c][held] = positive_probability(clf.fit(z_fit, y_train[fit_rows]), z_held)
    aucs = {c: auc_ci(y_train, p).estimate for c, p in oof.items()}
    best = max(aucs, key=lambda c: (aucs[c], -config.classifiers.index(c)))
    chain = _chain(config).fit(x_train, y_train)
    selected += [
        {"modality": name, "fold": "final", "feature": f}
        for f in selected_names(chain, features.columns)
    ]
    clf = make_classifier(
        best,
        seed=config.seed,
        inner_folds=config.inner_folds,
        model_params=config.classifier_params.get(best),
    )
    clf.fit(chain.transform(x_train), y_train)
    others = [s for s in features.index if s not in set(train_ids)]
    final = pd.Series(
        positive_probability(clf, chain.transform(features.loc[others].to_numpy()))
        if others
        else [],
        index=others,
        dtype=float,
    )
    cv = pd.DataFrame(
        {
            "modality": name,
            "classifier": list(aucs),
            "oof_auc": list(aucs.values()),
            "chosen": [c == best for c in aucs],
        }
    )
    return _Modality(
        pd.Series(oof[best], index=train_ids), final, best, chains, chain, features, fold_features
    ), cv


def _chain(config: FusionStudyConfig) -> Pipeline:
    s = config.selection
    return make_selection_chain(
        k=s.k,
        alpha=s.alpha,
        threshold=s.threshold,
        inner_folds=config.inner_folds,
        seed=config.seed,
    )


def _clinical_predictors(model: ClinicalModel, rows: pd.DataFrame) -> np.ndarray:
    """Encoded columns of the clinical variables the Clinic model kept, (n, q)."""
    encoded = model.encoder.transform(rows)
    columns = [c for c in encoded.columns if c.split("[")[0].split("__")[0] in model.kept]
    return encoded[columns].to_numpy()


def _stacking(
    config: FusionStudyConfig,
    table: pd.DataFrame,
    fitted: Mapping[str, _Modality],
    clinical_model: ClinicalModel,
) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Ensemble name -> (training predictions, other predictions), on subjects with every
    modality of the ensemble; the meta-model is fitted once on training OOF probabilities."""
    out = {}
    for letters in config.stacking:
        mods = [MODALITY_LETTERS[c] for c in letters]
        train_ids = sorted(set.intersection(*(set(fitted[m].oof.index) for m in mods)))
        other_ids = sorted(set.intersection(*(set(fitted[m].final.index) for m in mods)))
        y = table.loc[train_ids, "label"].to_numpy()
        if len(set(y.tolist())) < 2:
            continue
        use_clinical = "C" in letters and bool(clinical_model.kept)

        def design(ids: list[str], source: str) -> tuple[np.ndarray, np.ndarray | None]:
            probs = np.column_stack([getattr(fitted[m], source)[ids].to_numpy() for m in mods])
            extra = _clinical_predictors(clinical_model, table.loc[ids]) if use_clinical else None
            return probs, extra

        train_probs, train_clinical = design(train_ids, "oof")
        meta = StackingEnsemble(C=config.stacking_C).fit(train_probs, y, train_clinical)
        train_p = pd.Series(meta.predict_proba(*design(train_ids, "oof")), index=train_ids)
        other_p = pd.Series(
            meta.predict_proba(*design(other_ids, "final")) if other_ids else [],
            index=other_ids,
            dtype=float,
        )
        out[f"Ensemble_{letters}"] = (train_p, other_p)
    return out


def _tokens(
    ids: list[str], inputs: Mapping[str, pd.DataFrame], chains: Mapping[str, Pipeline | None]
) -> tuple[list[np.ndarray], np.ndarray]:
    """(xs, present) MHA inputs of ``ids``: per modality its ``inputs`` features, through
    ``chains[m]`` if given (zeros where absent)."""
    xs, present = [], []
    for m in MODALITIES:
        features = inputs[m]
        have = np.array([s in features.index for s in ids])
        chain = chains.get(m)
        width = (
            features.shape[1]
            if chain is None
            else chain.transform(features.iloc[:1].to_numpy()).shape[1]
        )
        x = np.zeros((len(ids), width))
        if have.any():
            rows = features.loc[[s for s, h in zip(ids, have) if h]].to_numpy()
            x[have] = rows if chain is None else chain.transform(rows)
        xs.append(x)
        present.append(have)
    return xs, np.column_stack(present)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous count after. Full-batch
    training of a 3-token model is too small to share: with 2 threads on 2 busy cores, 300
    epochs took 173 s against 7 s with one (measured, load average 15)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mha(
    config: FusionStudyConfig, table: pd.DataFrame, fold: pd.Series, fitted: Mapping[str, _Modality]
) -> tuple[pd.Series, pd.Series]:
    """MHA fusion: OOF training predictions (per-fold chains) and the final model's."""
    with _torch_threads(1):
        return _mha_fits(config, table, fold, fitted)


def _mha_fits(
    config: FusionStudyConfig, table: pd.DataFrame, fold: pd.Series, fitted: Mapping[str, _Modality]
) -> tuple[pd.Series, pd.Series]:
    train_ids = list(fold.index)
    oof = pd.Series(np.nan, index=train_ids)
    for k in range(config.outer_folds):
        chains = {m: fitted[m].fold_chains[k] for m in ("habitat", "pathology")}
        inputs = {m: fitted[m].fold_features[k] for m in MODALITIES}
        fit_ids = [s for s in train_ids if fold[s] != k]
        held = [s for s in train_ids if fold[s] == k]
        model = MHAClassifier(config.mha).fit(
            *_tokens(fit_ids, inputs, chains), table.loc[fit_ids, "label"].to_numpy()
        )
        oof[held] = model.predict_proba(*_tokens(held, inputs, chains))
    chains = {m: fitted[m].final_chain for m in ("habitat", "pathology")}
    inputs = {m: fitted[m].features for m in MODALITIES}
    model = MHAClassifier(config.mha).fit(
        *_tokens(train_ids, inputs, chains), table.loc[train_ids, "label"].to_numpy()
    )
    others = [s for s in table.index if s not in set(train_ids)]
    final = pd.Series(
        model.predict_proba(*_tokens(others, inputs, chains)) if others else [],
        index=others,
        dtype=float,
    )
    return oof, final


def _predictions(
    table: pd.DataFrame, preds: Mapping[str, tuple[pd.Series, pd.Series]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long predictions and each model's Youden threshold on its training predictions."""
    frames, thresholds = [], []
    for model, (train_p, other_p) in preds.items():
        p = pd.concat([train_p, other_p])
        rows = table.loc[p.index]
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "subject_id": p.index,
                    "patient_id": rows["patient_id"].to_numpy(),
                    "centre": rows["centre"].to_numpy(),
                    "cohort": rows["cohort"].to_numpy(),
                    "label": rows["label"].to_numpy(),
                    "prob": p.to_numpy(),
                }
            )
        )
        y = table.loc[train_p.index, "label"].to_numpy()
        thresholds.append(
            {
                "model": model,
                "threshold": choose_threshold(y, train_p.to_numpy()),
                "rule": "youden on training (out-of-fold) predictions",
                "n_train": len(train_p),
            }
        )
    return pd.concat(frames, ignore_index=True), pd.DataFrame(thresholds)


def _odds_ratios(model: ClinicalModel) -> pd.DataFrame:
    """Univariable and multivariable odds-ratio tables of the final Clinic model."""
    uni = model.selection.univariable.assign(model="univariable")
    multi = (
        model.selection.multivariable.table.assign(model="multivariable")
        if model.selection.multivariable is not None
        else pd.DataFrame()
    )
    return pd.concat([uni, multi], ignore_index=True)
