"""The ``radiograph`` command starts light: listing its commands, a command's help, reading a
study config and ``validate`` import none of torch, timm, torchvision, torch_geometric,
scikit-learn, scikit-survival, pandas or scipy (they cost seconds and a gigabyte; the times
are measured by ``benchmarks/cli.py``). Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = (
    "torch",
    "timm",
    "torchvision",
    "torch_geometric",
    "sklearn",
    "sksurv",
    "pandas",
    "scipy",
    "matplotlib",
    "h5py",
    "SimpleITK",
    "openslide",
)
CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def heavy_modules_after(code: str) -> list[str]:
    """The modules of :data:`HEAVY` imported by running ``code`` in a fresh interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_probe_sees_a_heavy_import():
    assert heavy_modules_after("import pandas") == ["pandas"]


def test_listing_the_commands_imports_no_heavy_library():
    assert (
        heavy_modules_after("""
        import radiograph.cli
        radiograph.cli.build_parser().format_help()
        """)
        == []
    )


@pytest.mark.parametrize(
    "command",
    [
        "study",
        "report",
        "extract-pathology",
        "extract-radiology",
        "build-graphs",
        "train",
        "synth",
        "validate",
    ],
)
def test_a_commands_help_imports_no_heavy_library(command):
    assert (
        heavy_modules_after(f"""
        from radiograph.cli import main
        try:
            main([{command!r}, "--help"])
        except SystemExit:
            pass
        """)
        == []
    )


def test_reading_every_shipped_study_config_imports_no_heavy_library():
    assert (
        heavy_modules_after(f"""
        from radiograph.study_config import load_study_config
        for name in ("synthetic.yaml", "synthetic_205.yaml", "tcga_rcc.yaml"):
            load_study_config({str(CONFIGS)!r} + "/" + name)
        """)
        == []
    )


def test_validate_imports_no_heavy_library(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "subject_id,patient_id,centre,time,time_unit,event\n"
        "S1,P1,A,100,days,1\nS2,P2,A,200,days,0\n"
    )
    assert (
        heavy_modules_after(f"""
        from radiograph.cli import main
        assert main(["validate", {str(manifest)!r}]) == 0
        """)
        == []
    )
