"""Pictures of a graph: over a slide thumbnail (2D), over projections of a CT volume (3D).

Nodes are coloured by a scalar per node (e.g. a node importance; by default the number of
patches per node), edges are drawn as thin lines. On a slide, nodes sit at the centres of their
patches and a scale bar gives micrometres; on a CT, the axes are in millimetres. Figures are
built without pyplot (no global state) and saved as PNG, PDF and SVG atomically
(:func:`radiograph.io.figures.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from torch_geometric.data import Data

from radiograph.io.figures import save_figure

SCALE_BAR_FRACTION = 0.2
"""The scale bar is the longest 1, 2 or 5 x 10^k micrometres within this fraction of the
image width."""


def plot_graph_2d(
    data: Data,
    thumbnail: np.ndarray,
    downsample: float,
    values: np.ndarray | None = None,
    *,
    slide: int | None = None,
    patch_size: float = 0.0,
    mpp: float | None = None,
    value_label: str | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Draw a 2D graph over its slide thumbnail.

    Args:
        data: graph with ``pos`` (K, 2) in level-0 pixels (x, y) and ``edge_index``. A
            multi-slide graph from ``build-graphs`` (``slide_offsets``, ``slide_of_patch``)
            needs ``slide``: only that slide's nodes are drawn, shifted back to its own
            level-0 frame.
        thumbnail: (H, W, 3) image of the slide (uint8 or float in [0, 1]).
        downsample: level-0 pixels per thumbnail pixel.
        values: (K,) scalar per node for the colour (default: patches per node).
        slide: which slide of a multi-slide graph to draw.
        patch_size: side of a patch in level-0 pixels. Patch coordinates are top-left
            corners, and a node's ``pos`` is the mean of its patches' corners, so nodes are
            drawn shifted by ``patch_size / 2`` in x and y: at the centre of their patches.
        mpp: level-0 micrometres per pixel of the slide; draws a scale bar in micrometres
            (none when None).
        value_label: colour-bar label.
        cmap: matplotlib colour map.
        title: figure title.
        path: if given, the PNG is written there, the PDF and SVG beside it (atomically).

    Returns:
        The figure.
    """
    thumbnail = np.asarray(thumbnail)
    if thumbnail.ndim != 3 or thumbnail.shape[2] not in (3, 4):
        raise ValueError(f"thumbnail must be an (H, W, 3) image; got shape {thumbnail.shape}")
    if not downsample > 0:
        raise ValueError(f"downsample must be > 0 (got {downsample})")
    if not patch_size >= 0:
        raise ValueError(f"patch_size must be >= 0 level-0 pixels (got {patch_size})")
    if mpp is not None and not mpp > 0:
        raise ValueError(f"mpp must be > 0 micrometres per pixel (got {mpp})")
    pos = _node_array(data, "pos")
    if pos.shape[1] != 2:
        raise ValueError(
            f"plot_graph_2d needs 2D node positions; got {pos.shape[1]}D (use plot_graph_3d)"
        )
    values, value_label = _node_values(data, values, value_label)
    keep = _slide_nodes(data, slide)
    if slide is not None:
        pos = pos - _node_array(data, "slide_offsets")[slide]
    xy = (pos + patch_size / 2.0) / downsample
    fig = Figure(figsize=(8, 8 * thumbnail.shape[0] / max(thumbnail.shape[1], 1) + 0.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(thumbnail)
    scatter = _draw(ax, xy, _node_array(data, "edge_index"), values, keep, cmap, marker_size=12)
    ax.set_xlim(0, thumbnail.shape[1])
    ax.set_ylim(thumbnail.shape[0], 0)
    ax.set_axis_off()
    if mpp is not None:
        add_scale_bar(ax, um_per_unit=mpp * downsample, width=thumbnail.shape[1])
    fig.colorbar(scatter, ax=ax, shrink=0.7, label=value_label)
    if title:
        ax.set_title(title)
    if path is not None:
        save_figure(fig, path, dpi=100, tight=True)
    return fig


def plot_graph_3d(
    data: Data,
    volume: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    values: np.ndarray | None = None,
    *,
    value_label: str | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Draw a 3D graph over three projections (axial, coronal, sagittal) of its volume.

    Each panel shows the mean-intensity projection of the slice stack along one axis (contrast
    from the 1st to the 99th percentile) with the nodes and edges projected onto it.

    Args:
        data: graph with ``pos`` (K, 3) in physical (x, y, z) millimetres and ``edge_index``.
        volume: (Z, Y, X) intensity array (as ``SimpleITK.GetArrayFromImage`` gives it).
        spacing: voxel size (x, y, z) in mm (SimpleITK order).
        origin: physical position (x, y, z) in mm of the centre of voxel (0, 0, 0); the
            image axes are assumed aligned with the physical axes (identity direction).
        values: (K,) scalar per node for the colour (default: patches per node).
        value_label, cmap, title, path: as in :func:`plot_graph_2d`.

    Returns:
        The figure.
    """
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3:
        raise ValueError(f"volume must be a (Z, Y, X) array; got shape {volume.shape}")
    spacing = np.asarray(spacing, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    if spacing.shape != (3,) or origin.shape != (3,) or not (spacing > 0).all():
        raise ValueError(
            f"spacing and origin must be 3 numbers (x, y, z), spacing > 0; got "
            f"{spacing.tolist()} and {origin.tolist()}"
        )
    pos = _node_array(data, "pos")
    if pos.shape[1] != 3:
        raise ValueError(
            f"plot_graph_3d needs 3D node positions; got {pos.shape[1]}D (use plot_graph_2d)"
        )
    values, value_label = _node_values(data, values, value_label)
    edge_index = _node_array(data, "edge_index")
    low, high = np.percentile(volume, [1, 99])
    size_xyz = np.array(volume.shape[::-1])
    lower = origin - spacing / 2
    upper = origin + spacing * (size_xyz - 0.5)
    # (panel title, volume axis averaged, physical axes shown as (horizontal, vertical))
    panels = (("axial", 0, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 2, (1, 2)))
    fig = Figure(figsize=(15, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    scatter = None
    for ax, (name, axis, (h, v)) in zip(axes, panels):
        image = volume.mean(axis=axis)  # rows follow the slower remaining array axis
        ax.imshow(
            image,
            cmap="gray",
            vmin=low,
            vmax=high,
            origin="upper",
            extent=(lower[h], upper[h], upper[v], lower[v]),
        )
        scatter = _draw(
            ax, pos[:, [h, v]], edge_index, values, np.ones(len(pos), bool), cmap, marker_size=18
        )
        ax.set_xlim(lower[h], upper[h])
        ax.set_ylim(upper[v], lower[v])
        ax.set_title(name)
        ax.set_xlabel(f"{'xyz'[h]} (mm)")
        ax.set_ylabel(f"{'xyz'[v]} (mm)")
    fig.colorbar(scatter, ax=list(axes), shrink=0.8, label=value_label)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path, dpi=100, tight=True)
    return fig


def scale_bar_length(extent_um: float) -> float:
    """The scale bar for an image ``extent_um`` micrometres wide: the longest 1, 2 or 5 x
    10^k micrometres that fits in :data:`SCALE_BAR_FRACTION` of it.

    Raises:
        ValueError: ``extent_um`` is not a positive finite number.
    """
    if not (np.isfinite(extent_um) and extent_um > 0):
        raise ValueError(f"extent_um must be a positive number of micrometres (got {extent_um})")
    target = extent_um * SCALE_BAR_FRACTION
    power = 10.0 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1.0, 2.0, 5.0) if m * power <= target))


def add_scale_bar(ax: Axes, *, um_per_unit: float, width: float) -> AnchoredSizeBar:
    """Draw a scale bar in the lower right corner of ``ax``.

    Args:
        ax: axes whose x data unit is one image pixel.
        um_per_unit: micrometres per data unit (level-0 mpp x thumbnail downsample).
        width: image width in data units.

    Returns:
        The bar; its length in data units is ``scale_bar_length(width * um_per_unit) /
        um_per_unit``, its label ``"<n> µm"`` (``"<n> mm"`` from 1000 µm).
    """
    length_um = scale_bar_length(width * um_per_unit)
    label = f"{length_um / 1000:g} mm" if length_um >= 1000 else f"{length_um:g} µm"
    bar = AnchoredSizeBar(
        ax.transData,
        length_um / um_per_unit,
        label,
        loc="lower right",
        pad=0.4,
        borderpad=0.6,
        sep=3,
        frameon=True,
        color="black",
        size_vertical=max(width / 250.0, 1.0),
        fontproperties={"size": 9},
    )
    bar.patch.set_alpha(0.75)
    ax.add_artist(bar)
    return bar


def _draw(
    ax: Axes,
    xy: np.ndarray,
    edge_index: np.ndarray,
    values: np.ndarray,
    keep: np.ndarray,
    cmap: str,
    marker_size: float,
):
    source, target = edge_index
    upper = edge_index[:, (source < target) & keep[source] & keep[target]]
    ax.add_collection(
        LineCollection(
            np.stack([xy[upper[0]], xy[upper[1]]], axis=1),
            colors=(0.1, 0.1, 0.1, 0.5),
            linewidths=0.6,
            zorder=2,
        )
    )
    finite = values[np.isfinite(values)]
    return ax.scatter(
        xy[keep, 0],
        xy[keep, 1],
        c=values[keep],
        cmap=cmap,
        s=marker_size,
        vmin=finite.min() if len(finite) else None,
        vmax=finite.max() if len(finite) else None,
        edgecolors="black",
        linewidths=0.3,
        zorder=3,
    )


def _node_array(data: Data, key: str) -> np.ndarray:
    if key not in data:
        raise ValueError(f"graph has no {key!r} attribute")
    return data[key].detach().cpu().numpy()


def _node_values(
    data: Data, values: np.ndarray | None, label: str | None
) -> tuple[np.ndarray, str]:
    num_nodes = int(data.num_nodes)
    if values is None:
        if "num_patches" not in data:
            return np.zeros(num_nodes), label or ""
        return _node_array(data, "num_patches").astype(np.float64), label or "patches per node"
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) != num_nodes:
        raise ValueError(f"values has {len(values)} entries but the graph has {num_nodes} nodes")
    return values, label or ""


def _slide_nodes(data: Data, slide: int | None) -> np.ndarray:
    """(K,) bool: the nodes of ``slide`` (all nodes for a single-slide graph)."""
    num_nodes = int(data.num_nodes)
    if "slide_offsets" not in data or len(data.slide_offsets) == 1:
        if slide not in (None, 0):
            raise ValueError(f"graph has a single slide; got slide={slide}")
        return np.ones(num_nodes, dtype=bool)
    num_slides = len(data.slide_offsets)
    if slide is None or not 0 <= slide < num_slides:
        raise ValueError(f"graph spans {num_slides} slides; pass slide=0..{num_slides - 1}")
    node_slide = np.zeros(num_nodes, dtype=np.int64)
    node_slide[_node_array(data, "node_of_patch")] = _node_array(data, "slide_of_patch")
    return node_slide == slide
