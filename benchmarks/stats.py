"""Benchmark: the statistics of ``radiograph.stats`` against textbook implementations and loops.

Peers, timed side by side in the same run on the same data:

- DeLong on 10,000 subjects (30% positives, two correlated scores):
  :func:`radiograph.stats.discrimination.auc_ci` (``method="delong"``) and
  :func:`~radiograph.stats.discrimination.delong_test` (placements from midranks,
  O(n log n)) against the textbook O(n^2) DeLong written here: the kernel
  psi(x, y) = 1[x > y] + 1/2 1[x = y] over every positive x negative pair, built in blocks of
  positives so that at most ~4M pair entries exist at once (a full 3,000 x 7,000 matrix would
  be 21M), its row and column means the placements, their sample covariances
  S10 / m + S01 / n the DeLong covariance (DeLong et al. 1988). Goal: < 50 ms for the fast one.
- Patient-level bootstrap of Harrell's C, 1,000 resamples of 1,000 subjects:
  :func:`radiograph.stats.concordance.concordance_ci` (all resamples at once, bilinear forms
  in the resample multiplicities) against a Python loop calling scikit-survival's
  ``concordance_index_censored`` on each resample. The loop is timed on 100 resamples and
  extrapolated to 1,000 (the row says so). Goal: < 2 s.
- Cumulative/dynamic AUC at 3 horizons with 500 resamples of 300 subjects:
  :func:`radiograph.stats.concordance.time_dependent_auc` (a loop over resamples calling
  ``sksurv.metrics.cumulative_dynamic_auc``). Goal: < 5 s.

Before the table, agreement is printed: AUC, SE and p-value of the fast DeLong against the
textbook one, and the first 100 bootstrap C-indices against the scikit-survival loop on the
same resamples. Times are medians over ``--repeats`` runs (the loops: one run).

Usage:
    python benchmarks/stats.py
    python benchmarks/stats.py --repeats 5 --loop-resamples 200
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy.stats import norm
from sksurv.metrics import concordance_index_censored
from threadpoolctl import threadpool_limits

from radiograph.stats.concordance import (
    bootstrap_weights,
    concordance_ci,
    time_dependent_auc,
    weighted_concordance,
)
from radiograph.stats.discrimination import auc_ci, delong_test
from radiograph.stats.resampling import bootstrap_indices

DELONG_GOAL_S = 0.050
BOOTSTRAP_GOAL_S = 2.0
TD_AUC_GOAL_S = 5.0
PAIR_BLOCK = 1 << 22

Row = tuple[str, str, int, float, float | None, str]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# --- DeLong --------------------------------------------------------------------------------


def binary_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30% positives; two correlated scores, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.3
    shared = rng.normal(size=n) + 1.0 * label
    score_a = np.round(shared + rng.normal(scale=0.8, size=n), 2)
    score_b = np.round(shared + rng.normal(scale=1.2, size=n), 2)
    return label, score_a, score_b


def textbook_delong(label: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and DeLong covariance (k, k) from the pairwise kernel, in blocks."""
    positives, negatives = scores[:, label], scores[:, ~label]
    m, n = positives.shape[1], negatives.shape[1]
    v10 = np.empty((scores.shape[0], m))
    v01 = np.zeros((scores.shape[0], n))
    step = max(1, PAIR_BLOCK // n)
    for start in range(0, m, step):
        x = positives[:, start : start + step, None]
        kernel = (x > negatives[:, None, :]) + 0.5 * (x == negatives[:, None, :])
        v10[:, start : start + step] = kernel.mean(axis=2)
        v01 += kernel.sum(axis=1)
    v01 /= m
    auc = v10.mean(axis=1)
    return auc, np.cov(v10) / m + np.cov(v01) / n


def delong_rows(n: int, repeats: int, seed: int) -> list[Row]:
    label, score_a, score_b = binary_data(n, seed)
    scores = np.vstack([score_a, score_b])
    fast_ci_s, single = timed(lambda: auc_ci(label, score_a, method="delong"), repeats)
    fast_test_s, test = timed(lambda: delong_test(label, score_a, score_b), repeats)
    slow_s, (auc, cov) = timed(lambda: textbook_delong(label, scores), max(1, repeats // 3))
    se_diff = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    p_textbook = 2 * norm.sf(abs(auc[0] - auc[1]) / se_diff)
    print(
        f"DeLong agreement ({n} subjects, {int(label.sum())} positives): "
        f"|AUC - textbook| = {abs(single.estimate - auc[0]):.1e}, "
        f"|SE - textbook| = {abs(single.se - np.sqrt(cov[0, 0])):.1e}, "
        f"|p(test) - textbook| = {abs(test.p_value - p_textbook):.1e}"
    )
    return [
        ("DeLong AUC + CI", "auc_ci (midranks)", n, fast_ci_s, DELONG_GOAL_S, "measured"),
        ("DeLong paired test", "delong_test (midranks)", n, fast_test_s, DELONG_GOAL_S, "measured"),
        ("DeLong paired test", "textbook O(n^2), blocks", n, slow_s, None, "measured"),
    ]


# --- bootstrap of the C-index --------------------------------------------------------------


def survival_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-day times (ties), ~35% censored, a risk score with C ~ 0.7."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    event_time = np.ceil(rng.exponential(365.0 * np.exp(-0.8 * risk)))
    censor_time = np.ceil(rng.exponential(700.0, size=n))
    return np.minimum(event_time, censor_time), event_time <= censor_time, risk


def sksurv_loop(
    time_: np.ndarray, event: np.ndarray, risk: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """Harrell's C on each resample, one scikit-survival call per resample."""
    draws = bootstrap_indices(None, n_boot, seed, time_.size)
    return np.array([concordance_index_censored(event[r], time_[r], risk[r])[0] for r in draws])


def bootstrap_rows(n: int, n_boot: int, loop_boot: int, repeats: int, seed: int) -> list[Row]:
    time_, event, risk = survival_data(n, seed)
    fast_s, _ = timed(lambda: concordance_ci(time_, event, risk, n_boot=n_boot, seed=seed), repeats)
    bca_s, _ = timed(
        lambda: concordance_ci(
            time_, event, risk, n_boot=n_boot, seed=seed, bootstrap_interval="bca"
        ),
        repeats,
    )
    loop_s, loop = timed(lambda: sksurv_loop(time_, event, risk, loop_boot, seed), 1)
    ours = weighted_concordance(time_, event, risk, bootstrap_weights(None, n, n_boot, seed))[
        0, :loop_boot
    ]
    tracemalloc.start()
    concordance_ci(time_, event, risk, n_boot=n_boot, seed=seed)
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(
        f"bootstrap agreement ({n} subjects, {int(event.sum())} events): max |C* - sksurv "
        f"C*| over the first {loop_boot} resamples = {np.abs(ours - loop).max():.1e}; "
        f"peak memory of concordance_ci {peak_mb:.0f} MiB"
    )
    task = f"C-index bootstrap x {n_boot}"
    return [
        (task, "concordance_ci, percentile", n, fast_s, BOOTSTRAP_GOAL_S, "measured"),
        (task, "concordance_ci, BCa (+ jackknife)", n, bca_s, BOOTSTRAP_GOAL_S, "measured"),
        (
            task,
            "sksurv concordance_index_censored loop",
            n,
            loop_s * n_boot / loop_boot,
            None,
            f"extrapolated from {loop_boot}",
        ),
    ]


def td_auc_rows(n: int, n_boot: int, seed: int) -> list[Row]:
    time_, event, risk = survival_data(n, seed)
    horizons = np.quantile(time_[event], [0.25, 0.5, 0.75])
    seconds, _ = timed(
        lambda: time_dependent_auc(
            time_, event, time_, event, risk, horizons, n_boot=n_boot, seed=seed
        ),
        1,
    )
    return [
        (
            f"td AUC, 3 horizons x {n_boot}",
            "time_dependent_auc (sksurv loop)",
            n,
            seconds,
            TD_AUC_GOAL_S,
            "measured",
        )
    ]


def collect(args: argparse.Namespace) -> list[Row]:
    rows = delong_rows(args.delong_n, args.repeats, args.seed)
    rows += bootstrap_rows(args.boot_n, args.n_boot, args.loop_resamples, args.repeats, args.seed)
    return rows + td_auc_rows(300, 500, args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delong-n", type=int, default=10_000)
    parser.add_argument("--boot-n", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--loop-resamples",
        type=int,
        default=100,
        help="resamples run by the scikit-survival loop (then extrapolated)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    args = parser.parse_args()

    with threadpool_limits(args.threads):
        rows = collect(args)
    print()
    print(f"threads: {args.threads}; times are medians of {args.repeats} runs")
    header = (
        f"{'task':30s} {'method':40s} {'n':>6s} {'seconds':>9s} {'goal (s)':>9s} {'met':>4s}  note"
    )
    print(header)
    print("-" * len(header))
    for task, method, n, seconds, goal, note in rows:
        goal_text = "-" if goal is None else f"{goal:g}"
        met = "-" if goal is None else ("yes" if seconds <= goal else "NO")
        print(f"{task:30s} {method:40s} {n:6d} {seconds:9.3f} {goal_text:>9s} {met:>4s}  {note}")


if __name__ == "__main__":
    main()
