"""``radiograph build-graphs``: per-subject patch features -> one graph per subject and modality.

Reads ``FEATURES/pathology/<subject>/<slide>.h5`` (one or more slides per subject) and
``FEATURES/radiology/<subject>.h5``; writes ``OUT/<modality>/<subject>.pt`` (PyG ``Data``, see
:func:`subject_graph`) through the cohort runner (resume, failure isolation, run record).

Each graph has a provenance record ``<subject>.pt.prov.json`` (:mod:`radiograph.provenance`):
the fingerprints of its feature files and the digest of the construction settings. A rerun
rebuilds exactly the graphs whose features or settings changed, and removes the graphs of
subjects whose feature files are gone (a rerun of extraction discarded them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radiograph.argtypes import below_one, non_negative_float, positive_float, positive_int
from radiograph.graph.params import (
    LENGTH_PARAMS,
    STEP_DEFAULTS,
    grid_step,
    scaled_params,
    step_params,
)
from radiograph.io.atomic import finished_files
from radiograph.provenance import (
    begin_outputs,
    discard,
    make_provenance,
    prepare_rerun,
    record_outputs,
)
from radiograph.runner import Task, add_backend_arguments, backend_from_args, finish, run_cohort

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from radiograph.io.features import FeatureSet

MODALITIES = ("pathology", "radiology")
#: Coordinate dimension of each modality's feature files.
COORD_DIMS = {"pathology": 2, "radiology": 3}


@dataclass(frozen=True)
class GraphJob:
    """What one task builds: the graph of one subject and modality."""

    subject_id: str
    modality: str
    feature_paths: tuple[str, ...]
    method: str
    params_in_steps: Mapping[str, Any]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build-graphs`` sub-command."""
    parser = subparsers.add_parser(
        "build-graphs",
        help="patch features -> one spatial graph per subject and modality",
        description="Build a spatial-feature graph per subject and modality from the feature "
        "files FEATURES/pathology/<subject>/<slide>.h5 and "
        "FEATURES/radiology/<subject>.h5. Writes OUT/<modality>/<subject>.pt and "
        "the run record OUT/build-graphs.json. Graphs already built are skipped. "
        "Lengths are given in grid steps (the distance between adjacent patches, "
        "measured per subject) and lambda_d per step, so one setting fits any patch "
        "size and both pixels and millimetres; the defaults are TIAToolbox's "
        "(pathology) and the RadioPath CT settings (radiology).",
    )
    parser.add_argument("--features", required=True, help="features folder")
    parser.add_argument("--out", required=True, help="graphs folder")
    parser.add_argument(
        "--method", choices=sorted(STEP_DEFAULTS["pathology"]), default="slidegraph"
    )
    parser.add_argument("--modality", choices=(*MODALITIES, "both"), default="both")
    parser.add_argument("--record", default=None, help="run record (default OUT/build-graphs.json)")
    group = parser.add_argument_group("construction parameters (override the modality defaults)")
    group.add_argument(
        "--lambda-d", type=non_negative_float, help="slidegraph: spatial decay per grid step"
    )
    group.add_argument(
        "--lambda-f", type=non_negative_float, help="slidegraph: feature-distance decay"
    )
    group.add_argument("--lambda-h", type=below_one, help="slidegraph: dendrogram cut in [0, 1)")
    group.add_argument(
        "--neighbour-search-radius",
        type=non_negative_float,
        help="slidegraph: patches at least this many steps apart are never merged",
    )
    group.add_argument(
        "--connectivity-distance",
        type=positive_float,
        help="slidegraph, delaunay: longest edge, in steps",
    )
    group.add_argument(
        "--feature-range-thresh",
        type=non_negative_float,
        help="slidegraph: ignore features whose range is <= this",
    )
    group.add_argument("--k", type=positive_int, help="knn: neighbours per patch")
    group.add_argument("--max-distance", type=positive_float, help="knn: longest edge, in steps")
    group.add_argument(
        "--radius", type=positive_float, help="radius: connection distance, in steps"
    )
    add_backend_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    names = (
        "lambda_d",
        "lambda_f",
        "lambda_h",
        "neighbour_search_radius",
        "connectivity_distance",
        "feature_range_thresh",
        "k",
        "max_distance",
        "radius",
    )
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    modalities = MODALITIES if args.modality == "both" else (args.modality,)
    try:
        tasks = graph_tasks(Path(args.features), Path(args.out), args.method, modalities, overrides)
    except ValueError as err:
        print(f"build-graphs: {err}", file=sys.stderr)
        return 2
    if not tasks:
        print(
            f"build-graphs: no feature files under {args.features}/{{{','.join(modalities)}}}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    record = run_cohort(
        tasks,
        build_subject_graph,
        record_path=args.record or out / "build-graphs.json",
        stage="build-graphs",
        backend=backend_from_args(args),
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    return finish(record, args.allow_failures)


def graph_tasks(
    features_dir: Path,
    out_dir: Path,
    method: str,
    modalities: Sequence[str] = MODALITIES,
    overrides: Mapping[str, Any] | None = None,
) -> list[Task]:
    """One task per subject and modality found under ``features_dir``, and the graph folder
    brought in line with the features.

    Each task carries its expected provenance (feature files' fingerprints, method and
    parameters). Before returning, this removes the graphs that are out of date (so no graph
    of old features or settings survives a failed rebuild) and the graphs of subjects that
    have no feature file any more, printing per modality how many changed.

    Raises:
        ValueError: unknown method, or a parameter the method does not take.
    """
    tasks = []
    for modality in modalities:
        params = step_params(modality, method, overrides)
        folder = features_dir / modality
        if modality == "pathology":
            subjects = {
                d.name: finished_files(d, "*.h5") for d in sorted(folder.glob("*")) if d.is_dir()
            }
        else:
            subjects = {f.stem: [f] for f in finished_files(folder, "*.h5")}
        subjects = {subject_id: paths for subject_id, paths in subjects.items() if paths}
        stage = f"graphs {modality}"
        _remove_orphans(stage, out_dir / modality, set(subjects))
        settings = {"modality": modality, "method": method, "params_in_steps": params}
        built = []
        for subject_id, paths in subjects.items():
            job = GraphJob(subject_id, modality, tuple(str(p) for p in paths), method, params)
            provenance = make_provenance(settings, files={p.name: p for p in paths})
            built.append(
                Task(
                    f"{modality}/{subject_id}",
                    (out_dir / modality / f"{subject_id}.pt",),
                    job,
                    provenance,
                )
            )
        changes = prepare_rerun(stage, built)
        if changes:
            print(changes, flush=True)
        tasks += built
    return tasks


def _remove_orphans(stage: str, folder: Path, subjects: set[str]) -> None:
    """Remove the graphs in ``folder`` of subjects without feature files, saying which."""
    orphans = [p for p in finished_files(folder, "*.pt") if p.stem not in subjects]
    for path in orphans:
        discard(path)
    if orphans:
        names = ", ".join(p.stem for p in orphans[:5]) + (" ..." if len(orphans) > 5 else "")
        print(
            f"{stage}: removed {len(orphans)} graph(s) whose subject has no feature file any "
            f"more: {names}",
            flush=True,
        )


def build_subject_graph(task: Task) -> None:
    """Runner stage: read the job's feature files, build the graph, save it atomically."""
    from radiograph.io.features import read_features
    from radiograph.io.graphs import save_graph

    job: GraphJob = task.payload
    feature_sets = [read_features(p) for p in job.feature_paths]
    names = [Path(p).stem for p in job.feature_paths]
    data = subject_graph(
        job.subject_id, job.modality, feature_sets, names, job.method, job.params_in_steps
    )
    begin_outputs(task.outputs, task.provenance)
    save_graph(task.outputs[0], data)
    record_outputs(task.outputs, task.provenance)


def subject_graph(
    subject_id: str,
    modality: str,
    feature_sets: Sequence[FeatureSet],
    names: Sequence[str],
    method: str,
    params_in_steps: Mapping[str, Any],
) -> Data:
    """The graph of one subject and modality.

    Several slides of a subject are laid side by side along x, each shifted so that it starts
    ``gap`` to the right of the previous one, with ``gap`` = 2 x the longest length parameter
    + one grid step: no patch pair or edge can span two slides, so each slide is its own set
    of components. The grid step is the median nearest-neighbour distance of the patches.

    Args:
        subject_id: the subject (named in errors, stored on the graph).
        modality: ``pathology`` (coords (N, 2) level-0 pixels) or ``radiology`` ((N, 3) mm).
        feature_sets: one per slide (pathology) or the single volume (radiology).
        names: a name per feature set (slide stem), recorded on the graph.
        method: construction method.
        params_in_steps: parameters in grid steps (see :mod:`radiograph.graph.params`).

    Returns:
        The graph of :func:`build_spatial_graph` (``pos`` in the side-by-side frame), plus
        ``modality``, ``patch_coords`` (N, 2|3) the original coordinates of each patch in its
        own slide or volume, ``slide_names`` (list), ``slide_offsets`` (S, 2|3) float64 (the
        shift added to each slide's coordinates), ``slide_of_patch`` (N,) int64, and in
        ``params``: ``grid_step``, ``params_in_grid_steps``, ``slide_gap``, ``feature_files``
        and ``encoder``.
    """
    import torch

    from radiograph.graph.build import build_spatial_graph

    if not feature_sets:
        raise ValueError(f"subject {subject_id}: no feature files")
    dims = COORD_DIMS[modality]
    for fs, name in zip(feature_sets, names):
        if fs.coords.shape[1] != dims:
            raise ValueError(
                f"subject {subject_id}, {modality} file {name}: coords are "
                f"{fs.coords.shape[1]}D, expected {dims}D"
            )
        bad = ~np.isfinite(fs.features).all(axis=1)
        if bad.any():
            raise ValueError(
                f"subject {subject_id}, {modality} file {name}: features has "
                f"{int(bad.sum())} of {fs.num_patches} rows with NaN or Inf (first "
                f"at row {int(np.flatnonzero(bad)[0])})"
            )
        if fs.dim != feature_sets[0].dim:
            raise ValueError(
                f"subject {subject_id}: {modality} file {name} has {fs.dim} features "
                f"per patch but {names[0]} has {feature_sets[0].dim}"
            )
    steps = [grid_step(fs.coords) for fs in feature_sets if fs.num_patches > 1]
    step = float(np.median(steps)) if steps else 1.0
    params = scaled_params(params_in_steps, step)
    gap = 2.0 * max([params[k] for k in LENGTH_PARAMS if params.get(k) is not None] + [0.0]) + step
    offsets = np.zeros((len(feature_sets), dims))
    right = None
    for s, fs in enumerate(feature_sets):
        if right is not None:
            offsets[s, 0] = right + gap - fs.coords[:, 0].min()
        right = fs.coords[:, 0].max() + offsets[s, 0]
    coords = np.concatenate([fs.coords + offsets[s] for s, fs in enumerate(feature_sets)])
    features = np.concatenate([fs.features for fs in feature_sets])
    data = build_spatial_graph(coords, features, method, subject_id=subject_id, **params)
    data.modality = modality
    data.patch_coords = torch.from_numpy(np.concatenate([fs.coords for fs in feature_sets]))
    data.slide_names = list(names)
    data.slide_offsets = torch.from_numpy(offsets)
    data.slide_of_patch = torch.from_numpy(
        np.repeat(np.arange(len(feature_sets)), [fs.num_patches for fs in feature_sets])
    )
    data.params.update(
        grid_step=step,
        params_in_grid_steps=dict(params_in_steps),
        slide_gap=gap,
        feature_files=list(names),
        encoder=str(feature_sets[0].attrs.get("encoder", "")),
    )
    return data
