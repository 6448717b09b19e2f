"""Benchmark: vectorised univariate Cox screening against a loop of per-feature model fits.

Peers, timed in the same run on the same data:

- ``univariate_cox``: :func:`radiograph.survival.screening.univariate_cox`, all features at
  once (Efron ties, Newton-Raphson on blocks of columns).
- ``lifelines loop``: one ``lifelines.CoxPHFitter`` (Efron, default settings) per feature, the
  usual way to screen. Too slow for every feature, so it is timed on a subset and the time
  per feature is extrapolated to all features (the row says so).
- ``sksurv loop``: one ``CoxPHSurvivalAnalysis(ties="efron")`` per feature on the same subset,
  extrapolated likewise (coefficients only: scikit-survival reports no standard errors).

Data: synthetic by default, 240 subjects x 7,000 features (the size the issue asks for;
scikit-survival's ``load_breast_cancer`` has only 76 gene-expression columns, not ~7k).
Gaussian features, the first 20 carry a log-hazard effect, exponential times rounded to whole
days (so tied times occur), ~40% censored. ``--data breast_cancer`` runs the 76 genes of
GSE7390 (198 subjects) instead.

Before the table, agreement on the subset is printed: max |difference| of coefficient and
p-value against lifelines (lifelines' default stopping rule leaves ~1e-4 on the p-values; see
tests/survival/test_univariate_screening.py, where lifelines is run to convergence).

Usage:
    python benchmarks/screening.py                          # 240 x 7000, loops on 40 features
    python benchmarks/screening.py --loop-features 200 --repeats 5
    python benchmarks/screening.py --data breast_cancer
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from radiograph.survival.screening import univariate_cox

GOAL_S = 2.0


def synthetic(
    n_subjects: int, n_features: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, time in days, event) with 20 informative features and tied integer times."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_subjects, n_features))
    log_hazard = X[:, :20] @ rng.normal(scale=0.15, size=20)
    event_time = rng.exponential(1000.0 * np.exp(-log_hazard))
    censor_time = rng.exponential(1500.0, size=n_subjects)
    time_days = np.ceil(np.minimum(event_time, censor_time))
    return X, time_days, event_time <= censor_time


def breast_cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 76 gene-expression columns of scikit-survival's GSE7390 data (198 subjects)."""
    from sksurv.datasets import load_breast_cancer

    X, y = load_breast_cancer()
    genes = [c for c in X.columns if c.startswith("X")]
    return X[genes].to_numpy(float), y["t.tdm"], y["e.tdm"]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def lifelines_loop(X: np.ndarray, time_: np.ndarray, event: np.ndarray) -> np.ndarray:
    """(D, 2) coefficient and p-value of one CoxPHFitter per column."""
    out = []
    for j in range(X.shape[1]):
        frame = pd.DataFrame({"x": X[:, j], "T": time_, "E": event})
        summary = CoxPHFitter().fit(frame, "T", "E").summary.loc["x"]
        out.append((summary["coef"], summary["p"]))
    return np.array(out)


def sksurv_loop(X: np.ndarray, time_: np.ndarray, event: np.ndarray) -> np.ndarray:
    """(D,) coefficient of one CoxPHSurvivalAnalysis (Efron) per column."""
    y = Surv.from_arrays(event, time_)
    return np.array(
        [CoxPHSurvivalAnalysis(ties="efron").fit(X[:, [j]], y).coef_[0] for j in range(X.shape[1])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("synthetic", "breast_cancer"), default="synthetic")
    parser.add_argument("--n-subjects", type=int, default=240)
    parser.add_argument("--n-features", type=int, default=7000)
    parser.add_argument(
        "--loop-features",
        type=int,
        default=40,
        help="features fitted one by one by the loop peers (then extrapolated)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.data == "synthetic":
        X, time_, event = synthetic(args.n_subjects, args.n_features, args.seed)
        source = f"synthetic, seed {args.seed}"
    else:
        X, time_, event = breast_cancer()
        source = "scikit-survival load_breast_cancer (GSE7390), 76 genes"
    n, d = X.shape
    k = min(args.loop_features, d)
    print(
        f"data: {source}; {n} subjects x {d} features, {int(event.sum())} events, "
        f"{np.unique(time_).size} distinct times"
    )

    vec_s, result = timed(lambda: univariate_cox(X, time_, event), args.repeats)
    subset = X[:, :k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        life_s, life = timed(lambda: lifelines_loop(subset, time_, event), 1)
        sks_s, sks = timed(lambda: sksurv_loop(subset, time_, event), 1)

    ours = result[["coef", "p"]].to_numpy()[:k]
    print(
        f"agreement on the first {k} features: "
        f"max |coef - lifelines| = {np.abs(ours[:, 0] - life[:, 0]).max():.2e}, "
        f"max |p - lifelines| = {np.abs(ours[:, 1] - life[:, 1]).max():.2e}, "
        f"max |coef - sksurv| = {np.abs(ours[:, 0] - sks).max():.2e}; "
        f"kept at p < 0.2: {int((result['p'] < 0.2).sum())} of {d}; "
        f"all converged: {bool(result['converged'].all())}"
    )
    print()
    rows = [
        ("univariate_cox (all at once)", d, vec_s, vec_s, "measured"),
        ("lifelines CoxPHFitter loop", k, life_s, life_s / k * d, f"extrapolated from {k}"),
        ("sksurv CoxPHSurvivalAnalysis loop", k, sks_s, sks_s / k * d, f"extrapolated from {k}"),
    ]
    header = f"{'method':36s} {'features timed':>14s} {'seconds':>9s} {f's for {d}':>12s}  note"
    print(header)
    print("-" * len(header))
    for name, count, seconds, total, note in rows:
        print(f"{name:36s} {count:14d} {seconds:9.3f} {total:12.2f}  {note}")
    print()
    print(
        f"goal: screening {d} features <= {GOAL_S:.0f} s -> "
        f"{'met' if vec_s <= GOAL_S else 'NOT met'} ({vec_s:.3f} s, median of {args.repeats}); "
        f"speed-up vs lifelines loop: {life_s / k * d / vec_s:.0f}x"
    )


if __name__ == "__main__":
    main()
