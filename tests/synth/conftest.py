"""A small synthetic cohort shared by the synth tests (written once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from radiograph.synth import make_cohort


@pytest.fixture(scope="session")
def small_settings() -> dict[str, Any]:
    """Keyword arguments of ``make_cohort`` for small, fast cohorts (small slides and CTs)."""
    return dict(
        slide_size=(1536, 1024),
        ct_size=(64, 64, 32),
        ct_spacing=(1.0, 1.0, 2.0),
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory, small_settings: dict) -> Path:
    """Folder of a 6-subject cohort (seed 0) made with ``small_settings``."""
    out = tmp_path_factory.mktemp("synth") / "cohort"
    make_cohort(out, 6, 0, **small_settings)
    return out
