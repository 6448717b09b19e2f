"""Input checks shared by the statistics functions: every failure is a ``ValueError`` that
names the argument and says why (lengths differ, a single class, no events, NaN)."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_vector(name: str, values: Any, n: int | None = None, *, finite: bool = True) -> np.ndarray:
    """``values`` as a (n,) float64 array; ValueError naming ``name`` when it is not 1-D, has
    a length other than ``n`` or (with ``finite``) holds NaN or infinite entries."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {np.shape(values)}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name}: has {array.shape[0]} entries, expected {n} (lengths differ)")
    if array.shape[0] == 0:
        raise ValueError(f"{name}: is empty")
    if finite and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        first = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name}: {bad} non-finite value(s) (NaN or inf), first at index {first}")
    return array


def as_binary_label(
    name: str, values: Any, n: int | None = None, *, both_classes: bool = True
) -> np.ndarray:
    """``values`` as a (n,) bool array of 0/1 (or False/True) labels; ValueError when another
    value occurs or (with ``both_classes``) only one class is present."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of 0/1 labels, got shape {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name}: has {array.shape[0]} entries, expected {n} (lengths differ)")
    if array.dtype != bool:
        try:
            numeric = array.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: labels must be 0/1, got {np.unique(array)[:5]}") from err
        if not np.isin(numeric, (0.0, 1.0)).all():
            raise ValueError(f"{name}: labels must be 0/1, got values {np.unique(numeric)[:5]}")
        array = numeric == 1.0
    if both_classes and (array.all() or not array.any()):
        only = int(array[0]) if array.size else "none"
        raise ValueError(
            f"{name}: a single class ({array.size} subjects, all {only}); both classes are needed"
        )
    return array


def as_survival(
    time: Any, event: Any, *, need_events: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(time, event)`` as (n,) float64 and bool arrays; ValueError when lengths differ, a
    time is not finite or negative, an event indicator is not 0/1, or (with ``need_events``)
    there is no event."""
    t = as_vector("time", time)
    if (t < 0).any():
        raise ValueError(
            f"time: {int((t < 0).sum())} negative value(s), first at index "
            f"{int(np.flatnonzero(t < 0)[0])}"
        )
    e = as_binary_label("event", event, t.shape[0], both_classes=False)
    if need_events and not e.any():
        raise ValueError(f"event: no events among {t.shape[0]} subjects (all censored)")
    return t, e


def check_level(level: float) -> float:
    """A confidence level strictly between 0 and 1."""
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: must lie strictly between 0 and 1, got {level}")
    return float(level)
