"""One torch thread per test: on a shared 2-core machine OpenMP threads that wait for each
other are many times slower than a single thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
