"""``report/index.html``: the whole study on one self-contained page.

The page holds, in order: the data (cohort summary, excluded subjects), Table 1 (fold mean +-
SD) and the pooled estimates with their confidence intervals, the pairwise comparisons of the
aggregators (tables and forest plots), the risk groups (survival) or the threshold metrics and
calibration (classification), every figure of ``report/`` with a numbered caption, and the
settings and provenance (config and manifest SHA-256, seeds, code commit, package versions,
the config file itself). Images are embedded as base64 PNG, so the page needs nothing beside
it; each figure links to its PDF and SVG twins for papers. Nothing is computed here that the
study's CSV files do not already hold: the page reads ``report/*.csv`` (written by
:func:`radiograph.study.write_report`) and draws the forest plots from them (again only when
the table a plot shows changed: :mod:`radiograph.report.cache`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import json
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from radiograph.io.atomic import atomic_open
from radiograph.report.cache import frame_digest, reuse_or_make, with_twins
from radiograph.report.tables import (
    AVG,
    KM_TIME_QUANTILE,
    METRIC_LABELS,
    MODEL_LABELS,
    best_cells,
    comparisons_caption,
    display_name,
    table1,
    table1_caption,
)
from radiograph.stats.results import format_p

if TYPE_CHECKING:
    from radiograph.manifest import Manifest
    from radiograph.study import StudyConfig

INDEX = "index.html"
PACKAGES = (
    "radiograph",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "scikit-survival",
    "lifelines",
    "torch",
    "torch-geometric",
    "timm",
    "matplotlib",
    "h5py",
    "openslide-python",
    "SimpleITK",
    "pyradiomics",
)
"""Packages whose installed versions the provenance section lists."""
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0}
main{max-width:1100px;margin:0 auto;padding:1.5em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
caption{caption-side:top;text-align:left;padding:.3em 0;max-width:60em}
th,td{padding:.25em .6em;text-align:right;border-bottom:1px solid #e4e4e4}
.label{text-align:left}td:not(.label){white-space:nowrap}thead th{border-bottom:2px solid #444}
figure{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.note{font-size:.9em;color:#444;max-width:60em}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
.meta{color:#555}nav ol{columns:2}
"""
LOOK_INSIDE_NAME = re.compile(r"^(top|bottom)(\d+)_(.+)_(pathology|radiology)(?:_(.+))?$")
"""``<rank><k>_<subject>_<modality>[_<slide>]``: the names of the look-inside pictures."""


@dataclass
class Page:
    """The page under construction: its sections, the running table and figure numbers, and
    the figures embedded so far."""

    folder: Path
    sections: list[tuple[str, str, str]] = field(default_factory=list)
    tables: int = 0
    figures: int = 0
    embedded: set[Path] = field(default_factory=set)

    def section(self, anchor: str, title: str, body: str) -> None:
        if body:
            self.sections.append((anchor, title, body))

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        caption: str,
        *,
        numbered: bool = True,
        labels: int = 1,
    ) -> str:
        """A table, numbered unless it is a list of settings; cells are HTML already (escape
        text with :func:`_text`), the caption is text; the first ``labels`` columns are
        left-aligned labels, the others right-aligned numbers."""
        number = ""
        if numbered:
            self.tables += 1
            number = f"<b>Table {self.tables}.</b> "
        head = "".join(
            f'<th class="label">{h}</th>' if i < labels else f"<th>{h}</th>"
            for i, h in enumerate(headers)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="label">{c}</td>' if i < labels else f"<td>{c}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in rows
        )
        return (
            f"<table><caption>{number}{_text(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def figure(self, png: Path, caption: str) -> str:
        """A numbered figure with the PNG embedded and links to its PDF and SVG twins."""
        self.figures += 1
        self.embedded.add(png.resolve())
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        twins = [
            f'<a href="{html.escape(_relative(png.with_suffix(s), self.folder))}">'
            f"{s[1:].upper()}</a>"
            for s in (".pdf", ".svg")
            if png.with_suffix(s).exists()
        ]
        links = f" ({' · '.join(twins)})" if twins else ""
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{_text(png.stem)}">'
            f"<figcaption><b>Figure {self.figures}.</b> {_text(caption)}{links}"
            "</figcaption></figure>"
        )

    def render(self, title: str, subtitle: str) -> str:
        toc = "".join(f'<li><a href="#{a}">{_text(t)}</a></li>' for a, t, _ in self.sections)
        body = "".join(
            f'<section id="{a}"><h2>{_text(t)}</h2>{b}</section>' for a, t, b in self.sections
        )
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_text(title)}</title><style>{STYLE}</style></head><body><main>"
            f'<h1>{_text(title)}</h1><p class="meta">{_text(subtitle)}</p>'
            f"<nav><ol>{toc}</ol></nav>{body}</main></body></html>\n"
        )


def write_html_report(config: StudyConfig, manifest: Manifest, results: pd.DataFrame) -> Path:
    """Write ``report/index.html`` (and the forest plots it shows) from the study's report files.

    Args:
        config: the study (its ``report_dir`` holds the CSV files and figures of
            :func:`radiograph.study.write_report`).
        manifest: the cohort, for the data summary.
        results: the long fold results (``report/results.csv``).

    Returns:
        The path of ``index.html``.
    """
    folder = Path(config.report_dir)
    page = Page(folder)
    level = float(_option(config.report, "level", 0.95))
    classification = config.task == "classification"
    page.section("data", "Data", _data_section(page, manifest, folder))
    page.section(
        "table1",
        "Table 1 and pooled estimates",
        _table1_section(page, results, folder, classification, level),
    )
    page.section(
        "comparisons",
        "Pairwise comparisons of the aggregators",
        _comparison_section(page, folder, classification, level),
    )
    if classification:
        page.section(
            "classification",
            "Threshold metrics and calibration",
            _classification_section(page, folder, level),
        )
    else:
        page.section("risk-groups", "Risk groups", _risk_group_section(page, config, folder, level))
    page.section("figures", "Figures", _figure_section(page, config, results))
    page.section("look-inside", "A look inside SPARRA", _look_inside_section(page, config))
    page.section("other-figures", "Other figures", _other_figures(page, folder))
    page.section("settings", "Settings and provenance", _settings_section(page, config, manifest))
    name = Path(config.source).stem if config.source else Path(config.out_dir).name
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (
        f"{config.task.capitalize()} study, written {created} by radiograph "
        f"{_version('radiograph')} from {folder}."
    )
    target = folder / INDEX
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write(page.render(f"Study report: {name}", subtitle))
    return target


def _data_section(page: Page, manifest: Manifest, folder: Path) -> str:
    subjects = manifest.subjects
    n = len(subjects)
    events = sum(int(s.event) for s in subjects)
    time = np.array([s.time for s in subjects], dtype=float)
    rows = [
        ("manifest", _text(str(manifest.path))),
        ("subjects (patients)", f"{n} ({len({s.patient_id for s in subjects})})"),
        ("centres", _text(", ".join(f"{c} ({k})" for c, k in _counts(s.centre for s in subjects)))),
        ("events", f"{events} ({100.0 * events / max(n, 1):.1f}%); censored {n - events}"),
        (
            "median follow-up (reverse Kaplan-Meier)",
            f"{_median_follow_up(time, np.array([bool(s.event) for s in subjects]))} "
            f"{_text(manifest.time_unit)}",
        ),
        (
            "with pathology / radiology / both",
            f"{sum(s.has_pathology for s in subjects)} / {sum(s.has_radiology for s in subjects)}"
            f" / {sum(s.has_pathology and s.has_radiology for s in subjects)}",
        ),
    ]
    labels = [s.label for s in subjects if s.label is not None]
    if labels:
        rows.append(("labels", _text(", ".join(f"{c}: {k}" for c, k in _counts(labels)))))
    excluded = _read(folder / "excluded_subjects.csv")
    left_out = "none"
    if excluded is not None and not excluded.empty:
        left_out = _text(
            "; ".join(
                f"{stage}: {', '.join(map(str, block['subject_id']))}"
                for stage, block in excluded.groupby("stage", sort=False)
            )
        )
    rows.append(("left out (failed a per-subject stage)", left_out))
    return page.table(
        ["", "value"],
        rows,
        "The cohort as given by the manifest. Subjects "
        "without a modality are analysed with the modalities they have.",
        numbered=False,
        labels=2,
    )


def _table1_section(
    page: Page, results: pd.DataFrame, folder: Path, classification: bool, level: float
) -> str:
    point = results[~results["metric"].str.contains("_ci_")]
    present = list(pd.unique(point["metric"]))
    order = [m for m in METRIC_LABELS if m in present] + [
        m for m in present if m not in METRIC_LABELS
    ]
    table = table1(point, metrics=order)
    best = best_cells(table)
    models = list(dict.fromkeys(table.columns.get_level_values(0)))
    headers = [
        *(_text(n) for n in table.index.names),
        *(_text(MODEL_LABELS.get(m, m)) for m in models),
    ]
    rows = []
    for key in table.index:
        labels = key if isinstance(key, tuple) else (key,)
        cells = [_text(display_name(v)) for v in labels]
        for model in models:
            mean, sd = table.loc[key, (model, "mean")], table.loc[key, (model, "std")]
            text = "N/A" if not np.isfinite(mean) else f"{mean:.3f} ± {sd:.3f}"
            cells.append(f"<b>{text}</b>" if best.loc[key, model] else text)
        rows.append(cells)
    body = page.table(headers, rows, table1_caption(table), labels=len(table.index.names))
    pooled = _read(folder / ("auc_pooled.csv" if classification else "concordance_pooled.csv"))
    if pooled is not None and not pooled.empty:
        value = "auroc" if classification else "c_index"
        body += _estimate_table(page, pooled, value, _pooled_caption(pooled, classification, level))
    return body


def _estimate_table(page: Page, frame: pd.DataFrame, value: str, caption: str) -> str:
    """Rows (seed, modality, aggregator), columns the downstream models: ``est (low-high)``."""
    models = list(pd.unique(frame["model"]))
    several = frame["seed"].nunique() > 1
    rows = []
    for (seed, modality, aggregator), block in frame.groupby(
        ["seed", "modality", "aggregator"], sort=False
    ):
        cells = block.set_index("model")
        label = f"{modality} · {display_name(aggregator)}" + (f" (seed {seed})" if several else "")
        rows.append(
            [
                _text(label),
                *(
                    _estimate(cells.loc[m, value], cells.loc[m, "ci_low"], cells.loc[m, "ci_high"])
                    if m in cells.index
                    else "N/A"
                    for m in models
                ),
            ]
        )
    headers = ["modality · aggregator", *(_text(MODEL_LABELS.get(m, m)) for m in models)]
    return page.table(headers, rows, caption)


def _pooled_caption(pooled: pd.DataFrame, classification: bool, level: float) -> str:
    n = int(pooled["n"].max())
    if classification:
        return (
            f"AUROC of the pooled out-of-fold test predictions (each subject predicted "
            f"once per seed, by the model of the fold that held it out; n = {n}), with "
            f"DeLong's {level:.0%} confidence interval."
        )
    method = str(pooled["method"].iloc[0])
    return (
        f"Harrell's C-index of the pooled out-of-fold test predictions (each subject "
        f"predicted once per seed, by the model of the fold that held it out; n = {n}), "
        f"with its {level:.0%} patient-level {method} interval. Avg.: the C-index averaged "
        "over the downstream models, its interval from the same resamples."
    )


def _comparison_section(page: Page, folder: Path, classification: bool, level: float) -> str:
    metric = "AUROC" if classification else "C-index"
    body = ""
    cv = _read(folder / "comparisons_cv.csv")
    if cv is not None and not cv.empty:
        body += _comparison_table(
            page,
            cv,
            level,
            f"Per-fold paired differences of the "
            f"{metric} over every repeat and fold (n = paired folds), "
            "with the corrected resampled t-test. ",
        )
        average = cv[cv["model"] == AVG] if (cv["model"] == AVG).any() else cv
        path = folder / "forest_differences_cv.png"
        _draw_unless_unchanged(
            path,
            average,
            {"metric": metric, "level": level},
            lambda: _figures().plot_paired_differences(
                average, path, metric_label=metric, level=level
            ),
        )
        body += page.figure(
            path,
            f"Paired differences of the {metric} between aggregators "
            "(A - B) over the cross-validation folds, averaged over the "
            f"downstream models; squares: mean difference; bars: {level:.0%} "
            "confidence interval of the corrected resampled t-test (Nadeau & "
            "Bengio 2003); dashed line: no difference.",
        )
    pooled = _read(folder / "comparisons_pooled.csv")
    if pooled is not None and not pooled.empty:
        first = pooled[pooled["seed"] == pooled["seed"].iloc[0]]
        body += _comparison_table(
            page,
            first,
            level,
            f"Paired comparisons of the {metric} on "
            "the pooled out-of-fold test predictions of seed "
            f"{first['seed'].iloc[0]} (n = subjects both aggregators "
            "predicted). ",
        )
        chosen = first[first["model"] == AVG] if (first["model"] == AVG).any() else first
        path = folder / "forest_differences_pooled.png"
        _draw_unless_unchanged(
            path,
            chosen,
            {"metric": metric, "level": level},
            lambda: _figures().plot_paired_differences(
                chosen, path, metric_label=metric, level=level
            ),
        )
        what = (
            "per classifier, DeLong's paired test"
            if classification
            else "averaged over the downstream models, paired patient-level bootstrap"
        )
        body += page.figure(
            path,
            f"Paired differences of the {metric} between aggregators "
            f"(A - B) on the pooled test predictions, {what}; bars: "
            f"{level:.0%} confidence interval; dashed line: no difference.",
        )
    return body


def _comparison_table(page: Page, frame: pd.DataFrame, level: float, lead: str) -> str:
    headers = [
        "modality",
        "model",
        "A vs B",
        "A",
        "B",
        f"A - B ({level:.0%} CI)",
        "p",
        "method",
        "n",
    ]
    rows = [
        [
            _text(r.modality),
            _text(MODEL_LABELS.get(r.model, r.model)),
            _text(f"{display_name(r.aggregator_a)} vs {display_name(r.aggregator_b)}"),
            f"{r.c_a:.3f}",
            f"{r.c_b:.3f}",
            f"{r.difference:+.3f} ({r.ci_low:+.3f} to {r.ci_high:+.3f})",
            _text(format_p(float(r.p_value))),
            _text(r.method),
            str(int(r.n)),
        ]
        for r in frame.itertuples()
    ]
    return page.table(headers, rows, lead + comparisons_caption(frame, level=level))


def _risk_group_section(page: Page, config: StudyConfig, folder: Path, level: float) -> str:
    groups = _read(folder / "risk_groups.csv")
    if groups is None or groups.empty:
        return ""
    model = MODEL_LABELS.get(str(_option(config.report, "km_model", "coxph")), "")
    rule = str(_option(config.report, "risk_rule", "mean"))
    pooled = groups[groups["fold"].astype(str) == "pooled"]
    several = pooled["seed"].nunique() > 1
    rows = [
        [
            _text(
                f"{r.modality} · {display_name(r.aggregator)}"
                + (f" (seed {r.seed})" if several else "")
            ),
            str(int(r.n_low)),
            str(int(r.n_high)),
            _estimate(r.hazard_ratio, r.hr_low, r.hr_high, digits=2),
            _text(format_p(float(r.logrank_p))),
        ]
        for r in pooled.itertuples()
    ]
    split = (
        f"at each training fold's {rule} {model} risk"
        if rule != "optimal"
        else f"at each training fold's maximally selected log-rank cut-point of the {model} risk"
    )
    body = page.table(
        ["modality · aggregator", "n low", "n high", f"HR ({level:.0%} CI)", "log-rank p"],
        rows,
        f"Test subjects split into low and high risk {split}, pooled over the "
        "folds; hazard ratio high vs low from a Cox model (Wald interval) and "
        "the log-rank test.",
    )
    path = folder / "forest_hazard_ratios.png"
    _draw_unless_unchanged(
        path,
        groups,
        {"level": level},
        lambda: _figures().plot_hazard_ratios(groups, path, level=level),
    )
    body += page.figure(
        path,
        f"Hazard ratios of the high- vs low-risk test subjects ({model}, "
        f"split {split}); squares: pooled over the folds with the {level:.0%} "
        "confidence interval; circles: single folds; log axis; dashed line: "
        "no difference (HR = 1).",
    )
    return body


def _classification_section(page: Page, folder: Path, level: float) -> str:
    body = ""
    metrics = _read(folder / "threshold_metrics.csv")
    if metrics is not None and not metrics.empty:
        names = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "f1")
        rows = [
            [
                _text(
                    f"{r['modality']} · {display_name(r['aggregator'])} · "
                    f"{MODEL_LABELS.get(r['model'], r['model'])} (seed {r['seed']})"
                ),
                *(_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"]) for m in names),
            ]
            for _, r in metrics.iterrows()
        ]
        body += page.table(
            ["group", "accuracy", "sensitivity", "specificity", "PPV", "NPV", "F1"],
            rows,
            f"Binary metrics of the pooled test predictions, "
            "each subject classified at the Youden threshold of its own "
            f"fold's training predictions; {level:.0%} Wilson intervals "
            "(F1: bootstrap).",
        )
    calibration = _read(folder / "calibration.csv")
    if calibration is not None and not calibration.empty:
        rows = [
            [
                _text(
                    f"{r['modality']} · {display_name(r['aggregator'])} · "
                    f"{MODEL_LABELS.get(r['model'], r['model'])} (seed {r['seed']})"
                ),
                *(
                    _estimate(r.get(k), r.get(f"{k}_ci_low"), r.get(f"{k}_ci_high"))
                    for k in ("intercept_in_the_large", "slope")
                ),
                _text(format_p(float(r["hosmer_lemeshow_p"]))),
                f"{r['brier']:.3f}",
                f"{r['scaled_brier']:.3f}",
            ]
            for _, r in calibration.iterrows()
        ]
        body += page.table(
            [
                "group",
                "calibration intercept",
                "calibration slope",
                "Hosmer-Lemeshow p",
                "Brier",
                "scaled Brier",
            ],
            rows,
            f"Calibration of the pooled test probabilities with {level:.0%} "
            "intervals (ideal: intercept 0, slope 1); Hosmer-Lemeshow test over "
            "10 groups; Brier score and its scaled version (1 - Brier / Brier "
            "of the prevalence).",
        )
    return body


def _figure_section(page: Page, config: StudyConfig, results: pd.DataFrame) -> str:
    folder = Path(config.report_dir)
    folds = results["fold"].nunique()
    seeds = results["seed"].nunique() if "seed" in results.columns else 1
    over = f"{folds} folds" + (f" × {seeds} seeds" if seeds > 1 else "")
    km_model = MODEL_LABELS.get(str(_option(config.report, "km_model", "coxph")), "")
    rule = str(_option(config.report, "risk_rule", "mean"))
    no_ibs = (
        " FSVM has no IBS."
        if "ibs" in set(results["metric"]) and "fsvm" in set(results["model"])
        else ""
    )
    captions: list[tuple[str, Callable[[str], str]]] = [
        (
            "fig2_bars_",
            lambda m: (
                f"Fold mean of each metric per downstream model and "
                f"aggregator, modalities {m}; error bars: ±1 SD over {over}; dashed line: chance "
                f"level 0.5 of the concordance and AUC metrics.{no_ibs}"
            ),
        ),
        (
            "fig3_bands_",
            lambda m: (
                f"The same results per downstream model, modalities {m}: "
                f"dots at the fold mean, error bars ±1 SD over {over}; the metrics are separate "
                "quantities and are not joined; dashed segments: chance level 0.5."
            ),
        ),
        (
            "fig4_km_",
            lambda m: (
                f"Kaplan-Meier curves of the test subjects (modalities {m}, "
                f"first seed, pooled over the folds) split into low and high risk at each training "
                f"fold's {rule} {km_model} risk; bands: pointwise 95% confidence intervals "
                "(log-log); ticks: censored subjects; numbers at risk under the time axis; the "
                f"time axis ends at the {KM_TIME_QUANTILE:.0%} quantile of follow-up. "
                "Panel titles: log-rank p-value and Cox hazard ratio high vs low (95% CI)."
            ),
        ),
        (
            "calibration_",
            lambda m: (
                f"Calibration of the pooled test probabilities, "
                f"modalities {m}: observed proportion against mean predicted probability per "
                "decile bin, with 95% Wilson intervals; dashed: perfect calibration."
            ),
        ),
        (
            "decision_",
            lambda m: (
                f"Decision curves, modalities {m}: net benefit of acting on "
                "each aggregator's predictions against the threshold probability, with "
                "treat-all and treat-none; bands: bootstrap confidence intervals."
            ),
        ),
    ]
    body = ""
    for modalities in config.modality_sets:
        slug = "_".join(modalities)
        for prefix, caption in captions:
            path = folder / f"{prefix}{slug}.png"
            if path.exists():
                body += page.figure(path, caption(" + ".join(modalities)))
    return body


def _look_inside_section(page: Page, config: StudyConfig) -> str:
    folder = Path(config.report_dir) / "look_inside_sparra_fold0"
    body = ""
    for png in sorted(folder.glob("*.png")):
        match = LOOK_INSIDE_NAME.match(png.stem)
        if match is None:
            continue
        end, place, subject, modality, slide = match.groups()
        where = (f"slide {slide}, " if slide else "") + (
            "nodes at the centres of their patches over the slide thumbnail, scale bar in "
            "micrometres"
            if modality == "pathology"
            else "nodes over the axial, coronal and "
            "sagittal mean projections of the CT, axes in millimetres"
        )
        rank = ("" if place == "1" else f"number {place} by ") + (
            "highest" if end == "top" else "lowest"
        )
        body += page.figure(
            png,
            f"SPARRA's node importance (colour) in the {modality} graph "
            f"of test subject {subject}, the {rank} predicted risk of fold 0 "
            f"(seed {config.seeds[0]}): {where}.",
        )
    return body


def _other_figures(page: Page, folder: Path) -> str:
    """Figures of ``report/`` that no section showed, so that none is left out."""
    return "".join(
        page.figure(
            png, f"{png.stem} (a figure of the report folder without a registered caption)."
        )
        for png in sorted(folder.glob("*.png"))
        if png.resolve() not in page.embedded
    )


def _settings_section(page: Page, config: StudyConfig, manifest: Manifest) -> str:
    training = config.training
    rows = [
        (
            "config file",
            _text(f"{config.source} (SHA-256 {_sha256(config.source)})")
            if config.source
            else "built in code (no file)",
        ),
        ("manifest", _text(f"{manifest.path} (SHA-256 {_sha256(manifest.path)})")),
        ("task", _text(config.task)),
        ("seeds (repeats of the cross-validation)", _text(", ".join(map(str, config.seeds)))),
        (
            "folds / epochs / batch size / lr",
            _text(
                " / ".join(
                    str(_option(training, k, "default"))
                    for k in ("folds", "epochs", "batch_size", "lr")
                )
            ),
        ),
        ("aggregators", _text(", ".join(display_name(a) for a in config.aggregators))),
        ("modality sets", _text("; ".join(" + ".join(s) for s in config.modality_sets))),
        ("code", _text(f"radiograph {_version('radiograph')}, {_git_commit()}")),
        ("python", _text(f"{sys.version.split()[0]} on {platform.platform()}")),
        (
            "packages",
            _text(
                ", ".join(f"{p} {_version(p)}" for p in PACKAGES if _version(p) != "not installed")
            ),
        ),
    ]
    stage_seconds = _read_json(Path(config.report_dir) / "stage_seconds.json")
    if stage_seconds:
        rows.append(
            (
                "wall time per stage (s)",
                _text(", ".join(f"{k} {float(v):.0f}" for k, v in stage_seconds.items())),
            )
        )
    body = page.table(
        ["", "value"],
        [[_text(k), v] for k, v in rows],
        "What produced this report: the study settings and the software. The "
        "SHA-256 digests identify the exact config and manifest files.",
        numbered=False,
        labels=2,
    )
    if config.source and Path(config.source).exists():
        body += (
            f"<details><summary>The config file</summary><pre>"
            f"{_text(Path(config.source).read_text(encoding='utf-8'))}</pre></details>"
        )
    return body


def _draw_unless_unchanged(
    png: Path, frame: pd.DataFrame, settings: Mapping[str, Any], draw: Callable[[], Any]
) -> None:
    """Call ``draw`` (which writes ``png`` and its PDF and SVG twins) unless the table it
    shows and its settings are those of the last drawing (``report/.provenance/<stem>.json``,
    :func:`radiograph.report.cache.reuse_or_make`)."""

    def make() -> list[Path]:
        draw()
        return with_twins([png])

    reuse_or_make(png.parent, png.stem, {"table": frame_digest(frame), "settings": settings}, make)


def _figures() -> ModuleType:
    """:mod:`radiograph.report.figures`, imported only when a figure is drawn (matplotlib takes
    seconds to import; a rerun without changes draws nothing)."""
    return importlib.import_module("radiograph.report.figures")


def _estimate(value: Any, low: Any, high: Any, *, digits: int = 3) -> str:
    """``0.712 (0.650–0.770)`` (``-0.2 (-0.4 to 0.1)`` below zero); N/A when missing."""
    if value is None or not np.isfinite(float(value)):
        return "N/A"
    if low is None or high is None or not (np.isfinite(float(low)) and np.isfinite(float(high))):
        return f"{float(value):.{digits}f} (CI N/A)"
    joint = " to " if float(low) < 0 else "–"  # "-0.2–0.1" reads as a minus sign
    return f"{float(value):.{digits}f} ({float(low):.{digits}f}{joint}{float(high):.{digits}f})"


def _median_follow_up(time: np.ndarray, event: np.ndarray) -> str:
    """Median follow-up by the reverse Kaplan-Meier method (censoring as the event)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    if time.size == 0 or event.all():
        return "N/A"
    times, censoring = kaplan_meier_estimator(event, time, reverse=True)
    below = np.flatnonzero(censoring <= 0.5)
    return f"{times[below[0]]:.4g}" if below.size else f"not reached (> {time.max():.4g})"


def _counts(values: Any) -> list[tuple[str, int]]:
    series = pd.Series(list(values), dtype=object).astype(str)
    return sorted(series.value_counts().items())


def _option(section: Any, key: str, default: Any) -> Any:
    """A setting of a config section given as a mapping or as a dataclass."""
    if isinstance(section, Mapping):
        value = section.get(key, default)
    else:
        value = getattr(section, key, default)
    return default if value is None else value


def _read(path: Path) -> pd.DataFrame | None:
    """A table of the report, or None when it is absent or holds nothing."""
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    return None if frame.empty else frame


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _sha256(path: str | Path) -> str:
    path = Path(path)
    if not path.exists():
        return "file missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    """The commit of the radiograph checkout (with ``+changes`` when the tree differs from
    it), or ``"commit unknown"`` outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "radiograph"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "commit unknown"
    return f"commit {commit.stdout.strip()}" + (" +changes" if dirty.returncode else "")


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)
