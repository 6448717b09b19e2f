"""Every encoder test runs on one torch thread (``one_torch_thread`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """See ``tests/conftest.py``."""
