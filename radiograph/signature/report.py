"""Figures and the markdown report of the signature study: KM panels with numbers at risk and
censoring marks, forest plots, and per-slide risk maps (the paper's "risk activation map":
each patch's poor-outcome probability at its level-0 position, with a scale bar)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sksurv.nonparametric import kaplan_meier_estimator

from radiograph.io.figures import save_figure
from radiograph.report.figures import RISK_COLOURS
from radiograph.stats.results import format_p

if TYPE_CHECKING:
    from radiograph.signature.study import SignatureStudyConfig, StudyResult

ARM_COLOURS = {0: "tab:grey", 1: "tab:purple"}


def _figure(panels: int, *, width: float, height: float) -> Figure:
    fig = Figure(figsize=(width * max(panels, 1), height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def km_panel(
    ax: Any,
    time: np.ndarray,
    event: np.ndarray,
    groups: np.ndarray,
    labels: Mapping[Any, str],
    colours: Mapping[Any, str],
    title: str,
    at_risk_times: np.ndarray,
) -> None:
    """Kaplan-Meier curves of each group on ``ax`` with censoring marks (+) and a numbers-at-
    risk table below the axis at ``at_risk_times``."""
    rows = []
    for g, label in labels.items():
        m = groups == g
        if not m.any():
            continue
        t, s = kaplan_meier_estimator(event[m].astype(bool), time[m])
        ax.step(
            np.r_[0.0, t],
            np.r_[1.0, s],
            where="post",
            color=colours[g],
            label=f"{label} (n={m.sum()})",
        )
        censored = time[m][event[m] == 0]
        ax.plot(
            censored,
            np.interp(censored, np.r_[0.0, t], np.r_[1.0, s]),
            "+",
            color=colours[g],
            markersize=5,
        )
        rows.append(
            f"{label[:8]:>8}: " + " ".join(f"{int((time[m] >= x).sum()):>4}" for x in at_risk_times)
        )
    ax.set_title(title, fontsize="medium")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize="small", loc="upper right")
    header = "at risk : " + " ".join(f"{x:>4.0f}" for x in at_risk_times)
    ax.text(
        0.0,
        -0.28,
        "\n".join([header, *rows]),
        transform=ax.transAxes,
        family="monospace",
        fontsize="x-small",
        va="top",
    )


def forest(ax: Any, frame: pd.DataFrame, label: str, title: str) -> None:
    """Hazard ratios (``estimate`` or ``hazard_ratio``) with intervals, log scale."""
    est = (frame["estimate"] if "estimate" in frame else frame["hazard_ratio"]).to_numpy(float)
    low, high = frame["ci_low"].to_numpy(float), frame["ci_high"].to_numpy(float)
    y = np.arange(len(frame))[::-1]
    ax.errorbar(
        est,
        y,
        xerr=[est - low, high - est],
        fmt="s",
        color="black",
        capsize=2,
    )
    ax.axvline(1.0, color="grey", linestyle="--")
    ax.set_xscale("log")
    ax.set_yticks(y, frame[label].astype(str))
    ax.set_xlabel("hazard ratio (95% CI)")
    ax.set_title(title, fontsize="medium")


def endpoint_figures(
    out: Path,
    endpoint: str,
    data: pd.DataFrame,
    time: str,
    event: str,
    tables: Mapping[str, pd.DataFrame],
    treatment: str | None,
) -> None:
    """``km_<endpoint>.png`` (risk groups per cohort), ``treatment_<endpoint>.png`` (treated
    vs untreated per risk group), ``forest_multivariable``, ``forest_subgroups`` and
    ``forest_meta`` PNGs."""
    at = np.linspace(0, np.percentile(data[time], 95), 6).round()
    cohorts = list(dict.fromkeys(data["cohort"]))
    fig = _figure(len(cohorts), width=4.2, height=4.4)
    for ax, cohort in zip(fig.subplots(1, len(cohorts), squeeze=False)[0], cohorts):
        d = data[data["cohort"] == cohort]
        row = tables["risk_groups"].set_index("cohort").loc[cohort]
        km_panel(
            ax,
            d[time].to_numpy(),
            d[event].to_numpy(),
            d["high_risk"].to_numpy(),
            {0: "low risk", 1: "high risk"},
            {0: RISK_COLOURS["low"], 1: RISK_COLOURS["high"]},
            f"{endpoint.upper()} {cohort}: HR {row.hazard_ratio:.2f} "
            f"({row.ci_low:.2f}-{row.ci_high:.2f}), {format_p(row.logrank_p)}",
            at,
        )
    _save(fig, out / f"km_{endpoint}.png")
    if treatment is not None:
        fig = _figure(2, width=4.2, height=4.4)
        by = tables["treatment_by_group"]
        by = by[by["set"] == "all"].set_index("group")
        for ax, group in zip(fig.subplots(1, 2), ("low", "high")):
            d = data[(data["risk_group"] == group) & data[treatment].notna()]
            r = by.loc[group]
            km_panel(
                ax,
                d[time].to_numpy(),
                d[event].to_numpy(),
                d[treatment].to_numpy(),
                {0: "untreated", 1: "treated"},
                ARM_COLOURS,
                f"{group} risk: HR {r.hazard_ratio:.2f} ({r.ci_low:.2f}-{r.ci_high:.2f})",
                at,
            )
        _save(fig, out / f"treatment_{endpoint}.png")
        sub = tables["subgroups"].assign(row=lambda f: f["subgroup"] + "=" + f["group"])
        _forest_file(
            out / f"forest_subgroups_{endpoint}.png",
            sub,
            "row",
            "treatment HR by subgroup (Bonferroni in table)",
        )
    multi = tables["multivariable"]
    multi = multi[(multi["model"] == "multivariable") & (multi["cohort"] == "train")]
    if len(multi):
        _forest_file(
            out / f"forest_multivariable_{endpoint}.png",
            multi,
            "term",
            "multivariable Cox (training)",
        )
    if "estimate" in tables["meta_analysis"]:
        _forest_file(
            out / f"forest_meta_{endpoint}.png",
            tables["meta_analysis"],
            "label",
            "high vs low risk by centre (DL)",
        )


def _forest_file(path: Path, frame: pd.DataFrame, label: str, title: str) -> None:
    fig = _figure(1, width=5.0, height=1.2 + 0.35 * len(frame))
    forest(fig.subplots(), frame.reset_index(drop=True), label, title)
    _save(fig, path)


def risk_map_array(
    prob: np.ndarray, coords: np.ndarray, patch_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """The patch probabilities on the patch grid.

    Args:
        prob: (N,) P(poor outcome) per patch.
        coords: (N, 2) level-0 (x, y) of each patch's top-left corner.
        patch_size: patch side in level-0 pixels.

    Returns:
        ``(grid, origin)``: float32 (rows, cols) with NaN where there is no patch; cell
        (i, j) covers level-0 x in ``origin[0] + j * patch_size`` + [0, patch_size), likewise y.
    """
    origin = coords.min(axis=0)
    ij = np.rint((coords - origin) / patch_size).astype(np.int64)
    grid = np.full((ij[:, 1].max() + 1, ij[:, 0].max() + 1), np.nan, dtype=np.float32)
    grid[ij[:, 1], ij[:, 0]] = prob
    return grid, origin


@dataclass(frozen=True)
class RiskMapSlide:
    """One slide's patches for a risk map.

    Attributes:
        prob: (N,) P(poor outcome) per patch.
        coords: (N, 2) level-0 (x, y) of each patch's top-left corner.
        patch_size: patch side in level-0 pixels.
        level0_mpp: microns per level-0 pixel (sets the scale bar).
        slide: the slide file (its coarsest pyramid level is the thumbnail drawn under the
            map), or None when there is no readable slide (features-only cohorts).
    """

    prob: np.ndarray
    coords: np.ndarray
    patch_size: float
    level0_mpp: float
    slide: Path | None = None


def risk_maps(
    out: Path, slides: Mapping[str, RiskMapSlide], *, scale_bar_um: float = 1000.0
) -> pd.DataFrame:
    """Per slide id, ``<id>.png`` (the patch map drawn semi-transparently over the slide's
    thumbnail, with a scale bar of ``scale_bar_um`` micrometres) and ``<id>.npz`` (``grid``,
    ``origin``, ``patch_size``, ``coords``, ``prob``, ``level0_mpp``: cell (i, j) of ``grid``
    covers level-0 pixels ``origin + (j, i) * patch_size`` + [0, patch_size)).

    Both are in level-0 pixel coordinates: the figure's axes are level-0 pixels, the thumbnail
    is stretched over the slide's level-0 extent. Returns one row per slide (``subject_id``,
    ``png``, ``npz``, ``thumbnail``: the slide drawn under it or why none was).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for sid, item in slides.items():
        grid, origin = risk_map_array(item.prob, item.coords, item.patch_size)
        np.savez_compressed(
            out / f"{sid}.npz",
            grid=grid,
            origin=origin,
            patch_size=item.patch_size,
            coords=item.coords,
            prob=item.prob,
            level0_mpp=item.level0_mpp,
        )
        fig = _figure(1, width=4.5, height=4.0)
        ax = fig.subplots()
        extent = (
            origin[0],
            origin[0] + grid.shape[1] * item.patch_size,
            origin[1] + grid.shape[0] * item.patch_size,
            origin[1],
        )
        thumbnail, note = _thumbnail(item.slide)
        if thumbnail is not None:
            image, (width, height) = thumbnail
            ax.imshow(image, extent=(0, width, height, 0))
            extent_all = (0, width, height, 0)
        else:
            extent_all = extent
        mapped = ax.imshow(
            grid,
            cmap="inferno",
            vmin=0,
            vmax=1,
            extent=extent,
            alpha=0.6 if thumbnail is not None else 1.0,
        )
        ax.set_xlim(extent_all[0], extent_all[1])
        ax.set_ylim(extent_all[2], extent_all[3])
        bar = scale_bar_um / item.level0_mpp
        x0 = extent_all[0] + 0.05 * (extent_all[1] - extent_all[0])
        y0 = extent_all[2] - 0.05 * (extent_all[2] - extent_all[3])
        ax.plot([x0, x0 + bar], [y0, y0], color="cyan", linewidth=3)
        ax.text(x0, y0, f"{scale_bar_um:g} \u00b5m", color="cyan", va="bottom", fontsize="small")
        ax.set_xlabel("level-0 x (px)")
        ax.set_title(f"{sid}: P(poor outcome) per patch", fontsize="medium")
        fig.colorbar(mapped, ax=ax, shrink=0.8)
        _save(fig, out / f"{sid}.png")
        rows.append(
            {"subject_id": sid, "png": f"{sid}.png", "npz": f"{sid}.npz", "thumbnail": note}
        )
    return pd.DataFrame(rows)


def _thumbnail(slide: Path | None) -> tuple[tuple[np.ndarray, tuple[int, int]] | None, str]:
    """The coarsest pyramid level of ``slide`` and its level-0 size, or None and why not."""
    if slide is None:
        return None, "none (no slide file: features-only cohort)"
    from radiograph.pathology.slide import Slide, SlideError

    try:
        with Slide(slide) as opened:
            image = opened.read_level(len(opened.level_downsamples) - 1)
            return (image, opened.dimensions), str(slide)
    except (OSError, SlideError) as err:
        return None, f"none ({slide}: {err})"


def write_markdown(path: Path, config: SignatureStudyConfig, result: StudyResult) -> None:
    """The study's tables as markdown, with the observational-comparison caveat."""
    lines = [
        "# Pathomics signature and treatment benefit by risk group",
        "",
        f"Training centre {config.training_centre} ({1 - config.internal_fraction:.0%} "
        "training, the rest internal validation); other centres external. The patch "
        "classifier, feature scaling, LASSO penalty and risk cut-off were fitted on the "
        "training subjects only.",
        "",
        "**Treatment comparisons are observational, not randomised**: treated and "
        "untreated patients may differ in ways the models do not adjust for.",
        "",
    ]
    for endpoint, tables in result.tables.items():
        lines += [f"## {endpoint.upper()}", ""]
        for name, frame in tables.items():
            note = " (Bonferroni-corrected p in bonferroni_p)" if name == "subgroups" else ""
            lines += [
                f"### {name}{note}",
                "",
                "```",
                frame.to_string(index=False, float_format="{:.4g}".format),
                "```",
                "",
            ]
    if len(result.problems):
        lines += [
            "## Problems (subjects left out of an analysis)",
            "",
            "```",
            result.problems.to_string(index=False),
            "```",
            "",
        ]
    path.write_text("\n".join(lines))
