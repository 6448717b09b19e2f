"""argparse types for numeric options: a bad value stops the command when its line is parsed
(exit status 2, with argparse's usage message), not later once per subject."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def positive_int(text: str) -> int:
    """An integer > 0 (batch sizes, patch sizes, counts)."""
    return _checked(_to_int(text), text, lambda v: v > 0, "an integer > 0")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker counts where 0 means "in this process")."""
    return _checked(_to_int(text), text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0 (microns per pixel, millimetres, lengths)."""
    return _checked(_to_float(text), text, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (decay rates, thresholds)."""
    return _checked(_to_float(text), text, lambda v: v >= 0, "a finite number >= 0")


def below_one(text: str) -> float:
    """A number in [0, 1) (a dendrogram cut height)."""
    return _checked(_to_float(text), text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _to_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _checked(value: Number | None, text: str, ok: Callable[[Number], bool], wanted: str) -> Number:
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
    return value
