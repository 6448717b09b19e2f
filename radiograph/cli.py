"""The ``radiograph`` command. Thin: each room registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

from radiograph import __version__
from radiograph.manifest import validate_manifest

#: Modules that define ``register(subparsers)``, in the order their commands are listed.
COMMAND_MODULES = (
    "radiograph.synth.commands",
    "radiograph.pathology.commands",
    "radiograph.radiology.commands",
    "radiograph.graph.commands",
    "radiograph.train.commands",
)


#: Third-party warnings that say nothing about the user's data: (message regex, category).
KNOWN_THIRD_PARTY_WARNINGS = (
    # torch_geometric scripts its pooling helpers at import time; torch >= 2.10 deprecates that
    (r"`torch\.jit\.script` is deprecated", FutureWarning),
)


def quiet_known_warnings() -> None:
    """Ignore :data:`KNOWN_THIRD_PARTY_WARNINGS` in this process (for command-line entry points;
    the process-pool backend hands the filters on to its workers)."""
    for message, category in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiograph",
        description="Radiopathomics: CT and H&E slides to spatial graphs, survival with SPARRA.",
    )
    parser.add_argument("--version", action="version", version=f"radiograph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = sub.add_parser("validate", help="check a cohort manifest and print one report")
    validate.add_argument("manifest", help="manifest CSV")
    validate.add_argument("--no-file-check", action="store_true",
                          help="do not check that referenced files exist")
    validate.set_defaults(func=_validate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _validate(args: argparse.Namespace) -> int:
    manifest, problems = validate_manifest(args.manifest, check_files=not args.no_file_check)
    if problems:
        print(f"{args.manifest}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    assert manifest is not None
    print(manifest.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    quiet_known_warnings()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
