"""Paired comparison of C-indices (Kang et al. 2015; paired bootstrap) and the corrected
resampled t-test of cross-validated scores (Nadeau & Bengio 2003).

References (compareC is not in Debian, so Kang's test has no R run here):
- a float64 brute force written in this file from the definitions of the paper: U-statistics
  as means over ordered pairs, their covariance as tau_h tau_g minus the mean of h_ij g_kl over
  ordered quadruples of distinct subjects, then the delta method; on n = 7 (1e-12);
- the worked example printed by R 3.4.4 / compareC 1.3.2 for ``compareC(c(50, 30, 20, 10,
  10), c(1, 0, 1, 0, 1), c(0.2, 0.2, 0.1, 0.2, -0.3), c(0.3, 0, 0.1, -0.3, 0.5))``, quoted in
  the tests of the Python port github.com/wjn0/compare_concordance (7 significant digits);
- the paired bootstrap against scikit-survival's ``concordance_index_censored`` in a loop over
  the same resamples;
- the corrected t-test against a closed-form hand computation (t with 2 degrees of freedom
  has the survival function (1 - t / sqrt(t^2 + 2)) / 2) and against scipy's one-sample
  t-test rescaled by the correction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from sksurv.metrics import concordance_index_censored

from radiograph.stats.comparison import (
    compare_concordance,
    compare_cv,
    corrected_resampled_ttest,
    paired_bootstrap_difference,
    paired_fold_differences,
)
from radiograph.stats.concordance import concordance_covariance, noether_se
from radiograph.stats.resampling import bootstrap_statistic


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tied whole-day times, two correlated risk scores with tied values."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    time = np.ceil(rng.exponential(30.0 * np.exp(-0.8 * signal)))
    event = rng.random(n) < 0.65
    risk_a = np.round(signal + rng.normal(scale=0.5, size=n), 1)
    risk_b = np.round(signal + rng.normal(scale=1.5, size=n), 1)
    return time, event, risk_a, risk_b


# --- Kang et al. 2015: brute force from the definitions ------------------------------------


def _brute_force_kang(time, event, risks):
    """C-indices and their covariance from the definitions, with explicit loops."""
    n = len(time)

    def earlier(i, j):  # i's event comes first and j is known to outlive it
        return event[i] and (time[i] < time[j] or (time[i] == time[j] and not event[j]))

    def kernels(i, j):
        a = 1.0 if earlier(i, j) or earlier(j, i) else 0.0
        out = [a]
        for r in risks:
            if a == 0 or r[i] == r[j]:
                out.append(0.0)
            else:
                first_is_i = earlier(i, j)
                higher_is_i = r[i] > r[j]
                out.append(1.0 if first_is_i == higher_is_i else -1.0)
        return np.array(out)

    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    h = {pair: kernels(*pair) for pair in pairs}
    tau = sum(h.values()) / len(pairs)
    quadruples = list(itertools.permutations(range(n), 4))
    theta2 = sum(np.outer(h[(i, j)], h[(k, m)]) for i, j, k, m in quadruples) / len(quadruples)
    v = np.outer(tau, tau) - theta2
    c = (1.0 + tau[1:] / tau[0]) / 2.0
    jac = np.zeros((len(risks), len(risks) + 1))
    jac[:, 0] = -tau[1:] / (2 * tau[0] ** 2)
    jac[:, 1:] = np.eye(len(risks)) / (2 * tau[0])
    return c, jac @ v @ jac.T


def test_kang_covariance_equals_brute_force_on_seven_subjects():
    time = np.array([5.0, 3.0, 8.0, 3.0, 10.0, 1.0, 8.0])
    event = np.array([1, 1, 0, 0, 1, 1, 1], dtype=bool)
    risk_a = np.array([0.2, 0.9, 0.1, 0.4, -0.3, 0.9, 0.2])
    risk_b = np.array([0.5, 0.1, 0.3, 0.3, 0.2, 0.8, -0.1])
    c, cov = concordance_covariance(time, event, [risk_a, risk_b])
    c_ref, cov_ref = _brute_force_kang(time, event, [risk_a, risk_b])
    np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=0, atol=1e-12)
    result = compare_concordance(time, event, risk_a, risk_b)
    var_diff = cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1]
    assert result.se == pytest.approx(np.sqrt(var_diff), rel=1e-10)
    assert result.statistic == pytest.approx((c_ref[0] - c_ref[1]) / np.sqrt(var_diff), rel=1e-10)
    for r in (risk_a, risk_b):
        assert c[0 if r is risk_a else 1] == pytest.approx(
            concordance_index_censored(event, time, r)[0], abs=1e-14
        )


def test_kang_matches_the_compareC_worked_example():
    # compareC takes scores where higher = longer survival: our risk is their negative.
    time = [50, 30, 20, 10, 10]
    status = [1, 0, 1, 0, 1]
    score_y = np.array([0.2, 0.2, 0.1, 0.2, -0.3])
    score_z = np.array([0.3, 0.0, 0.1, -0.3, 0.5])
    result = compare_concordance(time, status, -score_y, -score_z)
    assert result.method == "kang-2015"
    assert result.estimate_a == pytest.approx(1.0, abs=1e-12)
    assert result.estimate_b == pytest.approx(0.1666667, rel=1e-6)
    assert result.difference == pytest.approx(0.8333333, rel=1e-6)
    assert result.se**2 == pytest.approx(0.04115226, rel=1e-6)
    assert result.extra["var_b"] == pytest.approx(0.04115226, rel=1e-6)
    assert result.statistic == pytest.approx(4.107919, rel=1e-6)
    assert result.p_value == pytest.approx(3.992397e-05, rel=1e-6)


def test_kang_variance_relates_exactly_to_noether():
    # Var_Kang = n(n-1)/((n-2)(n-3)) * (SE_Noether^2 - sum_{i!=j} (b_ij - D a_ij)^2 / (2 R^2)):
    # the same first-order term plus the unbiasedness corrections, so not equal, but the
    # ratio of the SEs tends to 1 (here n = 40).
    time, event, risk, _ = _data(40, 0)
    n = time.size
    a = np.zeros((n, n))
    b = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            first_i = event[i] and (time[i] < time[j] or (time[i] == time[j] and not event[j]))
            first_j = event[j] and (time[j] < time[i] or (time[j] == time[i] and not event[i]))
            if first_i or first_j:
                a[i, j] = 1.0
                b[i, j] = (1.0 if first_i else -1.0) * np.sign(risk[i] - risk[j])
    big_r, somers_d = a.sum(), b.sum() / a.sum()
    q = np.sum((b - somers_d * a) ** 2)
    se = noether_se(time, event, risk)
    _, cov = concordance_covariance(time, event, [risk])
    expected = n * (n - 1) / ((n - 2) * (n - 3)) * (se**2 - q / (2 * big_r**2))
    assert cov[0, 0] == pytest.approx(expected, rel=1e-10)
    assert np.sqrt(cov[0, 0]) / se == pytest.approx(1.0, abs=0.05)


# --- properties of both paired methods ------------------------------------------------------


@pytest.mark.parametrize("method", ["kang-2015", "paired-bootstrap"])
def test_swapping_models_flips_the_sign_and_keeps_p(method):
    time, event, risk_a, risk_b = _data(150, 1)
    ab = compare_concordance(time, event, risk_a, risk_b, method=method, n_boot=300)
    ba = compare_concordance(time, event, risk_b, risk_a, method=method, n_boot=300)
    assert ab.difference == pytest.approx(-ba.difference, abs=1e-15)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((-ba.ci_high, -ba.ci_low), abs=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, abs=1e-15)
    assert ab.se == pytest.approx(ba.se, abs=1e-15)


@pytest.mark.parametrize("method", ["kang-2015", "paired-bootstrap"])
def test_identical_risks_give_zero_difference_and_p_one(method):
    time, event, risk, _ = _data(120, 2)
    result = compare_concordance(time, event, risk, risk.copy(), method=method, n_boot=200)
    assert result.difference == 0.0
    assert result.p_value == 1.0
    assert result.se == 0.0 and result.ci_low == result.ci_high == 0.0


@pytest.mark.parametrize("method", ["kang-2015", "paired-bootstrap"])
def test_permuting_subjects_changes_nothing(method):
    time, event, risk_a, risk_b = _data(130, 3)
    patients = np.arange(130)
    order = np.random.default_rng(0).permutation(130)
    a = compare_concordance(
        time, event, risk_a, risk_b, method=method, n_boot=200, patient_ids=patients
    )
    b = compare_concordance(
        time[order],
        event[order],
        risk_a[order],
        risk_b[order],
        method=method,
        n_boot=200,
        patient_ids=patients[order],
    )
    assert a.as_dict() == pytest.approx(b.as_dict(), abs=1e-13, nan_ok=True)


def test_a_clearly_better_score_is_detected_by_both_methods():
    time, event, risk_a, _ = _data(300, 4)
    risk_b = np.random.default_rng(9).normal(size=300)  # unrelated to the outcome
    for method in ("kang-2015", "paired-bootstrap"):
        result = compare_concordance(time, event, risk_a, risk_b, method=method)
        assert result.difference > 0 and result.ci_low > 0 and result.p_value < 0.01


def test_kang_needs_one_row_per_patient():
    time, event, risk_a, risk_b = _data(40, 5)
    with pytest.raises(ValueError, match="patient_ids"):
        compare_concordance(time, event, risk_a, risk_b, patient_ids=np.arange(40) // 2)
    with pytest.raises(ValueError, match="risk_b: has 39 entries"):
        compare_concordance(time, event, risk_a, risk_b[:-1])
    with pytest.raises(ValueError, match="method"):
        compare_concordance(time, event, risk_a, risk_b, method="delong")


# --- paired bootstrap -----------------------------------------------------------------------


def test_paired_bootstrap_equals_a_sksurv_loop_on_the_same_resamples():
    time, event, risk_a, risk_b = _data(100, 6)

    def difference(rows):
        c_a = concordance_index_censored(event[rows], time[rows], risk_a[rows])[0]
        return c_a - concordance_index_censored(event[rows], time[rows], risk_b[rows])[0]

    d = bootstrap_statistic(difference, time.size, n_boot=150, seed=9)
    result = paired_bootstrap_difference(time, event, risk_a, risk_b, n_boot=150, seed=9)
    low, high = np.percentile(d, [2.5, 97.5])
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), abs=1e-13)
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    assert result.p_value == p
    assert result.se == pytest.approx(np.std(d, ddof=1), abs=1e-13)
    assert result.method == "paired-bootstrap" and np.isnan(result.statistic)


def test_paired_bootstrap_of_uno_c():
    time, event, risk_a, risk_b = _data(150, 7)
    tau = float(np.quantile(time, 0.8))
    result = paired_bootstrap_difference(
        time, event, risk_a, risk_b, kind="uno", tau=tau, n_boot=200
    )
    assert result.extra["kind"] == "uno" and result.extra["n_valid"] == 200
    assert result.ci_low <= result.difference <= result.ci_high


# --- corrected resampled t-test -------------------------------------------------------------


def test_corrected_ttest_closed_form_example():
    # d = (1, 2, 3), n_train = 2, n_test = 1: mean 2, s^2 = 1, correction 1/3 + 1/2 = 5/6,
    # t = 2 / sqrt(5/6), t^2 = 24/5; with 2 df, p = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(12/17).
    result = corrected_resampled_ttest([1.0, 2.0, 3.0], 2, 1, level=0.95)
    assert result.difference == 2.0
    assert result.statistic == pytest.approx(2.0 / np.sqrt(5.0 / 6.0), rel=1e-14)
    assert result.p_value == pytest.approx(1.0 - np.sqrt(12.0 / 17.0), rel=1e-12)
    # With 2 df the CDF is 1/2 + t / (2 sqrt(t^2 + 2)), so the p' quantile is
    # (2p' - 1) / sqrt(2 p' (1 - p')): 4.3027 for p' = 0.975.
    q = (2 * 0.975 - 1) / np.sqrt(2 * 0.975 * (1 - 0.975))
    assert result.ci_high - 2.0 == pytest.approx(q * np.sqrt(5.0 / 6.0), rel=1e-12)
    assert result.extra["df"] == 2 and result.n == 3


def test_corrected_ttest_equals_scipy_ttest_rescaled():
    rng = np.random.default_rng(0)
    a = 0.70 + 0.03 * rng.normal(size=(10, 5))
    b = a - 0.01 + 0.02 * rng.normal(size=(10, 5))
    result = compare_cv(a, b, n_train=160, n_test=40, level=0.9)
    d = (a - b).ravel()
    plain = stats.ttest_1samp(d, 0.0)
    scale = np.sqrt((1 / 50) / (1 / 50 + 40 / 160))
    assert result.statistic == pytest.approx(plain.statistic * scale, rel=1e-12)
    assert result.p_value == pytest.approx(
        2 * stats.t.sf(abs(plain.statistic * scale), 49), rel=1e-12
    )
    se = np.sqrt((1 / 50 + 40 / 160) * d.var(ddof=1))
    assert result.ci_low == pytest.approx(d.mean() - stats.t.ppf(0.95, 49) * se, rel=1e-12)
    assert result.estimate_a == pytest.approx(a.mean()) and result.estimate_b == b.mean()
    assert result.extra["repeats"] == 10 and result.extra["folds"] == 5
    assert result.method == "nadeau-bengio"


def test_corrected_ttest_properties():
    rng = np.random.default_rng(1)
    a, b = rng.random((5, 10)), rng.random((5, 10))
    ab, ba = compare_cv(a, b, 90, 10), compare_cv(b, a, 90, 10)
    assert ab.difference == pytest.approx(-ba.difference, abs=1e-15)
    assert ab.statistic == pytest.approx(-ba.statistic, abs=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, abs=1e-15)
    same = compare_cv(a, a.copy(), 90, 10)
    assert same.difference == 0.0 and same.p_value == 1.0 and same.statistic == 0.0
    constant = corrected_resampled_ttest(np.full(6, 0.125), 90, 10)
    assert constant.p_value == 0.0 and constant.statistic == np.inf
    # The correction widens the interval relative to the naive t-test.
    naive = stats.ttest_1samp((a - b).ravel(), 0.0)
    assert ab.p_value > naive.pvalue


def test_fold_differences_and_bad_input():
    np.testing.assert_array_equal(
        paired_fold_differences([[1, 2], [3, 4]], [[0, 2], [1, 1]]), [1, 0, 2, 3]
    )
    with pytest.raises(ValueError, match="scores_b: shape"):
        paired_fold_differences(np.zeros((2, 5)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="scores_a: non-finite"):
        paired_fold_differences([np.nan, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="at least 2 folds"):
        corrected_resampled_ttest([0.1], 10, 2)
    with pytest.raises(ValueError, match="n_train / n_test"):
        corrected_resampled_ttest([0.1, 0.2], 0, 2)


def test_paired_bootstrap_of_model_averages_equals_the_mean_of_single_models():
    """A (k, n) block compares the mean C over its rows; the same resamples as the rows."""
    rng = np.random.default_rng(4)
    n = 80
    time = rng.exponential(size=n)
    event = rng.random(n) < 0.7
    risks_a = -time[None] + rng.normal(scale=[[0.5], [1.0]], size=(2, n))
    risks_b = rng.normal(size=(2, n))
    block = paired_bootstrap_difference(time, event, risks_a, risks_b, n_boot=300, seed=2)
    singles = [
        paired_bootstrap_difference(time, event, a, b, n_boot=300, seed=2)
        for a, b in zip(risks_a, risks_b)
    ]
    assert block.estimate_a == pytest.approx(np.mean([s.estimate_a for s in singles]), abs=1e-12)
    assert block.difference == pytest.approx(np.mean([s.difference for s in singles]), abs=1e-12)
    assert block.ci_low > 0 and block.p_value < 0.01
    swapped = paired_bootstrap_difference(time, event, risks_b, risks_a, n_boot=300, seed=2)
    assert swapped.difference == pytest.approx(-block.difference, abs=1e-12)
    assert swapped.p_value == pytest.approx(block.p_value)
    with pytest.raises(ValueError, match="risk_b"):
        paired_bootstrap_difference(time, event, risks_a, risks_b[:, :10])


def test_kang_test_holds_its_level_at_moderate_n():
    """Under the null (two scores with the same noise around the truth), Kang's 5%-level test
    rejects about 5% of 300 datasets of 100 patients (measured 5.3%; binomial sd 1.3%).
    At n = 14 it rejected 10.5% of 400 (documented in the docstring: asymptotic test)."""
    rng = np.random.default_rng(11)
    rejections = 0
    for _ in range(300):
        time = rng.exponential(size=100)
        event = rng.random(100) < 0.7
        risk_a = -time + rng.normal(size=100)
        risk_b = -time + rng.normal(size=100)
        rejections += compare_concordance(time, event, risk_a, risk_b).p_value < 0.05
    assert 0.02 <= rejections / 300 <= 0.09
