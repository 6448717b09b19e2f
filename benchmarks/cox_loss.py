"""Benchmark: radiograph's O(n log n) Cox loss against the O(n^2) risk-matrix form and torchsurv.

Peers, timed side by side on the same data (forward + backward, float32, CPU):

- ``reference``: the loss of the RadioPath reference code (``CoxSurvLoss``, credited there to
  cox-nnet): the risk-set indicator matrix built with a Python double loop, then
  ``-mean((theta - log(sum(exp(theta) * R, 1))) * event)``. Breslow ties; averaged over all
  subjects instead of the events.
- ``matrix``: the same O(n^2) formula with the indicator matrix built by broadcasting (the
  fastest the matrix form gets).
- ``torchsurv``: ``torchsurv.loss.cox.neg_partial_log_likelihood`` (Efron and Breslow).
- ``cox_nll``: :func:`radiograph.nn.losses.cox_nll` (Efron and Breslow).

Times are integer days, so tied event times occur. Before timing, the values are checked in
float64: cox_nll(breslow) against the reference and the matrix form (rescaled from the mean over
subjects to the mean over events) and against torchsurv, cox_nll(efron) against torchsurv's Efron
(torchsurv's ``"mean"`` averages over distinct event times, so sums are compared; torchsurv
accumulates its tie sums in float32 even for float64 input, so expect ~1e-8 there).

Usage:
    python benchmarks/cox_loss.py                      # n = 256 .. 8192, reference loop up to 1024
    python benchmarks/cox_loss.py --max-loop-n 2048 --repeats 11
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from radiograph.nn.losses import cox_nll

try:
    from torchsurv.loss.cox import neg_partial_log_likelihood
except ImportError:  # torchsurv is the optional `bench` extra
    neg_partial_log_likelihood = None


def reference_loss(risk: torch.Tensor, time_: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """The RadioPath reference: Python-loop risk matrix, Breslow, mean over all n subjects."""
    n = len(time_)
    times = time_.tolist()
    r_mat = np.zeros([n, n], dtype=int)
    for i in range(n):
        for j in range(n):
            r_mat[i, j] = times[j] >= times[i]
    r_mat = torch.tensor(r_mat).to(risk.device)
    theta = risk.reshape(-1)
    exp_theta = torch.exp(theta)
    return -torch.mean((theta - torch.log(torch.sum(exp_theta * r_mat, dim=1))) * event)


def matrix_loss(risk: torch.Tensor, time_: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """The same O(n^2) risk-matrix formula with the matrix built by broadcasting."""
    r_mat = (time_[None, :] >= time_[:, None]).to(risk.dtype)
    theta = risk.reshape(-1)
    return -torch.mean((theta - torch.log(torch.sum(torch.exp(theta) * r_mat, dim=1))) * event)


def torchsurv_loss(ties: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(risk: torch.Tensor, time_: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        return neg_partial_log_likelihood(
            risk, event.bool(), time_, ties_method=ties, reduction="sum"
        )

    return loss


def cox_loss(ties: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(risk: torch.Tensor, time_: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        return cox_nll(risk, time_, event, ties=ties)

    return loss


def make_data(
    n: int, seed: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n subjects: N(0, 1) risks, integer event/censoring days in [1, n/2] (ties), ~60% events."""
    rng = np.random.default_rng(seed)
    risk = torch.tensor(rng.normal(size=n), dtype=dtype)
    time_ = torch.tensor(rng.integers(1, max(2, n // 2), size=n).astype(float), dtype=dtype)
    event = torch.tensor((rng.random(n) < 0.6).astype(float), dtype=dtype)
    return risk, time_, event


def time_forward_backward(
    fn: Callable, risk: torch.Tensor, time_: torch.Tensor, event: torch.Tensor, repeats: int
) -> float:
    """Median seconds of one forward + backward pass (after one warm-up call)."""
    samples = []
    for k in range(repeats + 1):
        r = risk.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        fn(r, time_, event).backward()
        if k:
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def check_agreement(n: int, seed: int) -> dict[str, float]:
    """Relative differences between the implementations in float64 at size n."""
    risk, time_, event = make_data(n, seed, torch.float64)
    n_events = float(event.sum())
    ours = {t: float(cox_nll(risk, time_, event, ties=t)) * n_events for t in ("breslow", "efron")}
    diffs = {
        "matrix vs cox_nll(breslow)": abs(
            float(matrix_loss(risk, time_, event)) * n - ours["breslow"]
        )
        / abs(ours["breslow"])
    }
    if n <= 1024:
        ref = float(reference_loss(risk, time_, event)) * n
        diffs["reference vs cox_nll(breslow)"] = abs(ref - ours["breslow"]) / abs(ours["breslow"])
    if neg_partial_log_likelihood is not None:
        for t in ("breslow", "efron"):
            peer = float(torchsurv_loss(t)(risk, time_, event))
            diffs[f"torchsurv vs cox_nll({t})"] = abs(peer - ours[t]) / abs(ours[t])
    return diffs


def _ratio(ms: dict[str, float], peer: str, mine: float) -> str:
    """Speed-up of ``mine`` over ``peer`` as text, '-' when the peer was not run."""
    return f"{ms[peer] / mine:.1f}" if peer in ms else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed calls per cell (median reported)"
    )
    parser.add_argument(
        "--max-loop-n", type=int, default=1024, help="largest n for the Python-loop reference"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Ties in `time` detected")

    print("Agreement in float64 (relative difference of the summed partial log-likelihood):")
    for n in sorted({min(args.sizes), 1024}):
        for name, diff in check_agreement(n, args.seed).items():
            print(f"  n={n:5d}  {name:32s} {diff:.2e}")

    columns = [
        "reference",
        "matrix",
        "cox_nll bres",
        "torchsurv bres",
        "torchsurv efron",
        "cox_nll efron",
    ]
    peers: dict[str, Callable] = {
        "reference": reference_loss,
        "matrix": matrix_loss,
        "cox_nll bres": cox_loss("breslow"),
        "cox_nll efron": cox_loss("efron"),
    }
    if neg_partial_log_likelihood is not None:
        peers["torchsurv bres"] = torchsurv_loss("breslow")
        peers["torchsurv efron"] = torchsurv_loss("efron")
    print(
        f"\nForward + backward, median ms over {args.repeats} calls, float32, "
        f"{args.threads} thread(s):"
    )
    header = f"{'n':>6} " + " ".join(f"{c:>15}" for c in columns)
    header += f" {'x vs ref':>9} {'x vs matrix':>11} {'x vs ts efron':>13}"
    print(header)
    for n in args.sizes:
        risk, time_, event = make_data(n, args.seed, torch.float32)
        ms: dict[str, float] = {}
        for name in columns:
            if name not in peers or (name == "reference" and n > args.max_loop_n):
                continue
            ms[name] = 1e3 * time_forward_backward(peers[name], risk, time_, event, args.repeats)
        cells = " ".join(f"{ms[c]:15.3f}" if c in ms else f"{'-':>15}" for c in columns)
        ours = ms["cox_nll bres"]

        print(
            f"{n:6d} {cells} {_ratio(ms, 'reference', ours):>9} {_ratio(ms, 'matrix', ours):>11} "
            f"{_ratio(ms, 'torchsurv efron', ms['cox_nll efron']):>13}"
        )
    print(
        "\nspeed-ups: reference and matrix are Breslow, compared with cox_nll(breslow); "
        "'x vs ts efron' = torchsurv efron / cox_nll efron."
    )


if __name__ == "__main__":
    main()
