"""Reports of a study: the paper's Table 1 (CSV, Markdown, LaTeX), Fig. 2-4, forest plots of
hazard ratios and paired differences, and the self-contained ``report/index.html``."""

from radiograph.report.figures import (
    plot_fold_bands,
    plot_hazard_ratios,
    plot_metric_bars,
    plot_paired_differences,
    plot_risk_groups,
)
from radiograph.report.html import write_html_report
from radiograph.report.tables import (
    best_cells,
    fold_statistics,
    table1,
    table1_caption,
    to_latex,
    to_markdown,
    write_table,
)

__all__ = [
    "best_cells",
    "fold_statistics",
    "plot_fold_bands",
    "plot_hazard_ratios",
    "plot_metric_bars",
    "plot_paired_differences",
    "plot_risk_groups",
    "table1",
    "table1_caption",
    "to_latex",
    "to_markdown",
    "write_html_report",
    "write_table",
]
