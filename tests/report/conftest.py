"""A finished study's folder, made in seconds: the files the training and baseline stages
leave (``baseline_risks.csv`` per fold, the long results), then the real
:func:`radiograph.study.write_report`, which writes every table, figure and ``index.html``.

Risks are planted: ``hazard`` sets each subject's event time (survival) or label
(classification); the ``mean`` aggregator's risk follows it closely, ``abmil``'s loosely.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from radiograph.graph import build_spatial_graph, plot_graph_2d
from radiograph.manifest import Manifest, load_manifest
from radiograph.stats.concordance import harrell_c
from radiograph.study import StudyConfig, load_study_config, write_report

N_SUBJECTS = 48
FOLDS = 3
SEEDS = (0, 1)
STRENGTH = {"mean": 1.5, "abmil": 0.4}
MODELS = {"survival": ("coxph", "fsvm"), "classification": ("logistic",)}
MODALITY_SETS = (("pathology",), ("radiology", "pathology"))


@dataclass(frozen=True)
class StudyReport:
    config: StudyConfig
    manifest: Manifest
    results: pd.DataFrame

    @property
    def folder(self) -> Path:
        return self.config.report_dir


def make_study_report(root: Path, task: str) -> StudyReport:
    """Write the study folder under ``root`` and run ``write_report`` on it."""
    rng = np.random.default_rng(0)
    ids = [f"S{i:02d}" for i in range(N_SUBJECTS)]
    hazard = rng.normal(size=N_SUBJECTS)
    event_time = 365.0 * rng.exponential(np.exp(-hazard))
    censor_time = 365.0 * rng.uniform(0.5, 4.0, N_SUBJECTS)
    time = np.round(np.minimum(event_time, censor_time), 1) + 1.0
    event = (event_time <= censor_time).astype(int)
    label = (hazard + rng.normal(scale=0.5, size=N_SUBJECTS) > 0).astype(int)
    pd.DataFrame(
        {
            "subject_id": ids,
            "patient_id": [f"P{i:02d}" for i in range(N_SUBJECTS)],
            "centre": np.where(np.arange(N_SUBJECTS) % 2, "A", "B"),
            "time": time,
            "time_unit": "days",
            "event": event,
            "label": label,
        }
    ).to_csv(root / "manifest.csv", index=False)
    training = (
        "{task: classification, folds: 3, seeds: [0, 1]}"
        if task == "classification"
        else "{folds: 3, seeds: [0, 1]}"
    )
    baselines = "{models: [logistic]}" if task == "classification" else "{models: [coxph, fsvm]}"
    (root / "study.yaml").write_text(
        textwrap.dedent(f"""
        out_dir: out
        cohort: {{manifest: manifest.csv}}
        training: {training}
        aggregators: [mean, abmil]
        modality_sets: [[pathology], [radiology, pathology]]
        baselines: {baselines}
        report: {{pooled_boot: 200}}
        """)
    )
    config = load_study_config(root / "study.yaml")
    manifest = load_manifest(root / "manifest.csv", check_files=False)
    rows = []
    for seed in SEEDS:
        fold_of = np.random.default_rng(seed).permutation(N_SUBJECTS) % FOLDS
        for modalities in MODALITY_SETS:
            for aggregator, strength in STRENGTH.items():
                for fold in range(FOLDS):
                    risks = _fold_risks(rng, ids, hazard, fold_of == fold, strength, task)
                    folder = (
                        config.seed_dir(seed) / aggregator / "+".join(modalities) / f"fold_{fold}"
                    )
                    folder.mkdir(parents=True)
                    risks.to_csv(folder / "baseline_risks.csv", index=False)
                    key = {
                        "extractor": "synthetic",
                        "modality": " + ".join(modalities),
                        "aggregator": aggregator,
                        "seed": seed,
                        "fold": fold,
                    }
                    rows += _fold_metrics(rng, risks, time, event, label, key, task)
    results = pd.DataFrame(rows)
    _look_inside_picture(config.report_dir / "look_inside_sparra_fold0")
    write_report(config, manifest, results)
    return StudyReport(config, manifest, results)


def _fold_risks(rng, ids, hazard, test, strength, task) -> pd.DataFrame:
    frames = []
    for model in MODELS[task]:
        risk = strength * hazard + rng.normal(size=len(ids))
        if task == "classification":
            risk = 1.0 / (1.0 + np.exp(-risk))
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "subject_id": ids,
                    "split": np.where(test, "test", "train"),
                    "risk": risk,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _fold_metrics(rng, risks, time, event, label, key, task) -> list[dict]:
    rows = []
    test = risks["split"] == "test"
    for model, block in risks[test].groupby("model", sort=False):
        index = block["subject_id"].str[1:].astype(int).to_numpy()
        if task == "classification":
            values = {
                "auroc": _auc(label[index], block["risk"].to_numpy()),
                "accuracy": rng.uniform(0.5, 0.8),
                "sensitivity": rng.uniform(0.4, 0.9),
                "specificity": rng.uniform(0.4, 0.9),
            }
        else:
            c = harrell_c(time[index], event[index], block["risk"].to_numpy())
            values = {
                "c_index": c,
                "c_ipcw": c + rng.normal(scale=0.02),
                "c_auc": c + rng.normal(scale=0.03),
                "ibs": np.nan if model == "fsvm" else rng.uniform(0.15, 0.25),
            }
        rows += [{**key, "model": model, "metric": m, "value": v} for m, v in values.items()]
    return rows


def _auc(label: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score))


def _look_inside_picture(folder: Path) -> None:
    """One node-importance picture, as ``look_inside`` names them, over a blank slide."""
    rng = np.random.default_rng(3)
    coords = rng.integers(0, 20, (40, 2)).astype(float) * 224.0
    graph = build_spatial_graph(
        np.unique(coords, axis=0), rng.normal(size=(len(np.unique(coords, axis=0)), 4)), "knn", k=4
    )
    graph.num_patches = torch.ones(graph.num_nodes, dtype=torch.long)
    plot_graph_2d(
        graph,
        np.full((300, 300, 3), 245, dtype=np.uint8),
        16.0,
        rng.uniform(size=graph.num_nodes),
        patch_size=224.0,
        mpp=0.5,
        value_label="node importance",
        path=folder / "top1_S07_pathology.png",
    )


@pytest.fixture(scope="session")
def survival_report(tmp_path_factory) -> StudyReport:
    return make_study_report(tmp_path_factory.mktemp("survival_report"), "survival")


@pytest.fixture(scope="session")
def classification_report(tmp_path_factory) -> StudyReport:
    return make_study_report(tmp_path_factory.mktemp("classification_report"), "classification")
