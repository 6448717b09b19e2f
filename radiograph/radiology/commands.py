"""``radiograph extract-radiology``: unit features of every subject's volume."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from radiograph.argtypes import positive_float, positive_int
from radiograph.manifest import ManifestError, load_manifest
from radiograph.radiology.config import (
    DEFAULT_HU_WINDOW,
    DEFAULT_K_RANGE,
    PYRADIOMICS,
    UNIT_KINDS,
    RadiologyConfig,
)
from radiograph.runner import add_backend_arguments, backend_from_args, finish


def register(subparsers) -> None:
    """Add ``extract-radiology`` to the ``radiograph`` command."""
    p = subparsers.add_parser(
        "extract-radiology",
        help="volumes + tumour masks -> unit features with 3D positions (one h5 per subject)",
        description="Cut each subject's tumour into units (a grid of cubes, or habitat "
        "components) and compute each unit's features: pyradiomics, a 3D ViT "
        "(segvol-vit, vit3d-tiny) or a 2D encoder slice by slice. Writes "
        "OUT/features/radiology/<subject>.h5; subjects already done are skipped.",
    )
    p.add_argument("--manifest", required=True, help="cohort manifest CSV")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument(
        "--features",
        default=PYRADIOMICS,
        help="'pyradiomics', a 3D encoder (segvol-vit, vit3d-tiny) or a 2D encoder "
        "name / 'timm:<model>' applied slice by slice (default: pyradiomics)",
    )
    p.add_argument(
        "--units", choices=UNIT_KINDS, default="grid", help="spatial units (default grid)"
    )
    p.add_argument("--weights", default=None, help="local encoder weights file")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="use a seeded randomly initialised encoder (features without meaning)",
    )
    p.add_argument(
        "--params",
        default=None,
        help="pyradiomics YAML parameter file (default: the packaged CT / MR file)",
    )
    p.add_argument(
        "--spacing", type=positive_float, default=1.0, help="isotropic spacing in mm (default 1)"
    )
    p.add_argument(
        "--unit-size", type=positive_float, default=8.0, help="grid cube side in mm (default 8)"
    )
    p.add_argument(
        "--min-fraction",
        type=float,
        default=0.5,
        help="grid: minimum tumour fraction of a cube (default 0.5)",
    )
    p.add_argument(
        "--min-unit-voxels",
        type=positive_int,
        default=27,
        help="habitat: minimum voxels of a connected component (default 27)",
    )
    p.add_argument(
        "--habitat-model",
        default=None,
        metavar="PATH",
        help="habitat model JSON: reused when it exists, else fitted and written "
        "there (default OUT/features/radiology/habitat_model.json). For a "
        "leak-free cross-validation fit one per training fold.",
    )
    p.add_argument(
        "--habitat-fit-subjects",
        default=None,
        metavar="ID[,ID...]",
        help="subjects to fit the habitat model on (default: every subject with a volume)",
    )
    p.add_argument(
        "--habitat-k",
        type=int,
        nargs="+",
        default=list(DEFAULT_K_RANGE),
        metavar="K",
        help="candidate numbers of habitats; the one with the highest "
        "Calinski-Harabasz score is used (default 2..10)",
    )
    p.add_argument(
        "--habitat-voxels",
        type=positive_int,
        default=2000,
        help="tumour voxels sampled per subject to fit habitats (default 2000)",
    )
    p.add_argument(
        "--resample-mask",
        action="store_true",
        help="resample a mask on another grid onto the image (nearest neighbour)",
    )
    p.add_argument(
        "--mask-label",
        type=int,
        default=None,
        help="tumour label in masks with labels other than 0/1",
    )
    p.add_argument(
        "--hu-window",
        type=float,
        nargs=2,
        default=DEFAULT_HU_WINDOW,
        metavar=("LOW", "HIGH"),
        help="CT window in HU for encoders and habitats "
        f"(default {DEFAULT_HU_WINDOW[0]:g} "
        f"{DEFAULT_HU_WINDOW[1]:g})",
    )
    p.add_argument(
        "--slice-tile",
        type=positive_int,
        default=32,
        help="2D encoders: tile side in voxels (default 32)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help="windows / tiles per forward pass (default 8)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of random weights and of the habitat fit (default 0)",
    )
    add_backend_arguments(p)
    p.set_defaults(func=run_extract_radiology)


def run_extract_radiology(args: argparse.Namespace) -> int:
    """Run the command; 0 when every subject succeeded, 1 otherwise."""
    from radiograph.encoders.base import EncoderError
    from radiograph.radiology.extract import extract_cohort, radiology_jobs
    from radiograph.radiology.habitats import HabitatModelError
    from radiograph.radiology.radiomics_features import RadiomicsError

    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as err:
        print(err, file=sys.stderr)
        return 1
    jobs = radiology_jobs(manifest, args.out)
    if not jobs:
        print(f"{args.manifest}: no subject has volume_paths and mask_path", file=sys.stderr)
        return 1
    try:
        config = RadiologyConfig(
            features=args.features,
            units=args.units,
            spacing_mm=args.spacing,
            unit_size_mm=args.unit_size,
            min_fraction=args.min_fraction,
            min_unit_voxels=args.min_unit_voxels,
            params=args.params,
            weights=args.weights,
            random_weights=args.random_weights,
            resample_mask=args.resample_mask,
            mask_label=args.mask_label,
            hu_window=tuple(args.hu_window),
            slice_tile=args.slice_tile,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
        )
        config.feature_kind  # noqa: B018 - an unknown name is an error before the habitat fit
        if config.units == "habitat":
            config = _with_habitat_model(config, jobs, args)
        record = extract_cohort(
            jobs,
            args.out,
            config,
            backend=backend_from_args(args),
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ValueError, EncoderError, HabitatModelError, RadiomicsError) as err:
        print(f"extract-radiology: {err}", file=sys.stderr)
        return 1
    return finish(record, args.allow_failures)


def _with_habitat_model(config: RadiologyConfig, jobs, args: argparse.Namespace) -> RadiologyConfig:
    from radiograph.radiology.extract import features_dir, fit_habitat_model
    from radiograph.radiology.habitats import HabitatModel

    path = (
        Path(args.habitat_model)
        if args.habitat_model
        else (features_dir(args.out) / "habitat_model.json")
    )
    if path.exists():
        model = HabitatModel.load(path)
        print(
            f"habitat model {path}: reused (K = {model.k}, fitted on "
            f"{len(model.subjects)} subjects)"
        )
        return replace(config, habitat_model=str(path))
    fit_jobs = jobs
    if args.habitat_fit_subjects:
        wanted = [s.strip() for s in args.habitat_fit_subjects.split(",") if s.strip()]
        known = {job.subject_id for job in jobs}
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ValueError(f"--habitat-fit-subjects: no radiology for subject(s) {unknown}")
        fit_jobs = [job for job in jobs if job.subject_id in set(wanted)]
    model, failures = fit_habitat_model(
        fit_jobs,
        config,
        k_range=args.habitat_k,
        voxels_per_subject=args.habitat_voxels,
        progress=not args.no_progress,
    )
    for subject, message in failures:
        print(f"habitat fit: left out {subject}: {message}", file=sys.stderr)
    model.save(path)
    scores = ", ".join(f"K={k}: {v:.1f}" for k, v in sorted(model.calinski_harabasz.items()))
    print(
        f"habitat model {path}: K = {model.k} by Calinski-Harabasz ({scores}); fitted on "
        f"{len(model.subjects)} subjects, {model.n_fit_voxels} voxels"
    )
    return replace(config, habitat_model=str(path))
