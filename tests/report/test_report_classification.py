"""A classification study's statistics from long predictions: every number equals what the
statistics library gives on the rows the table says it uses, thresholds come from training
rows only, and a planted difference between aggregators is found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

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
from radiograph.stats.discrimination import choose_threshold, delong_test


@pytest.fixture(scope="module")
def probs() -> pd.DataFrame:
    """120 subjects, 3 folds; 'good' separates the classes, 'noise' does not."""
    rng = np.random.default_rng(1)
    n = 120
    label = rng.random(n) < 0.4
    fold_of = np.arange(n) % 3
    rows = []
    for aggregator in ("good", "noise"):
        for model in ("logistic", "rf"):
            for fold in range(3):
                logit = (2.5 * (label - 0.4) if aggregator == "good" else 0) + rng.normal(size=n)
                prob = 1 / (1 + np.exp(-logit))
                for i in range(n):
                    rows.append(
                        {
                            "seed": 0,
                            "modality": "pathology",
                            "aggregator": aggregator,
                            "fold": fold,
                            "model": model,
                            "subject_id": f"s{i:03d}",
                            "patient_id": f"p{i:03d}",
                            "split": "test" if fold_of[i] == fold else "train",
                            "prob": prob[i],
                            "label": int(label[i]),
                        }
                    )
    return pd.DataFrame(rows)


def _test(probs, aggregator, model):
    rows = probs[
        (probs["split"] == "test") & (probs["aggregator"] == aggregator) & (probs["model"] == model)
    ]
    return rows.sort_values("subject_id")


def test_pooled_auc_is_the_auc_of_the_pooled_test_rows(probs):
    table = pooled_auc(probs)
    assert len(table) == 4
    for _, row in table.iterrows():
        rows = _test(probs, row["aggregator"], row["model"])
        assert row["auroc"] == pytest.approx(roc_auc_score(rows["label"], rows["prob"]))
        assert row["ci_low"] < row["auroc"] < row["ci_high"] and row["n"] == 120
    good = table[table["aggregator"] == "good"]
    assert (good["ci_low"] > 0.75).all()


def test_comparisons_are_delong_on_the_same_subjects(probs):
    table = auc_comparisons(probs)
    assert len(table) == 2
    row = table[table["model"] == "logistic"].iloc[0]
    good, noise = _test(probs, "good", "logistic"), _test(probs, "noise", "logistic")
    reference = delong_test(good["label"], good["prob"], noise["prob"])
    assert row["difference"] == pytest.approx(reference.difference, abs=1e-12)
    assert row["p_value"] == pytest.approx(reference.p_value, abs=1e-12)
    assert row["p_value"] < 1e-4
    matrix = delong_p_matrix(probs, 0, "pathology")
    assert matrix.shape == (4, 4)
    assert matrix.loc["good/logistic", "noise/logistic"] == pytest.approx(reference.p_value)


def test_threshold_metrics_use_each_fold_training_youden(probs):
    table = threshold_metrics(probs)
    row = table[(table["aggregator"] == "good") & (table["model"] == "rf")].iloc[0]
    chosen = probs[(probs["aggregator"] == "good") & (probs["model"] == "rf")]
    tp = fp = 0
    for _, fold in chosen.groupby("fold"):
        train, test = fold[fold["split"] == "train"], fold[fold["split"] == "test"]
        threshold = choose_threshold(train["label"], train["prob"])
        predicted = test["prob"] >= threshold
        tp += int((predicted & (test["label"] == 1)).sum())
        fp += int((predicted & (test["label"] == 0)).sum())
    assert (row["tp"], row["fp"]) == (tp, fp)
    assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == 120
    assert row["sensitivity_ci_low"] < row["sensitivity"] < row["sensitivity_ci_high"]
    # test-row probabilities do not move the thresholds
    shuffled = probs.copy()
    test = shuffled["split"] == "test"
    shuffled.loc[test, "prob"] = shuffled.loc[test, "prob"].to_numpy()[::-1]
    again = threshold_metrics(shuffled)
    assert list(again["fold_thresholds"]) == list(table["fold_thresholds"])


def test_calibration_and_decision_curves(probs, tmp_path):
    summary = calibration_summary(probs)
    assert set(summary.columns) >= {
        "slope",
        "intercept_in_the_large",
        "hosmer_lemeshow_p",
        "brier",
        "scaled_brier",
    }
    good = summary[(summary["aggregator"] == "good") & (summary["model"] == "logistic")].iloc[0]
    noise = summary[(summary["aggregator"] == "noise") & (summary["model"] == "logistic")].iloc[0]
    assert good["scaled_brier"] > noise["scaled_brier"]
    curves = calibration_curves(probs, 0, "pathology", "logistic")
    decisions = decision_curves(
        probs, 0, "pathology", "logistic", np.linspace(0.05, 0.6, 12), n_boot=100
    )
    assert set(curves) == set(decisions) == {"good", "noise"}
    assert decisions["good"].net_benefit[2] > decisions["noise"].net_benefit[2]
    plot_calibration_curves(curves, tmp_path / "cal.png", title="pathology, logistic")
    plot_decision_curves(decisions, tmp_path / "dca.png", title="pathology, logistic")
    assert (tmp_path / "cal.png").stat().st_size > 5000
    assert (tmp_path / "dca.png").stat().st_size > 5000
