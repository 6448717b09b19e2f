"""The ``radiograph synth`` command: write a synthetic cohort with a planted signal.

``--signal focal`` (radiopathomics kind) writes the focal-signal cohort of
:mod:`radiograph.synth.cohort`: the slide's term of the hazard is the nuclear size of one small
marked region (a distractor region of the same size has its own marker and a nuclear size that
is noise), not the abundance of a pattern; the CT keeps its abundance signal.
"""

from __future__ import annotations

import argparse
import time

from radiograph.io.atomic import read_json
from radiograph.runner import add_backend_arguments, backend_from_args
from radiograph.synth import SIGNALS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth OUT_DIR --subjects N --seed S [--slide-mpp MPP] [--signal focal]`` to the
    ``radiograph`` command."""
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic cohort (slides, CT, masks, survival) with a planted signal",
        description="Write a synthetic radiopathomics cohort to OUT_DIR: manifest.csv, "
        "pyramidal TIFF slides, NIfTI CT volumes and tumour masks, survival times "
        "from a known hazard driven by planted regions, and the ground truth "
        "(ground_truth.csv, ground_truth.json, ground_truth/). Same seed and "
        "settings, same files.",
    )
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--subjects", type=int, default=60, help="number of subjects (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--kind",
        choices=("radiopathomics", "signature", "habitat-fusion", "longitudinal"),
        default="radiopathomics",
        help="signature: the 3-centre pathomics-signature / treatment-benefit "
        "stand-in (radiograph.synth.signature_cohort; --subjects unused)",
    )
    parser.add_argument(
        "--signal",
        choices=SIGNALS,
        default="abundance",
        help="what sets the slide's term of the hazard (radiopathomics kind only): abundance "
        "(default: the planted fraction of the tissue) or focal (the nuclear size of one small "
        "marked region, beside a distractor region of the same size; the CT keeps its "
        "abundance signal); see radiograph.synth.cohort",
    )
    parser.add_argument(
        "--slide-mpp",
        type=float,
        default=0.5,
        help="level-0 microns per pixel of the slides: 0.5 (20x, default) or 0.25 (40x)",
    )
    parser.add_argument(
        "--slide-size",
        type=int,
        nargs=2,
        metavar=("WIDTH", "HEIGHT"),
        default=None,
        help="level-0 slide size in pixels (default: a 1500 x 1000 um field, "
        "3000 x 2000 px at 0.5 um/px)",
    )
    add_backend_arguments(parser, output="out_dir", failures=False)
    parser.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    if args.signal != "abundance" and args.kind != "radiopathomics":
        print(f"radiograph synth: --signal {args.signal} is for the radiopathomics kind only")
        return 1
    if args.kind == "longitudinal":
        from radiograph.synth.longitudinal_cohort import make_longitudinal_cohort

        try:
            path = make_longitudinal_cohort(
                args.out_dir, args.seed, patients=max(args.subjects, 240), overwrite=args.overwrite
            )
        except (FileExistsError, ValueError) as err:
            print(f"radiograph synth: {err}")
            return 1
        print(f"wrote {path}")
        return 0
    if args.kind == "habitat-fusion":
        from radiograph.synth.fusion_cohort import make_fusion_cohort

        try:
            path = make_fusion_cohort(
                args.out_dir, args.seed, patients=max(args.subjects, 80), overwrite=args.overwrite
            )
        except (FileExistsError, ValueError) as err:
            print(f"radiograph synth: {err}")
            return 1
        print(f"wrote {path}")
        return 0
    if args.kind == "signature":
        from radiograph.synth.signature_cohort import make_signature_cohort

        try:
            path = make_signature_cohort(args.out_dir, args.seed, overwrite=args.overwrite)
        except FileExistsError as err:
            print(f"radiograph synth: {err}")
            return 1
        print(f"wrote {path}")
        return 0
    from radiograph.synth.cohort import TRUTH_JSON, SynthParams, make_cohort

    start = time.perf_counter()
    try:
        manifest = make_cohort(
            args.out_dir,
            args.subjects,
            args.seed,
            slide_mpp=args.slide_mpp,
            slide_size=tuple(args.slide_size) if args.slide_size else None,
            params=SynthParams(signal=args.signal),
            backend=backend_from_args(args),
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (FileExistsError, RuntimeError, ValueError) as err:
        print(f"radiograph synth: {err}")
        return 1
    cohort = read_json(manifest.parent / TRUTH_JSON)["cohort"]
    oracle = cohort["oracle_c_index"]
    print(
        f"wrote {manifest} in {time.perf_counter() - start:.1f} s: {cohort['subjects']} "
        f"subjects ({cohort['patients']} patients), {cohort['events']} events "
        f"({100 * cohort['censored_fraction']:.0f}% censored), {cohort['without_slide']} "
        f"without a slide, {cohort['without_ct']} without a CT; oracle C-index "
        + (f"{oracle:.3f}" if oracle is not None else "undefined (no comparable pairs)")
    )
    return 0
