"""Start-up cost of the ``radiograph`` command: ``--help``, ``validate`` and a study config's
check, each in a fresh process, next to the same commands of the last commit (``git archive
HEAD``, the peer: before the lazy imports) and to ``import torch`` alone.

    .venv/bin/python benchmarks/cli.py [--repeats 7]

Wall time (median and best of the repeats), CPU time and peak resident memory of each
process (from ``os.wait4``). Goals (issue 16): ``--help`` under 0.5 s, ``validate`` under
1.5 s, a config mistake reported in well under a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"


def measure(
    argv: list[str], env: dict[str, str], repeats: int, cwd: Path
) -> tuple[float, float, float, float]:
    """(median wall s, best wall s, median CPU s, peak MiB) of running ``argv`` in ``cwd``
    ``repeats`` times (a folder without a ``radiograph`` package, so that PYTHONPATH decides
    which one runs). CPU time (user + system) is what a busy machine does not inflate."""
    times, cpu, peak = [], [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, _, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        cpu.append(usage.ru_utime + usage.ru_stime)
        peak = max(peak, usage.ru_maxrss)
    return statistics.median(times), min(times), statistics.median(cpu), peak / 1024


def head_tree(folder: Path) -> Path:
    """The ``radiograph`` package of the last commit, unpacked under ``folder``."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "HEAD", "radiograph"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """A 205-subject manifest (no image columns) and a study config with a typo."""
    manifest = folder / "manifest.csv"
    rows = ["subject_id,patient_id,centre,time,time_unit,event,age"]
    rows += [
        f"S{i:03d},P{i:03d},{'AB'[i % 2]},{100 + i},days,{i % 2},{40 + i % 30}" for i in range(205)
    ]
    manifest.write_text("\n".join(rows) + "\n")
    config = folder / "study.yaml"
    text = (CONFIGS / "synthetic.yaml").read_text().replace("  epochs: 20", "  epocs: 20")
    config.write_text(text.replace("out_dir: ../../demo_out", f"out_dir: {folder / 'out'}"))
    return manifest, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest, config = write_inputs(folder)
        head = head_tree(folder / "head")
        here = dict(os.environ, PYTHONPATH=str(ROOT))
        before = dict(os.environ, PYTHONPATH=str(head))
        cli = [sys.executable, "-m", "radiograph.cli"]
        cases = [
            ("radiograph --help", [*cli, "--help"], True),
            ("radiograph validate (205 subjects)", [*cli, "validate", str(manifest)], True),
            ("radiograph study (config typo: exit 2)", [*cli, "study", str(config)], False),
            (
                "radiograph study tcga_rcc.yaml --check (preflight: exit 2)",
                [*cli, "study", str(CONFIGS / "tcga_rcc.yaml"), "--check"],
                False,
            ),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"], False),
        ]
        print(
            f"{'command':<58} {'wall s':>7} {'best s':>7} {'CPU s':>6} {'MiB':>5}  "
            f"{'HEAD wall s':>11} {'CPU s':>6} {'MiB':>5}"
        )
        for name, argv, has_peer in cases:
            median, best, cpu, peak = measure(argv, here, args.repeats, folder)
            line = f"{name:<58} {median:>7.2f} {best:>7.2f} {cpu:>6.2f} {peak:>5.0f}"
            if has_peer:
                median, _, cpu, peak = measure(argv, before, args.repeats, folder)
                line += f"  {median:>11.2f} {cpu:>6.2f} {peak:>5.0f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
