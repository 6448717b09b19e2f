"""Reports of fold results: the paper's Table 1 (CSV, Markdown, LaTeX) and Fig. 2-4."""

from radiograph.report.figures import plot_fold_bands, plot_metric_bars, plot_risk_groups
from radiograph.report.tables import (
    best_cells,
    fold_statistics,
    table1,
    to_latex,
    to_markdown,
    write_table,
)

__all__ = [
    "best_cells",
    "fold_statistics",
    "plot_fold_bands",
    "plot_metric_bars",
    "plot_risk_groups",
    "table1",
    "to_latex",
    "to_markdown",
    "write_table",
]
