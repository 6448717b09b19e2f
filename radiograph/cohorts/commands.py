"""``radiograph tcga-manifest``: GDC clinical files + TCGA slides + TCIA CT -> a manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radiograph.cohorts.tcga import DAYS_PER, REQUIREMENTS

EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tcga-manifest`` sub-command."""
    parser = subparsers.add_parser(
        "tcga-manifest",
        help="GDC clinical data + TCGA slides + TCIA CT and masks -> a cohort manifest",
        description="Write a manifest (data_manifests/README.md) with one row per TCGA case: "
        "overall survival from the GDC clinical file (Dead: event 1 at "
        "days_to_death; Alive: event 0 at days_to_last_follow_up), the case's "
        "diagnostic (DX) slides, and its CT with its tumour mask, matched by the "
        "TCGA barcode that starts each file name. Cases with inconsistent clinical "
        "data are left out and listed, never filled in; OUT.cases.csv beside the "
        "manifest says what became of every case. The manifest is validated "
        "before the command ends.",
    )
    parser.add_argument(
        "--clinical",
        required=True,
        nargs="+",
        metavar="FILE",
        help="GDC clinical file(s): clinical.tsv, the clinical .tar.gz, or the "
        "clinical JSON (several: their cases are pooled)",
    )
    parser.add_argument(
        "--slides",
        default=None,
        metavar="DIR",
        help="folder of slides TCGA-XX-XXXX-01Z-00-DX1.<uuid>.svs (searched recursively)",
    )
    parser.add_argument(
        "--ct",
        default=None,
        metavar="DIR",
        help="CT folder: files named by case id (TCGA-XX-XXXX.nii.gz) or TCIA "
        "patient folders of DICOM series (searched recursively)",
    )
    parser.add_argument(
        "--masks",
        default=None,
        metavar="DIR",
        help="tumour masks named by case id (TCGA-XX-XXXX[_mask].nii.gz), in "
        "each CT's geometry; needed with --ct",
    )
    parser.add_argument("--out", required=True, metavar="CSV", help="the manifest to write")
    parser.add_argument(
        "--time-unit",
        choices=tuple(DAYS_PER),
        default="days",
        help="unit of the time column (default days; a month is 30.4375 days)",
    )
    parser.add_argument(
        "--require",
        choices=REQUIREMENTS,
        default="any",
        help="modalities a case needs to be written (default any: at least one)",
    )
    parser.add_argument(
        "--project-label",
        action="store_true",
        help="write label = the TCGA project without 'TCGA-' (KIRC, KIRP, KICH)",
    )
    parser.add_argument(
        "--covariates",
        default="",
        metavar="FIELD[,FIELD...]",
        help="clinical fields copied as covariate columns, e.g. "
        "age_at_index,gender,ajcc_pathologic_stage",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    parser.set_defaults(func=run_tcga_manifest)


def run_tcga_manifest(args: argparse.Namespace) -> int:
    """Run the command: 0 when the written manifest validates, 1 when it does not or an input
    cannot be read, 2 for inconsistent arguments."""
    from radiograph.cohorts.gdc import ClinicalError, read_clinical
    from radiograph.cohorts.tcga import (
        build_cohort,
        scan_slides,
        scan_volumes,
        summary,
        write_manifest,
    )
    from radiograph.manifest import validate_manifest

    usage = _usage_problem(args)
    if usage:
        print(f"radiograph tcga-manifest: {usage}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(
            f"radiograph tcga-manifest: {out} exists; pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 1
    covariates = [c.strip() for c in args.covariates.split(",") if c.strip()]
    try:
        table = read_clinical(args.clinical)
        cohort = build_cohort(
            table,
            slides=scan_slides(args.slides) if args.slides else None,
            volumes=scan_volumes(args.ct, dicom=True) if args.ct else None,
            masks=scan_volumes(args.masks, dicom=False) if args.masks else None,
            require=args.require,
        )
        manifest, report = write_manifest(
            cohort,
            table,
            out,
            time_unit=args.time_unit,
            project_label=args.project_label,
            covariates=covariates,
        )
    except (ClinicalError, ValueError) as err:
        print(f"radiograph tcga-manifest: {err}", file=sys.stderr)
        return 1
    print(summary(cohort, table))
    print(f"wrote {manifest} and {report} (what became of every case)")
    checked, problems = validate_manifest(manifest)
    if problems:
        print(f"{manifest}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    assert checked is not None
    print(checked.summary())
    return 0


def _usage_problem(args: argparse.Namespace) -> str:
    """What is inconsistent in the folders given ("" when nothing)."""
    for name in ("slides", "ct", "masks"):
        folder = getattr(args, name)
        if folder is not None and not Path(folder).is_dir():
            return f"--{name}: not a folder: {folder}"
    if not (args.slides or args.ct):
        return "give --slides, --ct (with --masks), or both"
    if bool(args.ct) != bool(args.masks):
        return (
            "--ct and --masks go together: radiology needs each CT's tumour mask (see the "
            "README, 'Tumour masks')"
        )
    if args.ct:
        ct, masks = Path(args.ct).resolve(), Path(args.masks).resolve()
        if masks == ct or masks.is_relative_to(ct) or ct.is_relative_to(masks):
            return "--masks and --ct must be separate folders (neither inside the other)"
    return ""
