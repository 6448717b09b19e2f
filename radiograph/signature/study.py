"""The pathomics signature and treatment-benefit study (seed 003), one call:
:func:`run_signature_study`.

Train on one centre (7:3 internal split, stratified by the labelling endpoint's event),
validate on the internal split and externally on the other centres. Everything fitted (patch
classifier, histogram ranges and IDF, correlation filter, screening, LASSO penalty and
coefficients, the risk cut-off) sees the training subjects only. Per endpoint it writes
(``<out>/<endpoint>/``): C-index with intervals vs the clinical comparators per cohort (Kang
2015 paired tests), risk groups (log-rank, HR), time-dependent AUC, univariable-then-
multivariable Cox, treatment and biomarker effects by risk group with interaction tests,
subgroup interactions (Bonferroni), per-centre HRs pooled by random-effects meta-analysis,
and the figures of :mod:`radiograph.signature.report`. Treatment comparisons are
observational, not randomised; ``report.md`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split
from sksurv.util import Surv

from radiograph.io.atomic import atomic_open
from radiograph.io.features import read_features
from radiograph.manifest import (
    Manifest,
    ManifestError,
    binary_column_problems,
    validate_manifest,
)
from radiograph.preflight import PreflightReport
from radiograph.signature import report
from radiograph.signature.model import SignatureModel
from radiograph.signature.slide_features import PatchClassifier, outcome_labels, slide_features
from radiograph.stats import (
    compare_concordance,
    concordance_ci,
    cox_regression,
    interaction_test,
    meta_analysis,
    optimal_cutpoint,
    time_dependent_auc,
    univariable_then_multivariable,
)
from radiograph.survival.risk_groups import compare_groups

KIND = "signature"
"""The ``kind`` of this study's configs and of its ``config.json``."""
COHORTS = ("train", "internal", "external")
#: Columns of ``problems.csv``: the subject, the manifest field, what is wrong (with the
#: manifest line) and the stage that left the subject out.
PROBLEM_COLUMNS = ("subject_id", "field", "message", "stage")


@dataclass(frozen=True)
class SignatureStudyConfig:
    """The study's settings (``experiments/configs/signature_benefit.yaml``).

    Attributes:
        manifest: cohort CSV with ``<endpoint>_time, <endpoint>_event`` pairs.
        features_dir: run folder holding ``features/pathology/<subject>/*.h5``.
        out: output folder.
        endpoints: endpoints to run and report (e.g. ``[os, rfs]``).
        label_endpoint: endpoint whose times label the patches.
        poor_before, good_after: outcome classes (event by / event-free beyond, time unit of
            the manifest; seed 003: 12 and 36 months).
        training_centre: the centre trained on; the others are external.
        internal_fraction: share of the training centre held out (0.3: the 7:3 split).
        cutoff: ``"maxstat"`` (maximally selected log-rank on training) or ``"quantile"``.
        cutoff_quantile: the training quantile for ``"quantile"``.
        treatment: 0/1 treatment column (None: no benefit analysis).
        biomarker: 0/1 biomarker column analysed within risk groups (None: none).
        clinical: clinical covariates for the univariable-then-multivariable Cox model.
        comparators: numeric columns whose C-index is compared with the signature's.
        subgroups: columns defining the treatment subgroups (interaction p per column).
        horizons: time-dependent AUC horizons (time unit of the manifest).
        risk_maps: subjects with risk maps at each end of the score.
        n_boot: bootstrap resamples of the C-index and AUC intervals.
        seed: seed of the split, the classifier subsample and the LASSO folds.
        allow_failures: subjects that may be left out (a count, or a fraction in [0, 1] of
            the manifest's rows) before the run ends with
            :class:`radiograph.study.SubjectsFailedError` (exit status 1), as in the
            radiopathomics study; the tables are written either way.
    """

    manifest: Path
    features_dir: Path
    out: Path
    endpoints: tuple[str, ...] = ("os", "rfs")
    label_endpoint: str = "rfs"
    poor_before: float = 12.0
    good_after: float = 36.0
    training_centre: str = "ZS"
    internal_fraction: float = 0.3
    cutoff: str = "maxstat"
    cutoff_quantile: float = 0.5
    treatment: str | None = "chemo"
    biomarker: str | None = "ca19_9_high"
    clinical: tuple[str, ...] = ("age", "t_stage", "n_stage", "ca19_9_high")
    comparators: tuple[str, ...] = ("tnm_stage", "ca19_9_high")
    subgroups: tuple[str, ...] = ("ca19_9_high", "n_stage")
    horizons: tuple[float, ...] = (12.0, 36.0, 60.0)
    risk_maps: int = 2
    n_boot: int = 500
    seed: int = 0
    allow_failures: int | float = 0

    def __post_init__(self) -> None:
        if self.cutoff not in ("maxstat", "quantile"):
            raise ValueError(f"cutoff: must be 'maxstat' or 'quantile', got {self.cutoff!r}")
        if not 0.0 < self.internal_fraction < 1.0:
            raise ValueError(f"internal_fraction: must lie in (0, 1), got {self.internal_fraction}")
        if not 0.0 < self.cutoff_quantile < 1.0:
            raise ValueError(f"cutoff_quantile: must lie in (0, 1), got {self.cutoff_quantile}")
        if isinstance(self.allow_failures, bool) or not (
            (isinstance(self.allow_failures, int) and self.allow_failures >= 0)
            or (isinstance(self.allow_failures, float) and 0 <= self.allow_failures <= 1)
        ):
            raise ValueError(
                "allow_failures: must be a count (an integer >= 0) or a fraction "
                f"in [0, 1], got {self.allow_failures!r}"
            )
        if self.label_endpoint not in self.endpoints:
            raise ValueError(
                f"label_endpoint: {self.label_endpoint!r} is not among endpoints "
                f"{list(self.endpoints)}"
            )


def load_config(path: str | os.PathLike, **overrides: Any) -> SignatureStudyConfig:
    """Read the YAML config (paths relative to the file's folder); ``overrides`` win.

    Raises:
        ValueError: an unknown key (named) or a bad value.
    """
    path = Path(path)
    data = {**(yaml.safe_load(path.read_text()) or {}), **overrides}
    if data.pop("kind", KIND) != KIND:  # the study kind of `radiograph study`
        raise ValueError(f"{path}: key 'kind' must be 'signature' for this study")
    known = {f.name: f for f in dataclasses.fields(SignatureStudyConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    for key in ("manifest", "features_dir", "out"):
        if key in data and not os.path.isabs(str(data[key])) and key not in overrides:
            data[key] = path.parent / str(data[key])
        if key in data:
            data[key] = Path(data[key])
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = tuple(value)
    return SignatureStudyConfig(**data)


@dataclass
class StudyResult:
    """Tables of the study: ``tables[endpoint][name]`` DataFrames, the problems found
    (subject, field, message) and the fitted pieces per endpoint."""

    tables: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    problems: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: dict[str, SignatureModel] = field(default_factory=dict)
    cutoffs: dict[str, float] = field(default_factory=dict)
    subjects: pd.DataFrame = field(default_factory=pd.DataFrame)


def run_signature_study(config: SignatureStudyConfig) -> StudyResult:
    """Run the whole study (module docstring) and write its tables, figures and
    ``report.md`` under ``config.out``. The ``radiograph study`` command dispatches here.

    A manifest row with a problem (e.g. RFS after OS, an unreadable time), a subject without
    features or with a treatment value other than 0/1 is listed in ``problems.csv`` and
    ``excluded_subjects.csv`` (subject, stage, error naming the line and field) and left out
    of what it cannot enter; the rest of the cohort goes on. Afterwards, more such subjects
    than ``config.allow_failures`` raise :class:`radiograph.study.SubjectsFailedError`.
    """
    from radiograph.study import StageTimer

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")
    timer = StageTimer()
    with timer("manifest + features"):
        table, patches, problems = _subjects(config)
    label_time, label_event = (
        table[f"{config.label_endpoint}_{p}"].to_numpy() for p in ("time", "event")
    )
    labels = dict(
        zip(
            table.index,
            outcome_labels(
                label_time,
                label_event,
                poor_before=config.poor_before,
                good_after=config.good_after,
            ),
        )
    )
    train_ids = list(table.index[table["cohort"] == "train"])
    with timer("patch classifier + slide features"):
        X, probs, _ = slide_features(
            {s: patches[s][0] for s in table.index},
            labels,
            train_ids,
            classifier=PatchClassifier(seed=config.seed),
        )
    result = StudyResult(problems=pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS)))
    for endpoint in config.endpoints:
        with timer(f"{endpoint}: signature + tables"):
            result.tables[endpoint] = _endpoint(config, endpoint, table, X, result)
        for name, frame in result.tables[endpoint].items():
            frame.to_csv(out / endpoint / f"{name}.csv", index=False)
    result.subjects = table
    result.problems.to_csv(out / "problems.csv", index=False)
    excluded = excluded_subjects(result.problems)
    excluded.to_csv(out / "excluded_subjects.csv", index=False)
    score = table[f"score_{config.label_endpoint}"]
    chosen = [*score.nlargest(config.risk_maps).index, *score.nsmallest(config.risk_maps).index]
    with timer("risk maps + report"):
        maps = report.risk_maps(
            out / "risk_maps",
            {key: item for s in chosen for key, item in _map_slides(s, probs[s], patches[s][1])},
        )
        maps.to_csv(out / "risk_maps" / "risk_maps.csv", index=False)
        report.write_markdown(out / "report.md", config, result)
    timer.save(out / "stage_seconds.json")
    print(timer.table())
    _check_failures(config, excluded, result)
    return result


def excluded_subjects(problems: pd.DataFrame) -> pd.DataFrame:
    """The radiopathomics study's excluded-subjects table (``subject_id, stage, error``) of
    the problems (:data:`PROBLEM_COLUMNS`)."""
    return pd.DataFrame(
        {
            "subject_id": problems["subject_id"],
            "stage": problems["stage"],
            "error": problems["field"] + ": " + problems["message"],
        }
    )


def _check_failures(
    config: SignatureStudyConfig, excluded: pd.DataFrame, result: StudyResult
) -> None:
    """Raise SubjectsFailedError when more subjects were left out than allowed
    (:func:`radiograph.study.check_failures`)."""
    from radiograph.study import check_failures

    total = len(result.subjects) + len(set(excluded["subject_id"]) - set(result.subjects.index))
    check_failures(
        excluded,
        total,
        config.allow_failures,
        Path(config.out) / "excluded_subjects.csv",
        "an analysis",
        pd.DataFrame(),
    )


@dataclass
class Screening:
    """The manifest's subjects sorted before any feature is read (:func:`screen_subjects`).

    Attributes:
        manifest: the manifest (valid rows only).
        problems: (subject, field, message naming the line, stage) of each subject left out
            of some analysis (:data:`PROBLEM_COLUMNS`).
        files: feature files of each usable subject (manifest order).
        bad_treatment: usable subjects left out of the treatment analyses only.
    """

    manifest: Manifest
    problems: list[tuple[str, str, str, str]]
    files: dict[str, list[Path]]
    bad_treatment: set[str]


def screen_subjects(config: SignatureStudyConfig) -> Screening:
    """Validate the manifest (bad rows kept out and listed), each subject's treatment cell,
    endpoints and feature files (``features_dir/features/pathology/<subject>/*.h5``, found,
    not read): the study's input checks, shared by the run and :func:`preflight`.

    Raises:
        ManifestError: the manifest cannot be read at all (every problem listed).
    """
    manifest, found = validate_manifest(config.manifest, check_files=False, keep_valid_rows=True)
    if manifest is None:
        raise ManifestError(Path(config.manifest), found)
    problems: list[tuple[str, str, str, str]] = [
        (p.subject_id, p.column, f"line {p.line}: {p.message}; left out", "manifest") for p in found
    ]
    bad_treatment = set()
    if config.treatment is not None:
        for p in binary_column_problems(manifest, config.treatment):
            problems.append(
                (
                    p.subject_id,
                    p.column,
                    f"line {p.line}: {p.message}; left out of the treatment analyses",
                    "treatment",
                )
            )
            bad_treatment.add(p.subject_id)
    files: dict[str, list[Path]] = {}
    for s in manifest.subjects:
        folder = Path(config.features_dir) / "features" / "pathology" / s.subject_id
        found_files = sorted(folder.glob("*.h5"))
        missing = [e for e in config.endpoints if e not in s.endpoints]
        if not found_files or missing:
            what = (
                f"no feature file (*.h5 in {folder})"
                if not found_files
                else f"endpoint(s) {missing} unknown"
            )
            problems.append(
                (
                    s.subject_id,
                    "features" if not found_files else "endpoints",
                    f"line {s.line}: {what}; left out",
                    "features",
                )
            )
            continue
        files[s.subject_id] = found_files
    return Screening(manifest, problems, files, bad_treatment)


def preflight(config: SignatureStudyConfig) -> PreflightReport:
    """The checks of ``radiograph study --check`` for this kind, in seconds (no feature file
    is read): the output folder is writable; the manifest, treatment cells, endpoints and
    feature files as the run screens them (:func:`screen_subjects`), a problem when more
    subjects would be left out than ``allow_failures`` accepts (each listed, naming its line
    and field) or when the training centre has no usable subject; notes on each endpoint's
    events (all censored) and on the labelling endpoint's events in the training centre."""
    from radiograph.preflight import check_outcomes, error_lines, kind_preflight, list_problems
    from radiograph.runner import allowed_failures

    def checks(found) -> None:
        try:
            screening = screen_subjects(config)
        except (ManifestError, ValueError) as err:
            list_problems(error_lines(err), found, prefix="key 'manifest': ")
            return
        total = len(screening.manifest.subjects) + len(
            {p[0] for p in screening.problems} - {s.subject_id for s in screening.manifest.subjects}
        )
        failed = sorted({p[0] for p in screening.problems})
        allowed = allowed_failures(config.allow_failures, total)
        listed = [
            f"{config.manifest}: subject {sid}, field {field}: {message} ({stage})"
            for sid, field, message, stage in screening.problems
        ]
        if len(failed) > allowed:
            found.problems.append(
                f"{len(failed)} of {total} subjects would be left out (key 'allow_failures' "
                f"{config.allow_failures} accepts {allowed}):"
            )
            list_problems(listed, found, prefix="  ")
        else:
            found.notes += [f"left out: {line}" for line in listed]
        usable = [s for s in screening.manifest.subjects if s.subject_id in screening.files]
        home = [s for s in usable if s.centre == config.training_centre]
        if not home:
            found.problems.append(
                f"key 'training_centre': no usable subject of centre "
                f"{config.training_centre!r} in {config.manifest}"
            )
        for endpoint in config.endpoints:
            check_outcomes(
                found, f"endpoint {endpoint}", [s.endpoints[endpoint][1] for s in usable]
            )
        check_outcomes(
            found,
            f"training centre {config.training_centre}, endpoint {config.label_endpoint}",
            [s.endpoints[config.label_endpoint][1] for s in home],
            folds=2,  # the stratified internal split needs two of each class
        )

    return kind_preflight(Path(config.out), checks)


def _subjects(config: SignatureStudyConfig) -> tuple[pd.DataFrame, dict, list[tuple]]:
    """One row per usable subject (index subject_id), its patches and the problems found."""
    screening = screen_subjects(config)
    problems = screening.problems
    rows, patches = [], {}
    for s in screening.manifest.subjects:
        if s.subject_id not in screening.files:
            continue
        sets = [read_features(f) for f in screening.files[s.subject_id]]
        patches[s.subject_id] = (
            np.concatenate([f.features for f in sets]),
            [(f.coords, f.attrs) for f in sets],
        )
        row = {"subject_id": s.subject_id, "centre": s.centre, **s.covariates}
        for e, (t, ev) in s.endpoints.items():
            row[f"{e}_time"], row[f"{e}_event"] = t, ev
        if s.subject_id in screening.bad_treatment:
            row[config.treatment] = math.nan
        rows.append(row)
    table = pd.DataFrame(rows).set_index("subject_id")
    home = table.index[table["centre"] == config.training_centre]
    if len(home) == 0:
        raise ValueError(f"training_centre: no subject of centre {config.training_centre!r}")
    stratify = table.loc[home, f"{config.label_endpoint}_event"]
    train, internal = train_test_split(
        list(home), test_size=config.internal_fraction, stratify=stratify, random_state=config.seed
    )
    table["cohort"] = "external"
    table.loc[train, "cohort"] = "train"
    table.loc[internal, "cohort"] = "internal"
    return table, patches, problems


def _map_slides(
    subject: str,
    prob: np.ndarray,
    slides: list[tuple[np.ndarray, dict]],
) -> list[tuple[str, report.RiskMapSlide]]:
    """One risk map per slide of a subject (its patches' share of ``prob``), keyed by the
    subject id (one slide) or ``<subject>_<k>``; the slide is the features' ``source``."""
    items, start = [], 0
    for k, (coords, attrs) in enumerate(slides):
        source = Path(str(attrs.get("source", ""))) if attrs.get("source") else None
        item = report.RiskMapSlide(
            prob[start : start + len(coords)],
            coords,
            float(attrs.get("patch_size_level0", 224)),
            float(attrs.get("level0_mpp", 0.5)),
            source if source is not None and source.is_file() else None,
        )
        items.append((subject if len(slides) == 1 else f"{subject}_{k}", item))
        start += len(coords)
    return items


def _endpoint(
    config: SignatureStudyConfig,
    endpoint: str,
    table: pd.DataFrame,
    X: np.ndarray,
    result: StudyResult,
) -> dict[str, pd.DataFrame]:
    """Fit the signature and cut-off on training, then every table of one endpoint."""
    (Path(config.out) / endpoint).mkdir(parents=True, exist_ok=True)
    time, event = f"{endpoint}_time", f"{endpoint}_event"
    is_train = (table["cohort"] == "train").to_numpy()
    model = SignatureModel(seed=config.seed).fit(
        X[is_train], table.loc[is_train, time], table.loc[is_train, event]
    )
    score = model.score(X)
    if config.cutoff == "maxstat":
        cut = optimal_cutpoint(
            table.loc[is_train, time], table.loc[is_train, event], score[is_train]
        ).cutpoint
    else:
        cut = float(np.quantile(score[is_train], config.cutoff_quantile))
    result.models[endpoint], result.cutoffs[endpoint] = model, cut
    table[f"score_{endpoint}"] = score
    data = table.assign(
        signature=score,
        high_risk=(score > cut).astype(int),
        risk_group=np.where(score > cut, "high", "low"),
    )
    tables = {
        "signature": pd.DataFrame({"feature": model.kept_, "coef": model.coef_}).assign(
            alpha=model.alpha_,
            cutoff=cut,
            cutoff_train_share_low=float((score[is_train] <= cut).mean()),
        ),
        "concordance": _concordance(config, data, time, event),
        "risk_groups": _risk_groups(data, time, event),
        "time_auc": _time_auc(config, data, time, event),
        "multivariable": _multivariable(config, data, time, event),
        "meta_analysis": _meta(data, time, event),
    }
    if config.treatment is not None:
        tables["treatment_by_group"] = _by_group(data, time, event, config.treatment)
        tables["subgroups"] = _subgroups(config, data, time, event)
    if config.biomarker is not None:
        tables["biomarker_by_group"] = _by_group(data, time, event, config.biomarker)
    report.endpoint_figures(
        Path(config.out) / endpoint, endpoint, data, time, event, tables, config.treatment
    )
    return tables


def _cohorts(data: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(c, data[data["cohort"] == c]) for c in COHORTS if (data["cohort"] == c).any()]


def _concordance(
    config: SignatureStudyConfig, data: pd.DataFrame, time: str, event: str
) -> pd.DataFrame:
    rows = []
    for cohort, d in _cohorts(data):
        t, e = d[time].to_numpy(), d[event].to_numpy()
        for name in ("signature", *config.comparators):
            c = concordance_ci(
                t, e, d[name].to_numpy(float), n_boot=config.n_boot, seed=config.seed
            )
            row = {
                "cohort": cohort,
                "predictor": name,
                "c_index": c.estimate,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "n": len(d),
            }
            if name != "signature":
                k = compare_concordance(t, e, d["signature"].to_numpy(), d[name].to_numpy(float))
                row |= {"difference_vs_signature": -k.difference, "p_vs_signature": k.p_value}
            rows.append(row)
    return pd.DataFrame(rows)


def _risk_groups(data: pd.DataFrame, time: str, event: str) -> pd.DataFrame:
    rows = []
    for cohort, d in _cohorts(data):
        y = Surv.from_arrays(d[event].to_numpy().astype(bool), d[time].to_numpy())
        chi2, p, hr, lo, hi = compare_groups(d["high_risk"].to_numpy(bool), y)
        rows.append(
            {
                "cohort": cohort,
                "n": len(d),
                "n_high": int(d["high_risk"].sum()),
                "logrank_chi2": chi2,
                "logrank_p": p,
                "hazard_ratio": hr,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(rows)


def _time_auc(
    config: SignatureStudyConfig, data: pd.DataFrame, time: str, event: str
) -> pd.DataFrame:
    train = data[data["cohort"] == "train"]
    rows = []
    for cohort, d in _cohorts(data):
        t, e = d[time].to_numpy(), d[event].to_numpy()
        horizons = [
            h for h in config.horizons if t.min() <= h < t.max() and ((t <= h) & (e == 1)).any()
        ]
        if not horizons:
            continue
        horizons = [h for h in horizons if h < train[time].max()]
        try:
            estimates = time_dependent_auc(
                train[time],
                train[event],
                t,
                e,
                d["signature"],
                horizons,
                n_boot=config.n_boot,
                seed=config.seed,
            )
        except ValueError as err:  # e.g. test follow-up beyond the training censoring KM
            rows.append({"cohort": cohort, "horizon": math.nan, "note": str(err)})
            continue
        for est in estimates:
            rows.append(
                {
                    "cohort": cohort,
                    "horizon": est.extra["time"],
                    "auc": est.estimate,
                    "ci_low": est.ci_low,
                    "ci_high": est.ci_high,
                    "note": "",
                }
            )
    return pd.DataFrame(rows)


def _multivariable(
    config: SignatureStudyConfig, data: pd.DataFrame, time: str, event: str
) -> pd.DataFrame:
    frames = []
    for cohort, d in _cohorts(data):
        sel = univariable_then_multivariable(
            d, ["high_risk", *config.clinical], duration=time, event=event, dropna=True
        )
        uni = sel.univariable[["term", "hazard_ratio", "ci_low", "ci_high", "p_value"]]
        frame = uni.assign(model="univariable")
        if sel.multivariable is not None:
            multi = sel.multivariable.table[
                ["term", "hazard_ratio", "ci_low", "ci_high", "p_value"]
            ]
            frame = pd.concat([frame, multi.assign(model="multivariable")])
        frames.append(frame.assign(cohort=cohort))
    return pd.concat(frames, ignore_index=True)


def _by_group(data: pd.DataFrame, time: str, event: str, column: str) -> pd.DataFrame:
    """HR of ``column`` (0/1) within each risk group and the interaction p, per cohort set."""
    frames = []
    for name, d in [("all", data), ("validation", data[data["cohort"] != "train"])]:
        res = interaction_test(
            d, time, event, column, "risk_group", group_reference="low", dropna=True
        )
        frames.append(
            res.by_group.assign(
                set=name, variable=column, interaction_lr_p=res.lr_p, interaction_wald_p=res.wald_p
            )
        )
    return pd.concat(frames, ignore_index=True)


def _subgroups(
    config: SignatureStudyConfig, data: pd.DataFrame, time: str, event: str
) -> pd.DataFrame:
    frames = []
    groups = ("risk_group", *config.subgroups)
    for column in groups:
        res = interaction_test(data, time, event, config.treatment, column, dropna=True)
        frames.append(
            res.by_group.assign(
                subgroup=column,
                interaction_p=res.lr_p,
                bonferroni_p=min(1.0, res.lr_p * len(groups)),
            )
        )
    return pd.concat(frames, ignore_index=True)


def _meta(data: pd.DataFrame, time: str, event: str) -> pd.DataFrame:
    """Per-centre HR of high vs low risk, pooled by DerSimonian-Laird (validation centres and
    the internal split; the training subjects are left out). A centre whose subjects all fall
    in one risk group has no HR: it is listed in ``note`` and left out of the pooling."""
    logs, ses, labels, skipped = [], [], [], []
    held = data[data["cohort"] != "train"]
    for centre, d in held.groupby("centre"):
        if d["high_risk"].nunique() < 2 or not d[event].any():
            skipped.append(f"{centre}: {len(d)} subjects all in one risk group or no event")
            continue
        row = cox_regression(d, time, event, ["high_risk"]).table.iloc[0]
        logs.append(row["coef"]), ses.append(row["se"]), labels.append(str(centre))
    note = "; ".join(skipped)
    if not logs:
        return pd.DataFrame({"label": ["none"], "note": [note or "no held-out centre"]})
    meta = meta_analysis(logs, ses, labels=labels, method="DL", exponentiate=True)
    return meta.forest_frame().assign(
        tau2=meta.tau2,
        i2=meta.i2,
        q=meta.q,
        q_p_value=meta.q_p_value,
        pooled_p=meta.p_value,
        note=note,
    )


def save_config(config: SignatureStudyConfig, path: str | os.PathLike) -> None:
    """Write the config as JSON (paths as text, ``kind`` first) beside the results,
    atomically."""
    data = {"kind": KIND, **dataclasses.asdict(config)}
    with atomic_open(path, encoding="utf-8") as handle:
        handle.write(json.dumps(data, default=str, indent=2))
