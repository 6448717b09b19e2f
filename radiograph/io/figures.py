"""Figures written to disk: PNG for screens and the HTML report, PDF and SVG for papers.

Every figure of the project is saved through :func:`save_figure`, so each one exists in the
three formats side by side, each file written atomically, without a creation date in its
metadata and with SVG element ids drawn from a fixed salt: the same figure gives the same PDF
and SVG bytes on every run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib import rc_context

from radiograph.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_FORMATS = ("png", "pdf", "svg")
"""The formats every figure is written in; the PNG is the one embedded in ``index.html``."""

_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}, "png": {}}
_SVG_SALT = "radiograph"


def save_figure(
    fig: Figure, path: str | os.PathLike, *, dpi: int = 150, tight: bool = False
) -> dict[str, Path]:
    """Write ``fig`` as PNG, PDF and SVG beside each other.

    Args:
        fig: the figure (any canvas; no pyplot needed).
        path: the file to write, ending in ``.png``, ``.pdf`` or ``.svg``; the other two
            formats are written next to it with the suffix replaced.
        dpi: resolution of the PNG (and of raster images inside the PDF and SVG), dots per
            inch.
        tight: crop the figure to its drawn content (``bbox_inches="tight"``).

    Returns:
        ``{"png": path, "pdf": path, "svg": path}``.

    Raises:
        ValueError: ``path`` has another suffix, or ``dpi`` is not positive.
    """
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise ValueError(
            f"path: must end in one of {['.' + f for f in FIGURE_FORMATS]}, got {str(path)!r}"
        )
    if dpi <= 0:
        raise ValueError(f"dpi: must be > 0, got {dpi}")
    written = {}
    for fmt in FIGURE_FORMATS:
        target = path.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp, rc_context({"svg.hashsalt": _SVG_SALT}):
            fig.savefig(
                tmp,
                format=fmt,
                dpi=dpi,
                metadata=_NO_DATE[fmt],
                bbox_inches="tight" if tight else None,
            )
        written[fmt] = target
    return written
