"""Cohort runner backends side by side: in-process, process pool, local Dask (1 and 2 workers).

Runs the same stage (by default the graph-construction stage on a synthetic feature cohort,
which is real per-subject work) with every backend and prints wall time, speed-up against
the in-process run and the overhead per task (backend wall time minus the sum of task times,
divided by the number of tasks and multiplied by the workers used).

    python benchmarks/runner.py                 # 24 subjects of 3,000 patches
    python benchmarks/runner.py --subjects 60 --patches 8000

Needs the ``dask`` extra (``pip install 'radiograph[dask]'``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from radiograph.dask_backend import DaskBackend
from radiograph.graph.commands import build_subject_graph, graph_tasks
from radiograph.io.features import FeatureSet, write_features
from radiograph.runner import InProcessBackend, ProcessPoolBackend, run_cohort


def make_features(folder: Path, subjects: int, patches: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(patches)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:patches]
    for i in range(subjects):
        feats = rng.normal(size=(patches, 64)).astype(np.float32)
        write_features(
            folder / "pathology" / f"S{i:03d}" / "slide.h5",
            FeatureSet(
                feats,
                grid * 224.0,
                {"subject_id": f"S{i:03d}", "modality": "pathology", "patch_size": 224},
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--patches", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_features(root / "features", args.subjects, args.patches, args.seed)
        backends = [
            ("in-process", InProcessBackend(), 1),
            ("process pool x2", ProcessPoolBackend(2), 2),
            ("dask local x1", DaskBackend(workers=1), 1),
            ("dask local x2", DaskBackend(workers=2), 2),
        ]
        rows = []
        reference = None
        for name, backend, workers in backends:
            out = root / name.replace(" ", "_")
            tasks = graph_tasks(root / "features", out, "slidegraph", ("pathology",))
            start = time.perf_counter()
            record = run_cohort(
                tasks,
                build_subject_graph,
                record_path=out / "run.json",
                backend=backend,
                progress=False,
            )
            wall = time.perf_counter() - start
            busy = sum(r.seconds for r in record.results)
            reference = reference or wall
            overhead = (wall * workers - busy) / max(1, len(tasks))
            rows.append((name, wall, reference / wall, 1000 * overhead, len(record.failed)))
        print(f"\n{args.subjects} subjects x {args.patches} patches, slidegraph construction")
        print(f"{'backend':<18}{'wall s':>9}{'speed-up':>10}{'overhead ms/task':>18}{'failed':>8}")
        for name, wall, speedup, overhead, failed in rows:
            print(f"{name:<18}{wall:>9.2f}{speedup:>10.2f}{overhead:>18.1f}{failed:>8}")


if __name__ == "__main__":
    main()
