"""``report/index.html`` of a finished study (``conftest.make_study_report``): one page that
needs nothing beside it, every figure of the report folder embedded once with a numbered
caption, Table 1 equal to the fold results recomputed here with pandas, the pooled intervals,
comparisons and risk groups equal to the report's CSV files, and provenance that identifies
the exact config and manifest (SHA-256 recomputed here)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from html.parser import HTMLParser
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from radiograph.report.tables import MODEL_LABELS, display_name
from radiograph.stats.results import format_p


class Page(HTMLParser):
    """The tables (caption, header, rows of cell text, bold cells), figures (image source,
    caption) and every ``src`` / ``href`` of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.figures: list[dict] = []
        self.urls: list[str] = []
        self.pre: list[str] = []
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._bold = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[k] for k in ("src", "href") if k in attrs]
        self._stack.append(tag)
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": [], "bold": set()})
        elif tag == "tr" and self._in("tbody"):
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell, self._bold = [], False
        elif tag == "b" and self._cell is not None:
            self._bold = True
        elif tag == "figure":
            self.figures.append({"src": "", "caption": ""})
        elif tag == "img" and self._in("figure"):
            self.figures[-1]["src"] = attrs.get("src", "")
        elif tag == "pre":
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            if tag == "th" and self._in("thead"):
                table["header"].append(text)
            else:
                row = table["rows"][-1]
                if self._bold:
                    table["bold"].add((len(table["rows"]) - 1, len(row)))
                row.append(text)
            self._cell = None
        while self._stack and self._stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in("caption"):
            self.tables[-1]["caption"] += data
        elif self._in("figcaption"):
            self.figures[-1]["caption"] += data
        elif self._in("pre"):
            self.pre[-1] += data

    def _in(self, tag: str) -> bool:
        return tag in self._stack

    def table(self, start: str) -> dict:
        found = [t for t in self.tables if t["caption"].startswith(start)]
        assert len(found) == 1, f"no single table captioned {start!r}"
        return found[0]


def page_of(report) -> Page:
    return Page((report.folder / "index.html").read_text(encoding="utf-8"))


@pytest.fixture(params=["survival", "classification"])
def report(request):
    return request.getfixturevalue(f"{request.param}_report")


def test_every_figure_is_embedded_once_with_a_numbered_caption(report):
    page = page_of(report)
    on_disk = Counter(p.read_bytes() for p in report.folder.rglob("*.png"))
    prefix = "data:image/png;base64,"
    assert all(f["src"].startswith(prefix) for f in page.figures)
    embedded = Counter(base64.b64decode(f["src"][len(prefix) :]) for f in page.figures)
    assert embedded == on_disk and len(on_disk) >= 8
    for number, figure in enumerate(page.figures, start=1):
        assert re.match(rf"Figure {number}\. \S", figure["caption"]), figure["caption"][:60]
        assert (
            len(figure["caption"]) > 80 and "without a registered caption" not in figure["caption"]
        )
    # self-contained: images inline, links only to the PDF and SVG twins beside the page
    links = [u for u in page.urls if not u.startswith(prefix) and not u.startswith("#")]
    assert links and all(re.fullmatch(r"[\w/.+-]+\.(pdf|svg)", u) for u in links), links
    assert all((report.folder / u).is_file() for u in links)


def test_table1_is_the_fold_mean_and_sd_with_the_best_in_bold(survival_report):
    results = survival_report.results
    table = page_of(survival_report).table("Table 1. Each cell: mean ± SD")
    assert table["header"][:4] == ["extractor", "modality", "aggregator", "metric"]
    models = [m for m in table["header"][4:] if m != "Avg."]
    codes = {MODEL_LABELS[m]: m for m in ("coxph", "fsvm")}
    stats = results.groupby(["modality", "aggregator", "model", "metric"])["value"].agg(
        ["mean", "std"]
    )
    assert len(table["rows"]) == stats.droplevel("model").index.nunique()
    for r, row in enumerate(table["rows"]):
        _, modality, aggregator, metric = row[:4]
        aggregator = next(a for a in ("mean", "abmil") if display_name(a) == aggregator)
        metric = {"C-Index": "c_index", "C-IPCW": "c_ipcw", "C-AUC": "c_auc", "IBS": "ibs"}[metric]
        for c, model in enumerate(models, start=4):
            mean, sd = stats.loc[(modality, aggregator, codes[model], metric)]
            assert row[c] == ("N/A" if np.isnan(mean) else f"{mean:.3f} ± {sd:.3f}")
            rivals = stats.xs(
                (modality, codes[model], metric), level=("modality", "model", "metric")
            )["mean"].dropna()
            best = (
                None if rivals.empty else (rivals.idxmin() if metric == "ibs" else rivals.idxmax())
            )
            assert ((r, c) in table["bold"]) == (best == aggregator)
    assert "Bold" in table["caption"] and "3 outer cross-validation folds" in table["caption"]


def test_pooled_intervals_comparisons_and_risk_groups_are_the_csv_files(survival_report):
    folder, page = survival_report.folder, page_of(survival_report)
    pooled = pd.read_csv(folder / "concordance_pooled.csv")
    table = page.table("Table 2. Harrell's C-index of the pooled out-of-fold")
    assert "95% patient-level bootstrap-percentile (B=200)" in table["caption"]
    cells = {c for row in table["rows"] for c in row[1:]}
    assert cells == {
        f"{r.c_index:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f})" for r in pooled.itertuples()
    }
    cv = pd.read_csv(folder / "comparisons_cv.csv")
    rows = page.table("Table 3. Per-fold paired differences")["rows"]
    assert [row[6] for row in rows] == [format_p(p) for p in cv["p_value"]]
    assert [row[5] for row in rows] == [
        f"{r.difference:+.3f} ({r.ci_low:+.3f} to {r.ci_high:+.3f})" for r in cv.itertuples()
    ]
    pairs = pd.read_csv(folder / "comparisons_pooled.csv")
    first = pairs[pairs["seed"] == pairs["seed"].iloc[0]]
    assert len(page.table("Table 4. Paired comparisons")["rows"]) == len(first)
    groups = pd.read_csv(folder / "risk_groups.csv")
    pooled_groups = groups[groups["fold"] == "pooled"]
    rows = page.table("Table 5. Test subjects split into low and high risk")["rows"]
    assert [(int(a), int(b)) for _, a, b, *_ in rows] == list(
        zip(pooled_groups["n_low"], pooled_groups["n_high"])
    )
    assert [row[3] for row in rows] == [
        f"{r.hazard_ratio:.2f} ({r.hr_low:.2f}–{r.hr_high:.2f})" for r in pooled_groups.itertuples()
    ]


def test_classification_page_has_auc_intervals_thresholds_and_calibration(classification_report):
    folder, page = classification_report.folder, page_of(classification_report)
    auc = pd.read_csv(folder / "auc_pooled.csv")
    table = page.table("Table 2. AUROC of the pooled out-of-fold")
    assert "DeLong" in table["caption"]
    assert {c for row in table["rows"] for c in row[1:]} == {
        f"{r.auroc:.3f} ({r.ci_low:.3f}–{r.ci_high:.3f})" for r in auc.itertuples()
    }
    metrics = pd.read_csv(folder / "threshold_metrics.csv")
    rows = [t for t in page.tables if t["caption"].split(". ", 1)[-1].startswith("Binary")][0]
    assert [row[2] for row in rows["rows"]] == [
        f"{r.sensitivity:.3f} ({r.sensitivity_ci_low:.3f}–{r.sensitivity_ci_high:.3f})"
        for r in metrics.itertuples()
    ]
    assert any(t["caption"].split(". ", 1)[-1].startswith("Calibration") for t in page.tables)
    assert not any("Kaplan-Meier" in f["caption"] for f in page.figures)


def test_data_summary_and_provenance_identify_the_inputs(survival_report):
    config, manifest = survival_report.config, survival_report.manifest
    page = page_of(survival_report)
    data = dict(page.tables[0]["rows"])
    time = np.array([s.time for s in manifest.subjects])
    event = np.array([s.event for s in manifest.subjects])
    assert data["subjects (patients)"] == "48 (48)"
    assert data["events"].startswith(f"{event.sum()} (")
    reverse = KaplanMeierFitter().fit(time, 1 - event)  # censoring as the event
    assert data["median follow-up (reverse Kaplan-Meier)"] == (
        f"{reverse.median_survival_time_:.4g} days"
    )
    settings = dict(page.tables[-1]["rows"])
    assert hashlib.sha256(config.source.read_bytes()).hexdigest() in settings["config file"]
    assert hashlib.sha256(manifest.path.read_bytes()).hexdigest() in settings["manifest"]
    assert settings["seeds (repeats of the cross-validation)"] == "0, 1"
    assert f"numpy {metadata.version('numpy')}" in settings["packages"]
    assert page.pre == [config.source.read_text(encoding="utf-8")]
