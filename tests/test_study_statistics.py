"""The study's statistics end to end: a classification study repeated over two seeds writes
AUROC intervals, DeLong comparisons, threshold metrics, calibration and decision curves, and
the corrected t-test over both seeds' folds; every subject with a slide is predicted once per
seed."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from radiograph.study import StudyConfigError, load_study_config, run_study

CLASSIFICATION = """
out_dir: out
cohort:
  synthetic: {subjects: 16, seed: 5, slide_size: [1344, 896]}
pathology: {encoder: efficientnet-lite0}
radiology: null
graphs: {method: slidegraph}
training: {task: classification, folds: 2, epochs: 2, batch_size: 4, seeds: [0, 1]}
aggregators: [mean, abmil]
modality_sets: [[pathology]]
baselines:
  models: [logistic]
  inner_folds: 2
  grids: {logistic: {C: [0.1, 1.0]}}
report: {pooled_boot: 200}
"""


@pytest.mark.slow
def test_classification_study_with_repeated_seeds(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(CLASSIFICATION))
    config = load_study_config(path)
    assert config.seeds == (0, 1) and config.task == "classification"
    results = run_study(config, progress=False)

    assert set(results["seed"]) == {0, 1}
    assert set(results["metric"]) >= {"auroc", "accuracy", "sensitivity", "specificity"}
    for seed in (0, 1):
        assert (config.out_dir / f"splits_seed_{seed}.json").exists()
        assert (config.models_dir / f"seed_{seed}" / "mean" / "pathology" / "fold_1").is_dir()
    report = config.report_dir
    auc = pd.read_csv(report / "auc_pooled.csv")
    assert len(auc) == 2 * 2  # two seeds x two aggregators x one classifier
    assert ((auc["ci_low"] <= auc["auroc"]) & (auc["auroc"] <= auc["ci_high"])).all()
    # every subject with a slide (14 of the 16 synthetic subjects) predicted once per seed
    n = int(auc["n"].iloc[0])
    assert n == 14 and (auc["n"] == n).all()
    pairs = pd.read_csv(report / "comparisons_pooled.csv")
    assert list(pairs[["aggregator_a", "aggregator_b"]].iloc[0]) == ["mean", "abmil"]
    assert pairs["p_value"].between(0, 1).all()
    cv = pd.read_csv(report / "comparisons_cv.csv")
    assert set(cv["model"]) == {"logistic", "avg"} and (cv["n"] == 4).all()  # 2 seeds x 2 folds
    metrics = pd.read_csv(report / "threshold_metrics.csv")
    assert (metrics[["tp", "fp", "tn", "fn"]].sum(axis=1) == n).all()
    for name in (
        "calibration.csv",
        "decision_curves.csv",
        "delong_pathology.csv",
        "calibration_pathology.png",
        "decision_pathology.png",
        "table1.md",
    ):
        assert (report / name).stat().st_size > 0, name
    assert "AUROC" in (report / "table1.md").read_text()


@pytest.mark.parametrize(
    "seeds, message",
    [
        ("[]", "non-empty list"),
        ("[0, 0]", "distinct"),
        ("[-1]", "non-negative"),
        ("3", "non-empty list"),
    ],
)
def test_bad_seeds_are_named(tmp_path, seeds, message):
    path = tmp_path / "study.yaml"
    path.write_text(f"out_dir: x\ncohort: {{manifest: m.csv}}\ntraining: {{seeds: {seeds}}}\n")
    with pytest.raises(StudyConfigError, match=f"training.seeds.*{message}"):
        load_study_config(path)
    path.write_text("out_dir: x\ncohort: {manifest: m.csv}\ntraining: {seeds: [1], seed: 1}\n")
    with pytest.raises(StudyConfigError, match="either 'training.seed' or 'training.seeds'"):
        load_study_config(path)
