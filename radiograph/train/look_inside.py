"""A look inside a trained fold: node importance over the slide thumbnail and the CT volume.

For the test subjects of a fold with the highest and lowest predicted risk, each modality's
graph is drawn with its nodes coloured by the importance the model gave them
(``importance/<subject>.npz`` of the fold), using :func:`radiograph.graph.plot_graph_2d` over the
slide thumbnail and :func:`radiograph.graph.plot_graph_3d` over three projections of the CT
volume. On a slide, nodes are drawn at the centres of their patches (the tiling grid does not
overlap, so a patch's side in level-0 pixels is the ``grid_step`` the graph records) with a
scale bar in micrometres (the slide's level-0 mpp). A subject whose slide or volume is not in
the manifest (e.g. a synthetic cohort) is drawn over a blank background of the graph's extent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.data import Data

from radiograph.graph import plot_graph_2d, plot_graph_3d
from radiograph.io.graphs import load_graph
from radiograph.manifest import Subject, load_manifest
from radiograph.pathology.slide import Slide
from radiograph.radiology.volume import load_volume

THUMBNAIL_PIXELS = 2048
"""Longest side of the slide thumbnails, in pixels (the nearest coarser pyramid level)."""

BLANK_PIXELS = 800
"""Longest side of the blank background when a subject has no slide."""


@dataclass(frozen=True)
class Pick:
    """A selected test subject: ``rank`` is ``"top1"``, ``"top2"``, ..., ``"bottom1"``, ..."""

    subject_id: str
    rank: str
    risk: float


def pick_extremes(predictions: pd.DataFrame, n: int = 1) -> list[Pick]:
    """The ``n`` highest- and ``n`` lowest-risk test subjects of a fold's ``predictions.csv``.

    The risk is the ``risk`` column (survival) or, for classification, the logit of the last
    class minus that of the first (the log odds of the last class for two classes).

    Raises:
        ValueError: no test subject in the table.
    """
    test = predictions[predictions["split"] == "test"].copy()
    if test.empty:
        raise ValueError("predictions have no test subject")
    if "risk" in test:
        score = test["risk"]
    else:
        logits = sorted(
            (c for c in test.columns if c.startswith("logit_")), key=lambda c: int(c.split("_")[1])
        )
        score = test[logits[-1]] - test[logits[0]]
    test = test.assign(score=score.astype(float)).sort_values("score", kind="stable")
    n = min(n, (len(test) + 1) // 2)
    top = test.iloc[::-1].head(n)
    bottom = test.head(n)
    picks = [
        Pick(str(r.subject_id), f"top{i + 1}", float(r.score))
        for i, r in enumerate(top.itertuples())
    ]
    picks += [
        Pick(str(r.subject_id), f"bottom{i + 1}", float(r.score))
        for i, r in enumerate(bottom.itertuples())
    ]
    return picks


def _slide_for(subject: Subject | None, graph: Data, slide: int) -> Path | None:
    """The manifest slide of graph slide ``slide`` (matched by file stem), if any."""
    if subject is None or not subject.slide_paths:
        return None
    names = list(getattr(graph, "slide_names", []) or [])
    if not names:
        return subject.slide_paths[0] if len(subject.slide_paths) == 1 else None
    by_stem = {p.stem: p for p in subject.slide_paths}
    return by_stem.get(names[slide])


def _blank_2d(pos: np.ndarray) -> tuple[np.ndarray, float]:
    extent = max(float(pos.max()) if len(pos) else 1.0, 1.0)
    downsample = extent / BLANK_PIXELS
    height = int(np.ceil(pos[:, 1].max() / downsample)) + 1
    width = int(np.ceil(pos[:, 0].max() / downsample)) + 1
    return np.full((height, width, 3), 255, dtype=np.uint8), downsample


def patch_side(graph: Data) -> float:
    """Side of a patch in level-0 pixels: the graph's recorded ``grid_step`` (the median
    nearest-neighbour distance of its patches, which on the non-overlapping tiling grid is the
    patch side); 0 for a graph without that record (built in code), whose nodes are then
    drawn at their positions as given."""
    params = getattr(graph, "params", None) or {}
    return float(params.get("grid_step", 0.0))


def plot_pathology(
    graph: Data, importance: np.ndarray, subject: Subject | None, title: str, out: Path
) -> list[Path]:
    """One PNG (with PDF and SVG) per slide of the pathology graph, nodes coloured by
    ``importance`` at their patch centres, with a scale bar where the resolution is known."""
    names = list(getattr(graph, "slide_names", []) or [])
    slides = range(len(names)) if len(names) > 1 else [None]
    written = []
    for slide in slides:
        path = _slide_for(subject, graph, slide or 0)
        suffix = f"_{names[slide]}" if slide is not None else ""
        target = out.with_name(f"{out.stem}{suffix}.png")
        if path is not None and path.exists():
            with Slide(path, mpp=subject.mpp) as wsi:
                downsample = max(wsi.dimensions) / THUMBNAIL_PIXELS
                level = wsi.best_level_for_downsample(downsample)
                thumbnail = wsi.read_level(level)
                downsample = wsi.level_downsamples[level]
                mpp = wsi.mpp
            note = ""
        else:
            pos = graph.pos.cpu().numpy()
            if slide is not None:
                pos = pos - graph.slide_offsets[slide].cpu().numpy()
            thumbnail, downsample = _blank_2d(pos + patch_side(graph))
            mpp = subject.mpp if subject is not None else None
            note = " (no slide: blank background)"
        plot_graph_2d(
            graph,
            thumbnail,
            downsample,
            importance,
            slide=slide,
            patch_size=patch_side(graph),
            mpp=mpp,
            value_label="node importance",
            cmap="magma",
            title=title + note,
            path=target,
        )
        written.append(target)
    return written


def plot_radiology(
    graph: Data, importance: np.ndarray, subject: Subject | None, title: str, out: Path
) -> list[Path]:
    """One PNG (with PDF and SVG) of the radiology graph over axial, coronal and sagittal
    projections, axes in millimetres."""
    target = out.with_suffix(".png")
    if subject is not None and subject.volume_paths and subject.mask_path is not None:
        volume = load_volume(
            subject.subject_id,
            subject.volume_paths,
            subject.mask_path,
            modality=subject.radiology_modality,
        )
        image, spacing, origin = volume.normalised[0], volume.spacing, volume.origin
        note = ""
    else:
        pos = graph.pos.cpu().numpy()
        spacing = np.ones(3)
        origin = pos.min(axis=0) - 1.0
        size = np.ceil(pos.max(axis=0) - origin).astype(int) + 2
        image = np.zeros(size[::-1])
        note = " (no volume: blank background)"
    plot_graph_3d(
        graph,
        image,
        spacing,
        origin,
        importance,
        value_label="node importance",
        cmap="magma",
        title=title + note,
        path=target,
    )
    return [target]


def look_inside(
    fold_dir: str | os.PathLike,
    graphs_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    n: int = 1,
) -> list[Path]:
    """Plot node importance of the ``n`` top- and ``n`` bottom-risk test subjects of a fold.

    Args:
        fold_dir: a finished fold (``predictions.csv`` and ``importance/``).
        graphs_dir: the graphs the fold was trained on (``<modality>/<subject>.pt``).
        manifest: the cohort manifest (slide and volume paths).
        out_dir: where the PNGs go (default ``fold_dir/look_inside``); names are
            ``<rank>_<subject>_<modality>[_<slide>].png``, with the PDF and SVG beside.
        n: subjects at each end of the risk ranking.

    Returns:
        The PNG files written (not their PDF and SVG twins).

    Raises:
        FileNotFoundError: the fold has no ``predictions.csv`` or a subject's importance file
            or graph is missing (naming the file).
    """
    fold_dir, graphs_dir = Path(fold_dir), Path(graphs_dir)
    out_dir = Path(out_dir) if out_dir is not None else fold_dir / "look_inside"
    predictions_path = fold_dir / "predictions.csv"
    if not predictions_path.exists():
        raise FileNotFoundError(f"{predictions_path}: not found; is {fold_dir} a finished fold?")
    subjects = load_manifest(manifest, check_files=False).by_id()
    written: list[Path] = []
    for pick in pick_extremes(pd.read_csv(predictions_path, dtype={"subject_id": str}), n):
        importance_path = fold_dir / "importance" / f"{pick.subject_id}.npz"
        if not importance_path.exists():
            raise FileNotFoundError(f"{importance_path}: importance file not found")
        arrays = np.load(importance_path)
        for modality in sorted(
            k[: -len("_importance")]
            for k in arrays.files
            if k.endswith("_importance") and not k.endswith("patch_importance")
        ):
            graph = load_graph(graphs_dir / modality / f"{pick.subject_id}.pt")
            title = f"{pick.subject_id} ({pick.rank} risk, {pick.risk:.3g}): {modality}"
            out = out_dir / f"{pick.rank}_{pick.subject_id}_{modality}"
            plot = plot_pathology if graph.pos.size(1) == 2 else plot_radiology
            written += plot(
                graph, arrays[f"{modality}_importance"], subjects.get(pick.subject_id), title, out
            )
    return written
