"""The ``radiograph`` command. Thin: each room registers its own sub-commands.

A cohort command holds the lock of its output folder for its whole run (one writer per
folder, :mod:`radiograph.lock`): the folder named by the argument its parser gave to
:func:`radiograph.runner.add_lock_arguments`. A second run on that folder stops at once with
exit status 75 (:data:`radiograph.lock.EXIT_LOCKED`) naming the run that holds it, or, with
``--wait``, starts when that run ends.

Listing the commands imports no heavy library (torch, timm, scikit-learn, pandas): a command
module's ``register`` needs only argparse, and its run function imports what the command uses
(``tests/test_cli_imports.py``; times in ``benchmarks/README.md``). Warnings print as one line
each, without the source line Python adds (:func:`one_line_warning`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from radiograph import __version__
from radiograph.lock import EXIT_LOCKED, LockedError
from radiograph.manifest import validate_manifest
from radiograph.runner import lock_from_args

#: Modules that define ``register(subparsers)``, in the order their commands are listed.
COMMAND_MODULES = (
    "radiograph.study_commands",
    "radiograph.synth.commands",
    "radiograph.pathology.commands",
    "radiograph.radiology.commands",
    "radiograph.graph.commands",
    "radiograph.train.commands",
    "radiograph.cohorts.commands",
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


def one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A ``warnings.formatwarning`` that writes one line: ``Category: message (file.py:N)``,
    with the message's lines joined and no line of source code."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"{category.__name__}: {text} ({Path(filename).name}:{lineno})\n"


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Format warnings with :func:`one_line_warning` inside the block (worker processes of the
    runner take the format over), and as before after it."""
    previous = warnings.formatwarning
    warnings.formatwarning = one_line_warning
    try:
        yield
    finally:
        warnings.formatwarning = previous


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiograph",
        description="Radiopathomics: CT and H&E slides to spatial graphs, survival with SPARRA.",
    )
    parser.add_argument("--version", action="version", version=f"radiograph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = sub.add_parser("validate", help="check a cohort manifest and print one report")
    validate.add_argument("manifest", help="manifest CSV")
    validate.add_argument(
        "--no-file-check", action="store_true", help="do not check that referenced files exist"
    )
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
    """Run the ``radiograph`` command line ``argv`` (None: ``sys.argv[1:]``); its exit status."""
    quiet_known_warnings()
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["radiograph", *(sys.argv[1:] if argv is None else argv)])
    with one_line_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        folder_arg = getattr(args, "lock_folder_arg", None)
        if folder_arg is None:
            return int(args.func(args) or 0)
        with lock_from_args(args, getattr(args, folder_arg), f"radiograph {args.command}"):
            return int(args.func(args) or 0)
    except LockedError as err:
        print(f"radiograph {args.command}: {err}", file=sys.stderr)
        return EXIT_LOCKED


if __name__ == "__main__":
    sys.exit(main())
