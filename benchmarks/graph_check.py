"""Cost of checking a loaded graph's arrays for NaN/Inf: torch's element-wise kernels (the
previous :func:`radiograph.io.graphs.check_graph`) against one numpy pass on the tensor's
memory (the current one), side by side in one process.

Run: ``.venv/bin/python benchmarks/graph_check.py [--threads N]``; prints a table of the median
and the maximum of 50 calls per graph size (milliseconds). ``--threads`` sets torch's intra-op
threads (default: torch's own, the number of cores), as a loader process would have.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from radiograph.io.graphs import _check_finite


def torch_check(values: torch.Tensor) -> bool:
    """The previous check: rows with a NaN or Inf, by torch kernels."""
    bad = ~torch.isfinite(values.reshape(values.size(0), -1)).all(dim=1)
    return bool(bad.any())


def timed(fn, values: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(median, max) milliseconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(values)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}")
    print(
        f"{'x shape':>14} {'torch median':>13} {'torch max':>10} {'numpy median':>13} "
        f"{'numpy max':>10}"
    )
    for nodes, dim in ((50, 1280), (500, 1280), (5000, 1280), (20000, 1280)):
        x = torch.randn(nodes, dim, generator=generator)
        old = timed(torch_check, x, args.repeats)
        new = timed(lambda v: _check_finite("x.pt", "x", v), x, args.repeats)
        print(
            f"{f'({nodes}, {dim})':>14} {old[0]:>13.3f} {old[1]:>10.3f} {new[0]:>13.3f} "
            f"{new[1]:>10.3f}"
        )


if __name__ == "__main__":
    main()
