"""Where and how tensors run: the one rule every stage uses to turn a ``device`` setting into a
torch device, the reduced-precision (autocast) settings, and host-memory reuse for the training
loop."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: a config check must not pay for it
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
"""Arithmetic of the model's matrix products: ``fp32`` (default), ``bf16`` (autocast to
bfloat16; CPU and CUDA) or ``fp16`` (autocast to float16 with loss scaling; CUDA only)."""

_AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
"""The torch dtype (its name) of each reduced precision."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
"""glibc ``mallopt`` parameters (malloc.h)."""

_GLIBC_MMAP_MAX = 65536
"""glibc's default ``M_MMAP_MAX``, restored by :func:`host_memory_reuse` on exit."""

_GLIBC_MMAP_THRESHOLD, _GLIBC_TRIM_THRESHOLD = 32 << 20, 64 << 20
"""The thresholds :func:`host_memory_reuse` leaves on exit: the largest values glibc's dynamic
thresholds take (a ``mallopt`` call turns the dynamic adjustment off for the process), which
any process that has freed a block over 32 MiB has reached anyway."""

_RETAINED_TRIM_THRESHOLD = 2**31 - 1
"""Largest ``M_TRIM_THRESHOLD`` (an int): freed memory at the top of the heap is kept."""


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name (``"cpu"``, ``"cuda:1"``)
    is passed to :class:`torch.device` as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_problem(name: str) -> str | None:
    """Why this machine cannot run on device ``name`` (None: it can). ``auto`` and ``cpu``
    always can; other names need torch to tell."""
    if name in ("auto", "cpu"):
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as err:
        return f"not a device name ({str(err).splitlines()[0]}); use auto, cpu, cuda or cuda:N"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return (
                "CUDA is not available on this machine (torch.cuda.is_available() is "
                "False); use 'auto' (CUDA when present, else CPU) or 'cpu'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            return "Apple MPS is not available on this machine; use 'auto' or 'cpu'"
    elif device.type != "cpu":
        return f"device type {device.type!r} is not supported; use auto, cpu, cuda or cuda:N"
    return None


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ValueError unless ``precision`` is one of :data:`PRECISIONS` and runs on
    ``device`` (fp16 needs CUDA: CPUs have no fast float16 products, and bf16 needs no loss
    scaling)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device, got {device}; use 'bf16' on CPU")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context that runs a forward pass at ``precision`` on ``device``.

    ``fp32``: no change. ``bf16`` / ``fp16``: :class:`torch.autocast`, which runs matrix
    products (linear layers, ``mm``) in the reduced type and keeps reductions, softmax and
    losses in float32; parameters and their gradients stay float32.

    Raises:
        ValueError: see :func:`check_precision`.
    """
    import torch

    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, _AUTOCAST_DTYPES[precision]))


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for ``precision`` (enabled for fp16 only, whose gradients underflow without
    it; a disabled scaler passes ``scale``, ``step`` and ``update`` straight through)."""
    import torch

    check_precision(precision, device)
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextlib.contextmanager
def host_memory_reuse() -> Iterator[bool]:
    """Keep host memory that PyTorch frees inside the process for its next allocations.

    glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh
    ``mmap`` and returns it to the operating system on ``free``; a training step allocates and
    frees activations of 100-400 MB, and every page of them is faulted in and zeroed again at
    the next step (on the 2-core development machine a third of a SPARRA step's CPU time was
    system time). Inside this context large allocations come from the heap (``mallopt``
    ``M_MMAP_MAX = 0``) and freed memory stays in it (``M_TRIM_THRESHOLD`` at its maximum), so
    the next batch reuses it; the resident size stays at the largest step's peak. On exit large
    blocks are mapped again, the thresholds are left where glibc's dynamic ones end up
    (:data:`_GLIBC_MMAP_THRESHOLD`) and the free heap is returned (``malloc_trim``). The
    arithmetic is unchanged. Process-wide while active; not re-entrant (an inner exit ends it).

    Yields:
        True when the setting took effect; False where the C library is not glibc (nothing
        changes).
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, _RETAINED_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (has ``mallopt`` and ``malloc_trim``)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc
