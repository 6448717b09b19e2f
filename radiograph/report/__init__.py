"""Reports of a study: the paper's Table 1 (CSV, Markdown, LaTeX), Fig. 2-4, forest plots of
hazard ratios and paired differences, and the self-contained ``report/index.html``.

The names below are imported from their modules on first use, so that importing the tables
does not import matplotlib (seconds; a rerun without changes draws nothing).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "radiograph.report.figures": (
        "plot_fold_bands",
        "plot_hazard_ratios",
        "plot_metric_bars",
        "plot_paired_differences",
        "plot_risk_groups",
    ),
    "radiograph.report.html": ("write_html_report",),
    "radiograph.report.tables": (
        "best_cells",
        "fold_statistics",
        "table1",
        "table1_caption",
        "to_latex",
        "to_markdown",
        "write_table",
    ),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """The exported ``name`` from its module (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
