"""Result types of :mod:`radiograph.stats`: small frozen dataclasses that carry the estimate,
its interval, the p-value where there is one, and the method that produced them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    Attributes:
        estimate: the statistic on the data as given.
        ci_low, ci_high: the interval's bounds (same units as ``estimate``).
        level: confidence level of the interval (e.g. 0.95).
        method: how the interval was computed (e.g. ``"delong"``, ``"bootstrap-bca"``).
        se: standard error where the method gives one, else NaN.
        p_value: p-value of the method's null hypothesis where there is one, else NaN.
        n: subjects the estimate is computed on.
        extra: further named numbers of the method (e.g. ``{"n_boot": 1000}``).
    """

    estimate: float
    ci_low: float
    ci_high: float
    level: float
    method: str
    se: float = math.nan
    p_value: float = math.nan
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        """Flat ``{prefix+"estimate": ..., prefix+"ci_low": ...}`` for a results table."""
        keys = ("estimate", "ci_low", "ci_high", "se", "p_value")
        return {f"{prefix}{k}": getattr(self, k) for k in keys}

    def __str__(self) -> str:
        text = f"{self.estimate:.3f} ({self.level:.0%} CI {self.ci_low:.3f}-{self.ci_high:.3f})"
        if math.isnan(self.p_value):
            return text
        p = format_p(self.p_value)
        return f"{text}, p {p}" if p.startswith("<") else f"{text}, p = {p}"


@dataclass(frozen=True)
class Comparison:
    """A paired (or unpaired) comparison of two estimates, ``difference = a - b``.

    Attributes:
        estimate_a, estimate_b: the two statistics.
        difference: ``estimate_a - estimate_b``.
        ci_low, ci_high: interval of the difference.
        p_value: two-sided p-value of "no difference".
        statistic: the test statistic (z or t), NaN when the method has none.
        level: confidence level.
        method: the test (e.g. ``"delong-paired"``, ``"kang-2015"``, ``"nadeau-bengio"``).
        se: standard error of the difference where the method gives one.
        n: subjects (or folds) compared.
        extra: further named numbers (degrees of freedom, correlation, ...).
    """

    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    level: float
    method: str
    se: float = math.nan
    n: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        keys = (
            "estimate_a",
            "estimate_b",
            "difference",
            "ci_low",
            "ci_high",
            "p_value",
            "statistic",
            "se",
        )
        return {f"{prefix}{k}": getattr(self, k) for k in keys}


def format_p(p: float) -> str:
    """A p-value written one way everywhere: ``< 0.001`` below 0.001, else 3 decimals
    (2 significant digits below 0.01)."""
    if math.isnan(p):
        return "NA"
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}" if p >= 0.1 else f"{p:.3f}"
