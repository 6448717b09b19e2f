"""Benchmark: SlideGraph construction, radiograph (sparse) against TIAToolbox (dense), side by side.

Peers, on the same synthetic slide and at the same parameters:

- ``tiatoolbox``: ``SlideGraphConstructor.build`` of TIAToolbox (``tiatoolbox/tools/graph.py``),
  the construction the reference RadioPath code uses. It queries all N x N k-d tree distances
  and clusters a dense condensed distance matrix (scipy average linkage): O(N^2) time and
  memory.
- ``radiograph``: :func:`radiograph.graph.build_spatial_graph` (method ``slidegraph``), the same
  clustering from the sparse similarities of patch pairs within the search radius.
- ``radiograph@REV`` (``--baseline REV``): the same with the clustering module
  (``radiograph/graph/slidegraph.py``) of an earlier git revision, to time a change against the
  code it replaces in the same run.

The slide: N patches on a square grid with a 512-pixel step (``--step``; the setting
TIAToolbox's defaults assume; at a 224-pixel step, 224-px tiles at 20x, the default search
radius holds about 250 patches instead of 48), 1024-d float32 features: 40 Voronoi regions of
6 "tissue types", each type a random prototype (sd 5 per dimension) plus per-patch noise (sd 1).
Parameters: TIAToolbox's defaults
(lambda_d 3e-3, lambda_f 1e-3, lambda_h 0.8, connectivity 4000, search radius 2000,
feature_range_thresh 1e-4), for both.

Every case runs in a fresh process (Linux). Time is the wall time of the build; memory is the
process's peak resident memory during the build (the kernel's VmHWM, reset just before it)
minus its resident memory just before it: the input data are already in memory, so the number
is what the build adds. Graph quality, after the build: nodes, edges,
mean within-node feature variance (sum over features), mean node diameter (pixels), and for N
where both ran, whether the two partitions of the patches are identical (the peer's cluster
labels are read from its ``fcluster`` call).

Peer install (kept out of the project venv; TIAToolbox's module is loaded by file path, since
importing the package pulls heavy dependencies; its ``umap`` import, used only for plotting, is
stubbed when umap's own dependencies are absent):

    .venv/bin/pip install --no-deps --target .bench-peers tiatoolbox umap-learn

Usage:
    .venv/bin/python benchmarks/graph.py          # small: peer 2k, 4k; ours 2k, 4k, 25k
    .venv/bin/python benchmarks/graph.py --full   # peer 2k, 4k, 8k; ours 2k .. 200k
    .venv/bin/python benchmarks/graph.py --peer-sizes 2000 --sizes 2000,50000
    .venv/bin/python benchmarks/graph.py --step 224 --sizes 100000 --peer-sizes 0 \
        --baseline 6a28b96                        # dense layout, against the earlier code
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_FILE = ROOT / ".bench-peers" / "tiatoolbox" / "tools" / "graph.py"
INSTALL = ".venv/bin/pip install --no-deps --target .bench-peers tiatoolbox umap-learn"
STEP = 512.0
DIM = 1024
PARAMS = dict(
    lambda_d=3.0e-3,
    lambda_f=1.0e-3,
    lambda_h=0.8,
    connectivity_distance=4000,
    neighbour_search_radius=2000,
    feature_range_thresh=1e-4,
)


def synthetic_slide(n: int, step: float = STEP, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) grid coordinates (pixels, ``step`` apart) and (N, 1024) float32 features, built in
    chunks."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cells = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n]
    coords = cells * step
    seeds = rng.uniform(0, side * step, (40, 2))
    tissue_of_seed = rng.integers(0, 6, 40)
    prototypes = (rng.standard_normal((6, DIM)) * 5).astype(np.float32)
    features = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 8192):
        block = slice(start, start + 8192)
        region = np.argmin(((coords[block, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
        features[block] = prototypes[tissue_of_seed[region]]
        features[block] += rng.standard_normal((len(features[block]), DIM), dtype=np.float32)
    return coords, features


def load_peer():
    """TIAToolbox's SlideGraphConstructor class and its module, or None when not installed."""
    if not PEER_FILE.exists():
        return None
    try:
        import umap  # noqa: F401
    except ImportError:
        sys.modules["umap"] = types.ModuleType("umap")  # used only by the peer's plotting
    spec = importlib.util.spec_from_file_location("tiatoolbox_tools_graph", PEER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak), in MiB."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def _reset_peak_memory() -> None:
    """Reset the kernel's resident-memory peak (VmHWM) of this process to its current RSS."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def load_baseline_clustering(rev: str) -> types.ModuleType:
    """``radiograph/graph/slidegraph.py`` as of git revision ``rev``, as a module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:radiograph/graph/slidegraph.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"slidegraph_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:radiograph/graph/slidegraph.py", "exec"), module.__dict__)
    return module


def child(impl: str, n: int, labels_path: str, step: float) -> None:
    """Run one case in this (fresh) process and print a JSON line."""
    from radiograph.graph import build, build_spatial_graph, cluster_quality

    if impl.startswith("radiograph@"):
        build.hybrid_clusters = load_baseline_clustering(impl.split("@", 1)[1]).hybrid_clusters
    peer = load_peer() if impl == "tiatoolbox" else None
    coords, features = synthetic_slide(n, step)
    captured = {}
    if peer is not None:
        real = peer.hierarchy

        def fcluster(*args, **kwargs):
            captured["labels"] = real.fcluster(*args, **kwargs)
            return captured["labels"]

        peer.hierarchy = types.SimpleNamespace(linkage=real.linkage, fcluster=fcluster)
    _reset_peak_memory()
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    if peer is not None:
        graph = peer.SlideGraphConstructor.build(coords, features, **PARAMS)
        seconds = time.perf_counter() - start
        labels = np.unique(captured["labels"], return_inverse=True)[1].ravel()
        num_edges = graph["edge_index"].shape[1] // 2
    else:
        data = build_spatial_graph(coords, features, "slidegraph", **PARAMS)
        seconds = time.perf_counter() - start
        labels = data.node_of_patch.numpy()
        num_edges = data.edge_index.shape[1] // 2
    peak = _status_mib("VmHWM")
    np.save(labels_path, labels)
    quality = cluster_quality(coords, features, labels)
    print(
        json.dumps(
            {
                "impl": impl,
                "n": n,
                "seconds": seconds,
                "peak_mib": peak - before,
                "edges": num_edges,
                **quality,
            }
        )
    )


def run_case(impl: str, n: int, folder: Path, timeout: float, step: float) -> dict | None:
    labels = folder / f"{impl}-{n}.npy"
    cmd = [sys.executable, __file__, "--child", impl, str(n), str(labels), "--step", str(step)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        print(f"  {impl} N={n}: timed out after {timeout:.0f} s", file=sys.stderr)
        return None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"  {impl} N={n}: failed ({tail[0]})", file=sys.stderr)
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["labels"] = labels
    print(
        f"  {impl:>10} N={n:>7,}: {result['seconds']:8.2f} s {result['peak_mib']:8.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return result


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="the full sizes: peer 2k, 4k, 8k; radiograph 2k .. 200k"
    )
    parser.add_argument("--sizes", default=None, help="radiograph sizes, comma-separated")
    parser.add_argument("--peer-sizes", default=None, help="TIAToolbox sizes, comma-separated")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per case")
    parser.add_argument("--step", type=float, default=STEP, help="grid step in pixels")
    parser.add_argument(
        "--baseline",
        default=None,
        help="git revision whose clustering is timed beside today's (at the radiograph sizes)",
    )
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "N", "LABELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.step)
        return
    sizes = [2000, 4000, 8000, 25000, 50000, 100000, 200000] if args.full else [2000, 4000, 25000]
    peer_sizes = [2000, 4000, 8000] if args.full else [2000, 4000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    if args.peer_sizes:
        peer_sizes = [int(s) for s in args.peer_sizes.split(",") if int(s) > 0]
    if not PEER_FILE.exists():
        print(
            f"TIAToolbox not found at {PEER_FILE}; install it with\n    {INSTALL}\n"
            "(radiograph runs alone)",
            file=sys.stderr,
        )
        peer_sizes = []
    print(
        f"SlideGraph construction, grid step {args.step:.0f} px, {DIM}-d features, parameters "
        f"{PARAMS}",
        file=sys.stderr,
    )
    baseline = f"radiograph@{args.baseline}" if args.baseline else None
    impls = ["tiatoolbox", *([baseline] if baseline else []), "radiograph"]
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(set(sizes) | set(peer_sizes)):
            for impl in impls:
                if n in (peer_sizes if impl == "tiatoolbox" else sizes):
                    result = run_case(impl, n, Path(tmp), args.timeout, args.step)
                    if result is not None:
                        results[impl, n] = result
        for (impl, n), result in results.items():
            # compared with the dense peer where it ran, else with the baseline revision
            peer = results.get(("tiatoolbox", n)) or (
                results.get((baseline, n)) if impl == "radiograph" else None
            )
            result["same"] = (
                ""
                if impl == "tiatoolbox" or peer is None
                else "yes"
                if same_partition(np.load(result["labels"]), np.load(peer["labels"]))
                else "NO"
            )
            result["speedup"] = (
                f"{peer['seconds'] / result['seconds']:.1f}x"
                if impl != "tiatoolbox" and peer is not None
                else ""
            )
    header = (
        f"| {'N patches':>9} | {'impl':<18} | {'time (s)':>8} | {'peak MiB':>8} | "
        f"{'speed-up':>8} | "
        f"{'nodes':>7} | {'edges':>7} | {'var within node':>15} | {'node diam (px)':>14} | "
        f"{'same partition':>14} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for (impl, n), r in sorted(results.items(), key=lambda kv: (kv[0][1], impls.index(kv[0][0]))):
        print(
            f"| {n:>9,} | {impl:<18} | {r['seconds']:>8.2f} | {r['peak_mib']:>8.0f} | "
            f"{r['speedup']:>8} | "
            f"{r['num_nodes']:>7,} | {r['edges']:>7,} | {r['mean_node_feature_variance']:>15.1f} | "
            f"{r['mean_node_diameter']:>14.1f} | {r['same']:>14} |"
        )


if __name__ == "__main__":
    main()
