"""Shared test setup: helper modules importable by spawned worker processes, and the
one-thread fixture of the encoder and pathology tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

SUPPORT = Path(__file__).parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: on a shared 2-core machine OpenMP threads that wait for
    each other are many times slower than a single thread. Autouse in tests/encoders and
    tests/pathology."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
