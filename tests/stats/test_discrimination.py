"""Binary discrimination against pROC (tests/stats/reference/proc_reference.json, made by
proc_reference.R on pROC's aSAH data), R's prop.test, float64 hand computations and
scikit-learn, plus properties of the tests and intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from radiograph.stats.discrimination import (
    BINARY_METRICS,
    auc_ci,
    binary_metrics,
    choose_threshold,
    delong_matrix,
    delong_test,
    delong_test_unpaired,
    evaluate_classification,
    wilson_interval,
    youden_threshold,
)
from radiograph.stats.resampling import bca_interval, bootstrap_indices, jackknife_statistic

REFERENCE = json.loads((Path(__file__).parent / "reference" / "proc_reference.json").read_text())
LABEL = np.array(REFERENCE["data"]["label"])
SCORES = {name: np.array(REFERENCE["data"][name]) for name in ("s100b", "wfns", "ndka")}
TOL = 1e-9  # pROC's numbers are written with 15 significant digits


def tied_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated scores rounded to one decimal (many ties)."""
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.4
    a = np.round(rng.normal(size=n) + label, 1)
    b = np.round(a + rng.normal(size=n), 1)
    return label, a, b


def textbook_delong(label: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) from the O(m n) kernel psi(x, y) = 1 (x > y), 1/2 (x = y), 0:
    V10 = row means, V01 = column means, S = S10 / m + S01 / n with sample covariances."""
    aucs, v10s, v01s = [], [], []
    for score in scores:
        x, y = score[label][:, None], score[~label][None, :]
        kernel = (x > y) + 0.5 * (x == y)
        aucs.append(kernel.mean())
        v10s.append(kernel.mean(axis=1))
        v01s.append(kernel.mean(axis=0))
    m, n = len(v10s[0]), len(v01s[0])
    return np.array(aucs), np.cov(np.array(v10s)) / m + np.cov(np.array(v01s)) / n


# ------------------------------------------------------------------------- pROC references


@pytest.mark.parametrize("name", ["s100b", "wfns", "ndka"])
@pytest.mark.parametrize("key, level", [("auc", 0.95), ("auc_90", 0.90)])
def test_auc_and_delong_interval_equal_proc(name, key, level):
    reference = REFERENCE[key][name]
    assert reference["direction"] == "<"  # pROC's auto direction agrees with ours
    ours = auc_ci(LABEL, SCORES[name], level=level)
    assert ours.estimate == pytest.approx(reference["auc"], abs=TOL)
    assert ours.ci_low == pytest.approx(reference["ci_low"], abs=TOL)
    assert ours.ci_high == pytest.approx(reference["ci_high"], abs=TOL)
    assert ours.extra == {"n_pos": 41, "n_neg": 72} and ours.n == 113


@pytest.mark.parametrize("case", ["clipped", "perfect"])
def test_delong_interval_is_clipped_to_one_as_proc(case):
    reference = REFERENCE["edge_cases"][case]
    ours = auc_ci(reference["label"], reference["score"])
    assert ours.estimate == pytest.approx(reference["auc"], abs=TOL)
    assert ours.ci_low == pytest.approx(reference["ci_low"], abs=TOL)
    assert ours.ci_high == reference["ci_high"] == 1.0


@pytest.mark.parametrize("pair", ["s100b_ndka", "wfns_s100b"])
def test_paired_delong_test_equals_proc_roc_test(pair):
    reference = REFERENCE["paired"][pair]
    ours = delong_test(LABEL, SCORES[reference["a"]], SCORES[reference["b"]])
    for field in ("statistic", "p_value", "difference", "ci_low", "ci_high"):
        assert getattr(ours, field) == pytest.approx(reference[field], abs=TOL), field
    assert ours.estimate_a == pytest.approx(reference["auc_a"], abs=TOL)
    assert ours.estimate_b == pytest.approx(reference["auc_b"], abs=TOL)


def test_unpaired_delong_test_equals_proc_roc_test():
    reference = REFERENCE["unpaired"]
    ours = delong_test_unpaired(
        reference["label_a"], reference["score_a"], reference["label_b"], reference["score_b"]
    )
    assert ours.estimate_a == pytest.approx(reference["auc_a"], abs=TOL)
    assert ours.estimate_b == pytest.approx(reference["auc_b"], abs=TOL)
    assert ours.statistic == pytest.approx(reference["statistic"], abs=TOL)
    assert ours.p_value == pytest.approx(reference["p_value"], abs=TOL)
    assert ours.extra["df"] == pytest.approx(reference["df"], rel=TOL)
    assert ours.ci_low < ours.difference < ours.ci_high


def test_youden_threshold_gives_proc_best_coords():
    reference = REFERENCE["youden"]
    score = SCORES["s100b"]
    threshold = choose_threshold(LABEL, score)
    # pROC reports the midpoint below the first score predicted positive; we report that score
    assert threshold == score[score > reference["threshold"]].min()
    assert score[score < reference["threshold"]].max() < reference["threshold"] < threshold
    ours = binary_metrics(LABEL, score, threshold)
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        assert getattr(ours, name).estimate == pytest.approx(reference[name], abs=TOL), name
    assert (ours.tp, ours.fp, ours.tn, ours.fn) == tuple(
        reference[k] for k in ("tp", "fp", "tn", "fn")
    )


def test_wilson_intervals_equal_prop_test():
    reference = REFERENCE["fixed_threshold"]
    ours = binary_metrics(LABEL, SCORES["s100b"], reference["threshold"])
    assert (ours.tp, ours.fp, ours.tn, ours.fn) == tuple(
        reference[k] for k in ("tp", "fp", "tn", "fn")
    )
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        metric, expected = getattr(ours, name), reference[name]
        assert metric.method == "wilson" and metric.n == expected["n"]
        for field in ("estimate", "ci_low", "ci_high"):
            assert getattr(metric, field) == pytest.approx(expected[field], abs=TOL), name


# ---------------------------------------------------------------- hand computations, sklearn


def test_fast_delong_equals_the_quadratic_textbook_computation():
    label, a, b = tied_sample(300, seed=1)
    aucs, covariance = textbook_delong(label, np.vstack([a, b]))
    single = auc_ci(label, a)
    assert single.estimate == pytest.approx(aucs[0], abs=1e-10)
    assert single.se == pytest.approx(math.sqrt(covariance[0, 0]), abs=1e-10)
    paired = delong_test(label, a, b)
    assert paired.difference == pytest.approx(aucs[0] - aucs[1], abs=1e-10)
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    assert paired.se == pytest.approx(math.sqrt(variance), abs=1e-10)
    assert single.estimate == pytest.approx(roc_auc_score(label, a), abs=1e-12)


@pytest.mark.parametrize("patients", [None, np.arange(80) // 3])  # clusters: ragged resamples
def test_vectorised_bootstrap_equals_a_loop_over_sklearn(patients):
    label, score, _ = tied_sample(80, seed=2)
    n_boot, seed = 300, 4
    ours = auc_ci(
        label,
        score,
        method="bootstrap",
        n_boot=n_boot,
        seed=seed,
        patient_ids=patients,
        bootstrap_interval="bca",
    )

    def auc(rows: np.ndarray) -> float:
        if label[rows].all() or not label[rows].any():
            raise ValueError("a single class")
        return roc_auc_score(label[rows], score[rows])

    resamples = bootstrap_indices(patients, n_boot, seed, n_rows=80)
    samples = np.array([auc(rows) for rows in resamples])
    jackknife = jackknife_statistic(auc, 80, patient_ids=patients)
    low, high = bca_interval(samples, roc_auc_score(label, score), jackknife, 0.95)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert ours.se == pytest.approx(np.std(samples, ddof=1), abs=1e-12)
    assert ours.method == "bootstrap-bca" and ours.extra["n_boot"] == n_boot


def test_bootstrap_agrees_with_delong_on_asah():
    for name in SCORES:
        delong = auc_ci(LABEL, SCORES[name])
        for kind in ("bca", "percentile"):
            boot = auc_ci(LABEL, SCORES[name], method="bootstrap", seed=1, bootstrap_interval=kind)
            assert boot.estimate == delong.estimate
            assert boot.ci_low < delong.estimate < boot.ci_high
            width_ratio = (boot.ci_high - boot.ci_low) / (delong.ci_high - delong.ci_low)
            assert 0.8 < width_ratio < 1.2, (name, kind, width_ratio)


def test_binary_metrics_by_hand_and_f1_by_bootstrap():
    label, score, _ = tied_sample(90, seed=3)
    ours = binary_metrics(label, score, 0.5, n_boot=500, seed=2)
    predicted = score >= 0.5
    tp, fp = np.sum(predicted & label), np.sum(predicted & ~label)
    fn, tn = np.sum(~predicted & label), np.sum(~predicted & ~label)
    assert (ours.tp, ours.fp, ours.tn, ours.fn) == (tp, fp, tn, fn)
    assert ours.f1.estimate == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-15)
    assert ours.f1.method == "bootstrap-percentile"
    assert ours.f1.ci_low < ours.f1.estimate < ours.f1.ci_high
    boot = binary_metrics(label, score, 0.5, method="bootstrap", n_boot=500, seed=2)
    assert boot.f1 == ours.f1  # the same resamples
    for name in BINARY_METRICS:
        metric = getattr(boot, name)
        assert metric.method == "bootstrap-percentile"
        assert metric.estimate == getattr(ours, name).estimate
        assert metric.ci_low <= metric.estimate <= metric.ci_high
    table = ours.as_dict()
    assert table["sensitivity_ci_low"] == ours.sensitivity.ci_low and table["tp"] == tp
    assert set(table) == {"threshold", "tp", "fp", "tn", "fn"} | {
        f"{name}{suffix}" for name in BINARY_METRICS for suffix in ("", "_ci_low", "_ci_high")
    }


def test_undefined_proportions_are_nan_with_a_reason():
    label, score = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.4, 0.3, 0.2, 0.35])
    ours = binary_metrics(label, score, threshold=1.0, n_boot=50)
    assert math.isnan(ours.ppv.estimate) and math.isnan(ours.ppv.ci_low)
    assert "no predicted positives" in ours.ppv.method
    assert ours.sensitivity.estimate == 0.0 and ours.npv.estimate == 0.4
    negatives_only = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.25, n_boot=50)
    assert math.isnan(negatives_only.sensitivity.estimate)
    assert "no positives" in negatives_only.sensitivity.method
    assert negatives_only.specificity.estimate == pytest.approx(2 / 3)


def test_wilson_interval_edges():
    zero = wilson_interval(0, 10)
    assert zero.estimate == 0.0 and zero.ci_low == 0.0 and 0 < zero.ci_high < 0.35
    assert math.isnan(wilson_interval(0, 0).estimate)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


# ------------------------------------------------------------------------------ properties


def test_swapping_the_scores_flips_the_difference_and_keeps_p():
    label, a, b = tied_sample(120, seed=5)
    ab, ba = delong_test(label, a, b), delong_test(label, b, a)
    assert ab.difference == -ba.difference and ab.statistic == pytest.approx(-ba.statistic)
    assert ab.p_value == pytest.approx(ba.p_value, abs=1e-15)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((-ba.ci_high, -ba.ci_low))
    unpaired_ab = delong_test_unpaired(label[:60], a[:60], label[60:], b[60:])
    unpaired_ba = delong_test_unpaired(label[60:], b[60:], label[:60], a[:60])
    assert unpaired_ab.difference == -unpaired_ba.difference
    assert unpaired_ab.p_value == pytest.approx(unpaired_ba.p_value, abs=1e-15)


def test_identical_scores_give_p_one():
    label, a, _ = tied_sample(60, seed=6)
    same = delong_test(label, a, a.copy())
    assert same.difference == 0.0 and same.p_value == 1.0 and same.statistic == 0.0
    assert same.ci_low == same.ci_high == 0.0
    perfect = (label * 2.0, label * 3.0)  # both AUC 1: variance 0 too
    assert delong_test(label, *perfect).p_value == 1.0
    assert delong_test_unpaired(label, perfect[0], label, perfect[1]).p_value == 1.0


def test_permuting_subjects_changes_nothing():
    label, a, b = tied_sample(100, seed=7)
    order = np.random.default_rng(0).permutation(100)
    single, moved = auc_ci(label, a), auc_ci(label[order], a[order])
    for field in ("estimate", "ci_low", "ci_high", "se"):
        assert getattr(single, field) == pytest.approx(getattr(moved, field), abs=1e-14)
    paired, permuted = delong_test(label, a, b), delong_test(label[order], a[order], b[order])
    for field in ("difference", "p_value", "ci_low", "ci_high"):
        assert getattr(paired, field) == pytest.approx(getattr(permuted, field), abs=1e-14)
    assert choose_threshold(label, a) == choose_threshold(label[order], a[order])
    assert (
        binary_metrics(label, a, 0.3).as_dict()["tp"]
        == binary_metrics(label[order], a[order], 0.3).as_dict()["tp"]
    )


def test_perfect_separation_gives_auc_one_with_a_finite_interval():
    label = np.r_[np.zeros(20), np.ones(15)]
    score = np.r_[np.linspace(0, 1, 20), np.linspace(2, 3, 15)]
    for method in ("delong", "bootstrap"):
        ours = auc_ci(label, score, method=method, n_boot=200)
        assert ours.estimate == 1.0 and (ours.ci_low, ours.ci_high) == (1.0, 1.0), method
    assert auc_ci(label, -score).estimate == 0.0  # the direction is never flipped


def test_delong_matrix_collects_the_pairwise_tests():
    matrix = delong_matrix(LABEL, SCORES)
    assert list(matrix.index) == list(SCORES) and np.allclose(matrix, matrix.T, atol=1e-15)
    assert (np.diag(matrix) == 1.0).all()
    for a in SCORES:
        for b in SCORES:
            if a != b:
                expected = delong_test(LABEL, SCORES[a], SCORES[b]).p_value
                assert matrix.loc[a, b] == pytest.approx(expected, abs=1e-14)


def test_bootstrap_is_seeded():
    first = auc_ci(LABEL, SCORES["ndka"], method="bootstrap", n_boot=200, seed=3)
    assert first == auc_ci(LABEL, SCORES["ndka"], method="bootstrap", n_boot=200, seed=3)
    assert first != auc_ci(LABEL, SCORES["ndka"], method="bootstrap", n_boot=200, seed=4)


# ------------------------------------------------------------------------------ thresholds


def test_threshold_rules_by_brute_force():
    label, score, _ = tied_sample(150, seed=8)
    candidates = np.unique(score)

    def sensitivity(t: float) -> float:
        return np.mean(score[label] >= t)

    def specificity(t: float) -> float:
        return np.mean(score[~label] < t)

    high = choose_threshold(label, score, "sensitivity", target=0.8)
    assert high == max(t for t in candidates if sensitivity(t) >= 0.8)
    low = choose_threshold(label, score, "specificity", target=0.9)
    assert low == min(t for t in candidates if specificity(t) >= 0.9)
    assert choose_threshold(label, score, "specificity", target=1.0) == (
        np.inf if score[~label].max() == score.max() else score[score > score[~label].max()].min()
    )


def test_youden_threshold_maximises_j_by_brute_force():
    rng = np.random.default_rng(5)
    label = rng.random(80) < 0.4
    score = rng.normal(size=80) + 1.2 * label
    best = youden_threshold(score, label)

    def j(t: float) -> float:
        predicted = score >= t
        return predicted[label].mean() + (~predicted[~label]).mean() - 1

    assert j(best) == pytest.approx(max(j(t) for t in score))


@pytest.mark.parametrize("seed", range(5))
def test_youden_threshold_equals_the_sklearn_roc_curve_maximum(seed):
    label, score, _ = tied_sample(70, seed=seed)
    fpr, tpr, thresholds = roc_curve(label, score)
    assert youden_threshold(score, label) == thresholds[np.argmax(tpr - fpr)]


# --------------------------------------------------------- fold metrics (from survival/)


def test_classification_metrics_use_the_training_threshold():
    rng = np.random.default_rng(6)
    label_train = rng.random(100) < 0.5
    score_train = rng.normal(size=100) + label_train
    label_test = rng.random(60) < 0.3
    score_test = rng.normal(size=60) + label_test
    threshold = youden_threshold(score_train, label_train)
    predicted = score_test >= threshold
    ours = evaluate_classification(score_train, label_train, score_test, label_test)
    assert ours["auroc"] == pytest.approx(roc_auc_score(label_test, score_test), abs=1e-12)
    assert ours["auprc"] == pytest.approx(
        average_precision_score(label_test, score_test), abs=1e-12
    )
    assert ours["accuracy"] == np.mean(predicted == label_test)
    tp = np.sum(predicted & label_test)
    tn = np.sum(~predicted & ~label_test)
    assert ours["sensitivity"] == tp / label_test.sum()
    assert ours["specificity"] == tn / (~label_test).sum()
    flipped = evaluate_classification(score_train, label_train, score_test, ~label_test)
    assert flipped["sensitivity"] == np.mean(predicted[~label_test])  # same threshold


def test_classification_bootstrap_equals_a_loop_over_sklearn():
    label, score, _ = tied_sample(60, seed=9)
    patients = np.arange(60) // 2
    ours = evaluate_classification(
        score, label, score, label, patient_ids=patients, n_boot=200, seed=1
    )
    rows_of = bootstrap_indices(patients, 200, 1)
    auprc = [average_precision_score(label[rows], score[rows]) for rows in rows_of]
    low, high = np.percentile(auprc, [2.5, 97.5])
    assert (ours["auprc_ci_low"], ours["auprc_ci_high"]) == pytest.approx((low, high), abs=1e-12)
    for name in ("auroc", "auprc", "accuracy", "sensitivity", "specificity"):
        assert ours[f"{name}_ci_low"] < ours[name] < ours[f"{name}_ci_high"], name


def test_classification_metrics_of_a_single_class_fold_are_nan_where_undefined():
    label_train, score_train = np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.6])
    with pytest.warns(UserWarning, match="undefined on 20 of 20 resamples"):
        ours = evaluate_classification(
            score_train, label_train, [0.2, 0.7, 0.9], [1, 1, 1], n_boot=20
        )
    assert math.isnan(ours["auroc"]) and math.isnan(ours["auprc"])
    assert math.isnan(ours["specificity"]) and math.isnan(ours["auprc_ci_low"])
    assert ours["accuracy"] == ours["sensitivity"] == pytest.approx(2 / 3)


def test_classification_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="label_test"):
        evaluate_classification(np.arange(4.0), [0, 1, 0, 1], np.arange(3.0), [0, 1, 2])


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3]), "score: .*lengths differ"),
        (lambda: auc_ci([1, 1, 1], [0.1, 0.2, 0.3]), "label: a single class"),
        (lambda: auc_ci([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4]), "score: .*NaN"),
        (lambda: auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], method="wald"), "method"),
        (lambda: auc_ci([0, 1, 0], [0.1, 0.2, 0.3]), "label: DeLong's variance needs"),
        (lambda: auc_ci([0, 1, 0, 1], [1, 2, 3, 4], patient_ids=[1, 1, 2, 3]), "patient_ids"),
        (lambda: delong_test([0, 1, 0, 1], [1, 2, 3, 4], [1, 2, 3]), "score_b: .*lengths differ"),
        (lambda: delong_test_unpaired([0, 1, 0, 1], [1, 2, 3, 4], [1, 1], [1, 2]), "label_b"),
        (lambda: delong_matrix([0, 1, 0, 1], {"m": [1, 2, np.nan, 4]}), "scores\\['m'\\]"),
        (lambda: binary_metrics([0, 1], [0.1, 0.2], np.nan), "threshold"),
        (lambda: choose_threshold([0, 1, 1], [1, 2, 3], "sensitivity"), "target"),
        (lambda: choose_threshold([0, 1, 1], [1, 2, 3], "youden", target=0.5), "target"),
        (lambda: choose_threshold([0, 1, 1], [1, 2, 3], "best"), "rule"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
