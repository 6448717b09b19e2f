"""The study's statistics tables from long predictions: every number equals the one the
statistics library gives on the rows the table says it uses (pooled out-of-fold test rows,
the subjects both aggregators predicted, the training rows for thresholds), and a planted
difference between aggregators is found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from radiograph.report.comparisons import (
    aggregator_comparisons,
    cross_validated_comparisons,
    fold_risk_groups,
    pooled_concordance,
)
from radiograph.stats.comparison import compare_concordance, compare_cv


@pytest.fixture(scope="module")
def risks() -> pd.DataFrame:
    """90 subjects, 3 folds; aggregator 'good' predicts the event times, 'noise' does not."""
    rng = np.random.default_rng(0)
    n = 90
    time = rng.exponential(size=n)
    event = rng.random(n) < 0.7
    fold_of = np.arange(n) % 3
    rows = []
    for aggregator in ("good", "noise"):
        for model in ("coxph", "rsf"):
            for fold in range(3):
                noise = rng.normal(size=n)
                risk = -time + 0.5 * noise if aggregator == "good" else noise
                for i in range(n):
                    if aggregator == "noise" and i == 0:
                        continue  # one subject lacks this aggregator's prediction
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
                            "risk": risk[i],
                            "time": time[i],
                            "event": event[i],
                        }
                    )
    return pd.DataFrame(rows)


def test_pooled_concordance_is_harrell_on_the_pooled_test_rows(risks):
    table = pooled_concordance(risks, n_boot=200, seed=1)
    test = risks[risks["split"] == "test"]
    for _, row in table[table["model"] != "avg"].iterrows():
        rows = test[(test["aggregator"] == row["aggregator"]) & (test["model"] == row["model"])]
        reference = concordance_index_censored(
            rows["event"].to_numpy(bool), rows["time"].to_numpy(), rows["risk"].to_numpy()
        )
        assert row["c_index"] == pytest.approx(reference[0], abs=1e-12)
        assert row["ci_low"] <= row["c_index"] <= row["ci_high"]
        assert row["n"] == len(rows)
    for _, block in table.groupby("aggregator"):
        models = block[block["model"] != "avg"]
        average = block[block["model"] == "avg"].iloc[0]
        assert average["c_index"] == pytest.approx(models["c_index"].mean(), abs=1e-12)
        assert average["ci_low"] < average["c_index"] < average["ci_high"]


def test_pairwise_comparisons_use_shared_subjects_and_find_the_planted_gap(risks):
    table = aggregator_comparisons(risks, n_boot=300, seed=2)
    assert set(table["method"]) == {"kang-2015", "paired-bootstrap"}
    assert len(table) == 2 * 2 + 1  # 2 models x 2 methods, and the average over models
    test = risks[(risks["split"] == "test") & (risks["subject_id"] != "s000")]
    kang = table[(table["model"] == "coxph") & (table["method"] == "kang-2015")].iloc[0]
    good = test[(test["aggregator"] == "good") & (test["model"] == "coxph")].sort_values(
        "subject_id"
    )
    noise = test[(test["aggregator"] == "noise") & (test["model"] == "coxph")].sort_values(
        "subject_id"
    )
    reference = compare_concordance(good["time"], good["event"], good["risk"], noise["risk"])
    assert kang["difference"] == pytest.approx(reference.difference, abs=1e-12)
    assert kang["p_value"] == pytest.approx(reference.p_value, abs=1e-12)
    assert kang["n"] == 89
    assert (table["difference"] > 0.2).all() and (table["p_value"] < 0.01).all()
    average = table[table["model"] == "avg"].iloc[0]
    singles = table[(table["model"] != "avg") & (table["method"] == "kang-2015")]
    assert average["difference"] == pytest.approx(singles["difference"].mean(), abs=1e-12)


def test_swapping_the_aggregators_flips_the_differences(risks):
    renamed = risks.replace({"aggregator": {"good": "b_good", "noise": "a_noise"}})
    order = renamed.sort_values("aggregator", kind="stable")
    forward = aggregator_comparisons(risks, n_boot=200, seed=3)
    backward = aggregator_comparisons(order, n_boot=200, seed=3)
    assert list(backward["aggregator_a"].unique()) == ["a_noise"]
    np.testing.assert_allclose(backward["difference"], -forward["difference"], atol=1e-12)
    np.testing.assert_allclose(backward["p_value"], forward["p_value"], atol=1e-12)


def test_cross_validated_comparison_is_the_corrected_t_test_of_the_fold_values():
    rng = np.random.default_rng(5)
    rows = []
    for seed in (0, 1):
        for fold in range(5):
            for model in ("coxph", "rsf"):
                for aggregator, shift in (("mean", 0.0), ("sparra", -0.05)):
                    rows.append(
                        {
                            "seed": seed,
                            "fold": fold,
                            "modality": "radiology",
                            "aggregator": aggregator,
                            "model": model,
                            "metric": "c_index",
                            "value": 0.7 + shift + 0.02 * rng.normal(),
                        }
                    )
    results = pd.DataFrame(rows)
    sizes = pd.DataFrame({"seed": [0] * 5, "fold": range(5), "n_train": 160, "n_test": 40})
    table = cross_validated_comparisons(results, sizes)
    assert set(table["model"]) == {"coxph", "rsf", "avg"}
    wide = results.pivot_table(
        index=["seed", "fold", "model"], columns="aggregator", values="value"
    )
    coxph = wide.xs("coxph", level="model")
    reference = compare_cv(coxph["mean"].to_numpy(), coxph["sparra"].to_numpy(), 160, 40)
    row = table[table["model"] == "coxph"].iloc[0]
    assert row["difference"] == pytest.approx(reference.difference, abs=1e-12)
    assert row["p_value"] == pytest.approx(reference.p_value, abs=1e-12)
    assert row["n"] == 10
    average = wide.groupby(level=["seed", "fold"]).mean()
    reference = compare_cv(average["mean"].to_numpy(), average["sparra"].to_numpy(), 160, 40)
    row = table[table["model"] == "avg"].iloc[0]
    assert row["difference"] == pytest.approx(reference.difference, abs=1e-12)


@pytest.mark.parametrize("rule", ["mean", "median", "optimal"])
def test_risk_groups_use_training_thresholds_only(risks, rule):
    table = fold_risk_groups(risks, "coxph", rule=rule)
    per_fold = table[table["fold"] != "pooled"]
    good = risks[(risks["aggregator"] == "good") & (risks["model"] == "coxph")]
    for _, row in per_fold[per_fold["aggregator"] == "good"].iterrows():
        fold = good[good["fold"] == row["fold"]]
        train = fold[fold["split"] == "train"]
        if rule == "mean":
            assert row["threshold"] == pytest.approx(train["risk"].mean())
        elif rule == "median":
            assert row["threshold"] == pytest.approx(train["risk"].median())
        else:
            assert row["threshold"] in set(train["risk"])  # a training value, never a test one
        assert row["n_low"] + row["n_high"] == (fold["split"] == "test").sum()
    pooled = table[(table["fold"] == "pooled") & (table["aggregator"] == "good")].iloc[0]
    assert pooled["n_low"] + pooled["n_high"] == 90
    assert pooled["hazard_ratio"] > 1 and pooled["logrank_p"] < 0.05
    # changing the test risks moves no threshold
    shuffled = risks.copy()
    test = shuffled["split"] == "test"
    shuffled.loc[test, "risk"] = shuffled.loc[test, "risk"].to_numpy()[::-1]
    again = fold_risk_groups(shuffled, "coxph", rule=rule)
    np.testing.assert_allclose(again["threshold"].dropna(), table["threshold"].dropna())
