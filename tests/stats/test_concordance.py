"""Harrell's and Uno's C-index, their intervals and the time-dependent AUC, against R and
scikit-survival.

References:
- tests/stats/reference/concordance_reference.json, written by
  ``Rscript tests/stats/reference/concordance_reference.R`` (survival::lung without its one
  NA row, survival::veteran): Hmisc::rcorr.cens C and S.D., survival::concordance C, for a
  coxph linear predictor, age alone and (lung) ph.ecog alone. Compared at 1e-9 (the measured
  deviation is below 1e-15).
- scikit-survival's ``concordance_index_censored``, ``concordance_index_ipcw`` and
  ``cumulative_dynamic_auc`` (exact equality up to rounding), also inside a loop over the same
  bootstrap resamples that the vectorised bootstrap draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
)
from sksurv.util import Surv

from radiograph.stats.concordance import (
    bootstrap_weights,
    concordance_ci,
    concordance_covariance,
    harrell_c,
    jackknife_weights,
    noether_se,
    time_dependent_auc,
    uno_c,
    weighted_concordance,
)
from radiograph.stats.resampling import (
    bca_interval,
    bootstrap_indices,
    bootstrap_statistic,
    jackknife_statistic,
    percentile_interval,
)

REFERENCE = Path(__file__).parent / "reference" / "concordance_reference.json"
TOL = 1e-9


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text())


def _cases(ref: dict) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, dict]]:
    out = []
    for data in ("lung", "veteran"):
        time = np.asarray(ref[data]["time"], dtype=float)
        event = np.asarray(ref[data]["event"]) == 1
        for name, predictor in ref[data]["predictors"].items():
            out.append((f"{data}/{name}", time, event, np.asarray(predictor["risk"]), predictor))
    return out


def _tied_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-day times (tied times, events tied with censorings) and rounded risks (ties)."""
    rng = np.random.default_rng(seed)
    risk = np.round(rng.normal(size=n), 1)
    time = np.ceil(rng.exponential(30.0 * np.exp(-0.7 * risk)))
    event = rng.random(n) < 0.6
    return time, event, risk


# --- against R ------------------------------------------------------------------------------


def test_harrell_c_matches_rcorr_cens_and_survival_concordance(ref):
    for label, time, event, risk, r in _cases(ref):
        c = harrell_c(time, event, risk)
        assert c == pytest.approx(r["rcorr_c"], abs=TOL), label
        assert c == pytest.approx(r["surv_c"], abs=TOL), label


def test_noether_se_is_half_rcorr_cens_sd(ref):
    for label, time, event, risk, r in _cases(ref):
        se = noether_se(time, event, risk)
        assert se == pytest.approx(r["rcorr_sd"] / 2.0, rel=TOL), label
        # survival::concordance's infinitesimal-jackknife SE is the same quantity.
        assert se == pytest.approx(r["surv_se"], rel=TOL), label


def test_noether_interval_is_wald_with_that_se(ref):
    label, time, event, risk, r = _cases(ref)[0]
    est = concordance_ci(time, event, risk, method="noether", level=0.9)
    se = r["rcorr_sd"] / 2.0
    assert est.method == "noether" and est.n == time.size
    assert est.ci_low == pytest.approx(r["rcorr_c"] - 1.6448536269514722 * se, rel=TOL)
    assert est.ci_high == pytest.approx(r["rcorr_c"] + 1.6448536269514722 * se, rel=TOL)
    z = (r["rcorr_c"] - 0.5) / se
    assert est.p_value == pytest.approx(2 * norm.sf(z), rel=1e-9)


# --- against scikit-survival ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_harrell_c_equals_sksurv_with_tied_times_and_risks(seed):
    time, event, risk = _tied_data(150, seed)
    expected = concordance_index_censored(event, time, risk)[0]
    assert harrell_c(time, event, risk) == pytest.approx(expected, abs=1e-14)


def test_risk_ties_within_tolerance_count_half():
    # Risks 1e-9 apart are tied (scikit-survival's tied_tol=1e-8); a pair of them scores 1/2.
    time, event, risk = [1.0, 2.0], [1, 1], [0.5, 0.5 + 1e-9]
    assert harrell_c(time, event, risk) == 0.5
    assert (
        concordance_index_censored(np.array([True, True]), np.array(time), np.array(risk))[0] == 0.5
    )


@pytest.mark.parametrize("tau", [None, 400.0])
def test_uno_c_equals_sksurv_ipcw(ref, tau):
    for label, time, event, risk, _ in _cases(ref):
        y = Surv.from_arrays(event, time)
        expected = concordance_index_ipcw(y, y, risk, tau=tau)[0]
        assert uno_c(time, event, risk, tau=tau) == pytest.approx(expected, abs=1e-12), label


def test_uno_c_with_training_data_equals_sksurv(ref):
    time = np.asarray(ref["lung"]["time"], dtype=float)
    event = np.asarray(ref["lung"]["event"]) == 1
    risk = np.asarray(ref["lung"]["predictors"]["lp"]["risk"])
    train, test = np.arange(time.size) % 3 != 0, np.arange(time.size) % 3 == 0
    test &= time <= time[train].max()
    expected = concordance_index_ipcw(
        Surv.from_arrays(event[train], time[train]),
        Surv.from_arrays(event[test], time[test]),
        risk[test],
        tau=500.0,
    )[0]
    value = uno_c(
        time[test],
        event[test],
        risk[test],
        tau=500.0,
        time_train=time[train],
        event_train=event[train],
    )
    assert value == pytest.approx(expected, abs=1e-12)


# --- the vectorised bootstrap ---------------------------------------------------------------


def test_vectorised_bootstrap_equals_sksurv_loop_on_the_same_resamples():
    time, event, risk = _tied_data(120, 3)
    loop = bootstrap_statistic(
        lambda rows: concordance_index_censored(event[rows], time[rows], risk[rows])[0],
        time.size,
        n_boot=40,
        seed=7,
    )
    ours = weighted_concordance(time, event, risk, bootstrap_weights(None, time.size, 40, 7))[0]
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-14)


def test_vectorised_bootstrap_with_repeated_patients_equals_loop():
    time, event, risk = _tied_data(90, 4)
    patients = np.arange(90) // 3  # three rows per patient
    draws = bootstrap_indices(patients, 25, 11)
    loop = [concordance_index_censored(event[r], time[r], risk[r])[0] for r in draws]
    ours = weighted_concordance(time, event, risk, bootstrap_weights(patients, 90, 25, 11))[0]
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-14)


def test_uno_bootstrap_reestimates_censoring_like_sksurv_on_each_resample():
    time, event, risk = _tied_data(100, 5)
    tau = float(np.quantile(time, 0.7))

    def uno_on(rows):
        y = Surv.from_arrays(event[rows], time[rows])
        return concordance_index_ipcw(y, y, risk[rows], tau=tau)[0]

    loop = bootstrap_statistic(uno_on, time.size, n_boot=30, seed=2)
    ours = weighted_concordance(
        time, event, risk, bootstrap_weights(None, time.size, 30, 2), kind="uno", tau=tau
    )[0]
    np.testing.assert_allclose(ours, loop, rtol=0, atol=1e-12)


def test_float32_products_are_exact():
    # Integer multiplicities take the float32 path; halving them (same C) forces float64.
    time, event, risk = _tied_data(300, 6)
    weights = bootstrap_weights(None, 300, 20, 0)
    np.testing.assert_allclose(
        weighted_concordance(time, event, risk, weights),
        weighted_concordance(time, event, risk, weights / 2.0),
        rtol=0,
        atol=1e-15,
    )


def test_bca_matches_resampling_bca_fed_by_a_sksurv_loop():
    time, event, risk = _tied_data(80, 8)

    def statistic(rows):
        return concordance_index_censored(event[rows], time[rows], risk[rows])[0]

    est = concordance_ci(time, event, risk, n_boot=200, seed=4, bootstrap_interval="bca")
    boot = bootstrap_statistic(statistic, time.size, n_boot=200, seed=4)
    jack = jackknife_statistic(statistic, time.size)
    low, high = bca_interval(boot, statistic(np.arange(time.size)), jack, 0.95)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert est.method == "bootstrap-bca" and est.extra["n_valid"] == 200
    np.testing.assert_allclose(
        weighted_concordance(time, event, risk, jackknife_weights(None, time.size))[0],
        jack,
        atol=1e-14,
    )


def test_percentile_interval_and_se_come_from_the_resamples():
    time, event, risk = _tied_data(100, 9)
    est = concordance_ci(time, event, risk, n_boot=300, seed=1)
    samples = weighted_concordance(time, event, risk, bootstrap_weights(None, 100, 300, 1))[0]
    assert (est.ci_low, est.ci_high) == percentile_interval(samples, 0.95)
    assert est.se == pytest.approx(np.std(samples, ddof=1))
    assert est.ci_low < est.estimate < est.ci_high
    assert np.isnan(est.p_value)


# --- properties -----------------------------------------------------------------------------


def test_perfect_score_gives_one_with_a_finite_interval():
    rng = np.random.default_rng(0)
    time = rng.permutation(np.arange(1.0, 41.0))
    event = rng.random(40) < 0.7
    event[np.argmin(time)] = True
    risk = -time  # earlier event = higher risk
    for method in ("noether", "bootstrap"):
        est = concordance_ci(time, event, risk, method=method, n_boot=200)
        assert est.estimate == 1.0
        assert np.isfinite([est.ci_low, est.ci_high]).all() and est.ci_high == 1.0
    assert concordance_ci(time, event, risk, method="noether").se == 0.0


def test_reversed_score_gives_one_minus_c():
    time, event, risk = _tied_data(100, 10)
    assert harrell_c(time, event, -risk) == pytest.approx(
        1.0 - harrell_c(time, event, risk), abs=1e-14
    )


def test_permuting_subjects_changes_nothing():
    time, event, risk = _tied_data(120, 11)
    patients = np.arange(120)
    order = np.random.default_rng(1).permutation(120)
    for method in ("noether", "bootstrap"):
        a = concordance_ci(time, event, risk, method=method, n_boot=100, patient_ids=patients)
        b = concordance_ci(
            time[order],
            event[order],
            risk[order],
            method=method,
            n_boot=100,
            patient_ids=patients[order],
        )
        assert a.as_dict() == pytest.approx(b.as_dict(), abs=1e-14, nan_ok=True)


def test_noether_and_kang_variances_are_asymptotically_equal(ref):
    # Not identical (first-order projection vs unbiased U-statistic variance), but the ratio
    # tends to 1: at n = 227 they differ by under 1%.
    label, time, event, risk, _ = _cases(ref)[0]
    _, cov = concordance_covariance(time, event, [risk])
    assert np.sqrt(cov[0, 0]) / noether_se(time, event, risk) == pytest.approx(1.0, abs=0.01)


# --- time-dependent AUC ---------------------------------------------------------------------


def test_time_dependent_auc_equals_sksurv_and_keeps_the_order(ref):
    time = np.asarray(ref["lung"]["time"], dtype=float)
    event = np.asarray(ref["lung"]["event"]) == 1
    risk = np.asarray(ref["lung"]["predictors"]["lp"]["risk"])
    horizons = [365.0, 180.0, 540.0]
    result = time_dependent_auc(time, event, time, event, risk, horizons, n_boot=60, seed=0)
    y = Surv.from_arrays(event, time)
    expected = cumulative_dynamic_auc(y, y, risk, sorted(horizons))[0]
    by_time = {e.extra["time"]: e for e in result}
    assert [e.extra["time"] for e in result] == horizons
    for h, auc in zip(sorted(horizons), expected):
        assert by_time[h].estimate == pytest.approx(auc, abs=1e-14)
        assert by_time[h].ci_low < by_time[h].estimate < by_time[h].ci_high


def test_time_dependent_auc_resample_equals_a_direct_call():
    time, event, risk = _tied_data(100, 12)
    horizons = np.array([10.0, 20.0])
    result = time_dependent_auc(time, event, time, event, risk, horizons, n_boot=5, seed=3)
    y = Surv.from_arrays(event, time)
    rows = bootstrap_indices(None, 5, 3, 100)
    boot = np.array(
        [
            cumulative_dynamic_auc(y, Surv.from_arrays(event[r], time[r]), risk[r], horizons)[0]
            for r in rows
        ]
    )
    for j, est in enumerate(result):
        assert (est.ci_low, est.ci_high) == pytest.approx(percentile_interval(boot[:, j]))


def test_time_dependent_auc_rejects_horizons_outside_follow_up():
    time, event, risk = _tied_data(60, 13)
    with pytest.raises(ValueError, match=r"times: horizon 9999 lies outside"):
        time_dependent_auc(time, event, time, event, risk, [5.0, 9999.0], n_boot=2)
    with pytest.raises(ValueError, match="horizon 0.5"):
        time_dependent_auc(time, event, time, event, risk, [0.5], n_boot=2)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda t, e, r: harrell_c(t, e, r[:-1]), "risk: has 59 entries, expected 60"),
        (lambda t, e, r: harrell_c(t, e, np.where(r > 0, np.nan, r)), "risk: .* non-finite"),
        (lambda t, e, r: harrell_c(t, np.zeros_like(e), r), "event: no events"),
        (lambda t, e, r: harrell_c(np.ones_like(t), np.ones_like(e), r), "no comparable pair"),
        (lambda t, e, r: concordance_ci(t, e, r, kind="harrell", tau=10.0), "tau"),
        (lambda t, e, r: concordance_ci(t, e, r, method="noether", kind="uno"), "noether"),
        (lambda t, e, r: concordance_ci(t, e, r, method="jackknife"), "method"),
        (lambda t, e, r: concordance_ci(t, e, r, level=95), "level"),
        (
            lambda t, e, r: concordance_ci(
                t, e, r, method="noether", patient_ids=np.arange(60) // 2
            ),
            "patient_ids",
        ),
        (
            lambda t, e, r: uno_c(t, e, r, time_train=t[:10] / 100, event_train=e[:10]),
            "largest training time",
        ),
        (lambda t, e, r: concordance_covariance(t[:3], e[:3], [r[:3]]), "at least 4"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    time, event, risk = _tied_data(60, 14)
    event[0] = True
    with pytest.raises(ValueError, match=match):
        call(time, event, risk)
