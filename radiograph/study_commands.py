"""``radiograph study CONFIG.yaml`` runs a whole study; ``radiograph report OUT_DIR`` redraws its
report from the saved results.

A study config's ``kind`` (default ``radiopathomics``) picks the study from
:data:`STUDY_KINDS`, each kind a reader, an optional preflight and a runner, named here and
imported when used. ``radiograph study`` then

1. reads and checks the whole config (exit status 2 and every problem, naming each key, in
   well under a second: :mod:`radiograph.study_config`);
2. runs the kind's preflight (exit status 2 and every problem, in seconds:
   :mod:`radiograph.preflight` and each kind's ``preflight``); ``--check`` stops here;
3. runs the study holding the lock of its output folder, whatever the kind (taken here, in
   :func:`_study`; exit status 75 naming the holder when another run holds it, unless
   ``--wait``); subjects that fail a per-subject stage are left out and listed, and
   the exit status is 1 when more failed than ``--allow-failures`` (or the config's
   ``allow_failures``) accepts.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiograph.runner import (
    Backend,
    add_failure_arguments,
    add_lock_arguments,
    add_progress_argument,
    add_where_arguments,
    announce_wait,
    backend_from_args,
    lock_from_args,
)
from radiograph.study_config import (
    RADIOPATHOMICS,
    ConfigError,
    did_you_mean,
    load_study_config,
    read_yaml,
)

#: Exit status of a problem with the config or the environment found before any work.
EXIT_CONFIG = 2


@dataclass(frozen=True)
class RunOptions:
    """How ``radiograph study`` runs a study, from its command line.

    Attributes:
        progress: show progress bars (on a terminal only).
        wait: wait for another run holding the output folder instead of stopping.
        allow_failures: failed subjects accepted (None: the config's).
        command: the command line, recorded as the output folder's lock holder.
        backend: where per-subject stages run (None: the config's local workers).
    """

    progress: bool
    wait: bool
    allow_failures: int | float | None
    command: str
    backend: Backend | None


@dataclass(frozen=True)
class StudyKind:
    """One kind of study: functions as ``"module:name"``, imported when the kind is used.

    Attributes:
        load: ``load(path, out_dir) -> config``; raises ConfigError or ValueError naming the
            problem.
        run: ``run(config, options: RunOptions) -> None``.
        preflight: ``preflight(config) -> PreflightReport`` run before ``run``.
        out: the config's attribute holding the output folder (locked for the run).
        description: one line for the help.
        saved: the config class whose fields the run saves as ``OUT/config.json`` (how
            ``radiograph report`` knows the kind of a folder without ``study.yaml``), or None.
    """

    load: str
    run: str
    preflight: str
    out: str
    description: str
    saved: str | None = None

    def function(self, role: str) -> Callable[..., Any]:
        """The function named by field ``role``, imported now."""
        module, _, name = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), name)


#: Study kinds by the name a config gives as ``kind``.
STUDY_KINDS: dict[str, StudyKind] = {
    RADIOPATHOMICS: StudyKind(
        load="radiograph.study_commands:load_radiopathomics",
        run="radiograph.study_commands:run_radiopathomics",
        preflight="radiograph.preflight:preflight",
        out="out_dir",
        description="features -> graphs -> {Mean, ABMIL, SPARRA} x modality sets -> "
        "downstream survival models -> Table 1 (radiograph.study)",
    ),
    "signature": StudyKind(
        load="radiograph.study_commands:load_signature",
        run="radiograph.study_commands:run_signature",
        preflight="radiograph.signature.study:preflight",
        out="out",
        description="pathomics signature and treatment benefit (radiograph.signature.study)",
        saved="radiograph.signature.study:SignatureStudyConfig",
    ),
    "habitat-fusion": StudyKind(
        load="radiograph.fusion.config:load_fusion_config",
        run="radiograph.fusion.study:run_fusion_study",
        preflight="radiograph.fusion.study:preflight",
        out="out_dir",
        description="clinical, MRI habitat and pathology models, stacking and MHA fusion, "
        "centre-held-out validation (radiograph.fusion.study)",
        saved="radiograph.fusion.config:FusionStudyConfig",
    ),
    "longitudinal": StudyKind(
        load="radiograph.study_commands:load_longitudinal",
        run="radiograph.study_commands:run_longitudinal",
        preflight="radiograph.longitudinal.study:preflight",
        out="out",
        description="longitudinal missing-modality-robust response prediction "
        "(radiograph.longitudinal.study)",
        saved="radiograph.longitudinal.study:LongitudinalStudyConfig",
    ),
}


def study_kind(path: str | Path) -> StudyKind:
    """The kind of the study config at ``path`` (its ``kind`` key, default radiopathomics).

    Raises:
        ConfigError: unreadable file or unknown kind (naming the known ones).
    """
    kind = read_yaml(path).get("kind", RADIOPATHOMICS)
    if kind not in STUDY_KINDS:
        raise ConfigError(
            f"{path}: key 'kind': unknown study kind {kind!r}"
            f"{did_you_mean(str(kind), STUDY_KINDS)}; known: "
            f"{', '.join(STUDY_KINDS)}"
        )
    return STUDY_KINDS[kind]


def load_radiopathomics(path: Path, out_dir: str | None) -> Any:
    """:func:`radiograph.study_config.load_study_config`."""
    return load_study_config(path, out_dir=out_dir)


def run_radiopathomics(config: Any, options: RunOptions) -> None:
    """:func:`radiograph.study.run_study`."""
    from radiograph.study import run_study

    run_study(
        config,
        progress=options.progress,
        wait=options.wait,
        allow_failures=options.allow_failures,
        command=options.command,
        on_wait=functools.partial(announce_wait, "radiograph study"),
        backend=options.backend,
    )


def load_signature(path: Path, out_dir: str | None) -> Any:
    """:func:`radiograph.signature.study.load_config` (``out_dir`` becomes its ``out``)."""
    from radiograph.signature.study import load_config

    return load_config(path, **({"out": Path(out_dir).resolve()} if out_dir else {}))


def run_signature(config: Any, options: RunOptions) -> None:
    """:func:`radiograph.signature.study.run_signature_study` (one process; of the options
    only ``allow_failures`` applies, overriding the config's)."""
    import dataclasses

    from radiograph.signature.study import run_signature_study

    if options.allow_failures is not None:
        config = dataclasses.replace(config, allow_failures=options.allow_failures)
    run_signature_study(config)


def load_longitudinal(path: Path, out_dir: str | None) -> Any:
    """:func:`radiograph.longitudinal.study.load_config` (``out_dir`` becomes its ``out``)."""
    from radiograph.longitudinal.study import load_config

    return load_config(path, **({"out": Path(out_dir).resolve()} if out_dir else {}))


def run_longitudinal(config: Any, options: RunOptions) -> None:
    """:func:`radiograph.longitudinal.study.run_longitudinal_study` (one process; the options
    of the per-subject stages do not apply)."""
    from radiograph.longitudinal.study import run_longitudinal_study

    run_longitudinal_study(config)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``study`` and ``report`` sub-commands."""
    kinds = "; ".join(f"{name}: {kind.description}" for name, kind in STUDY_KINDS.items())
    study = subparsers.add_parser(
        "study",
        help="run a whole study from one YAML config (resumes finished work)",
        description="Check the whole config, run the preflight (manifest, weights, device, "
        "output folder, disk space), then run every stage of the study, skipping "
        f"work already done. The config's 'kind' picks the study ({kinds}).",
    )
    study.add_argument("config", metavar="CONFIG.yaml", help="study config")
    study.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (replaces the config's out_dir)"
    )
    study.add_argument(
        "--check", action="store_true", help="check the config and run the preflight, then stop"
    )
    add_progress_argument(study)
    add_lock_arguments(study, output=None)  # _study locks the config's output folder itself
    add_failure_arguments(study, unit="subjects")
    study.set_defaults(allow_failures=None)  # None: the config's allow_failures (default 0)
    add_where_arguments(study, workers_default="the config's workers, else number of cores")
    study.set_defaults(func=_study)

    report = subparsers.add_parser(
        "report",
        help="redraw a study's report from its saved results",
        description="Rebuild OUT_DIR/report/ (Table 1, figures, intervals and comparisons) from "
        "OUT_DIR/report/results.csv and the config the study saved as "
        "OUT_DIR/study.yaml, without running any stage.",
    )
    report.add_argument("out_dir", metavar="OUT_DIR", help="the out_dir of a study")
    add_lock_arguments(report, output="out_dir")
    report.set_defaults(func=_report)


def _study(args: argparse.Namespace) -> int:
    try:
        kind = study_kind(args.config)
        config = kind.function("load")(Path(args.config), args.out)
    except (ConfigError, ValueError) as err:
        print(f"radiograph study: {err}", file=sys.stderr)
        return EXIT_CONFIG
    report = kind.function("preflight")(config)
    print(report.format(), file=sys.stdout if report.ok else sys.stderr, flush=True)
    if not report.ok:
        return EXIT_CONFIG
    if args.check:
        return 0
    from radiograph.study import SubjectsFailedError  # after the checks: it imports pandas

    options = RunOptions(
        progress=not args.no_progress,
        wait=args.wait,
        allow_failures=args.allow_failures,
        command=args.command_line,
        backend=_backend(args),
    )
    try:
        # every kind's run holds its output folder's lock (re-entrant: run_study takes it too);
        # a LockedError reaches radiograph.cli._run, which prints it and exits 75
        with lock_from_args(args, getattr(config, kind.out), "radiograph study"):
            kind.function("run")(config, options)
    except SubjectsFailedError as err:
        print(f"radiograph study: {err}", file=sys.stderr)
        return 1
    return 0


def _backend(args: argparse.Namespace) -> Backend | None:
    """The backend the options ask for; None leaves it to the config (``workers``)."""
    if args.scheduler or args.dask_workers or args.workers is not None:
        return backend_from_args(args)
    return None


def _report(args: argparse.Namespace) -> int:
    from radiograph.study import STUDY_YAML

    out_dir = Path(args.out_dir)
    saved = out_dir / STUDY_YAML
    other = None if saved.is_file() else saved_kind(out_dir)
    if other is not None:
        print(
            f"radiograph report: {out_dir} holds a {other!r} study ({out_dir / CONFIG_JSON}); "
            "its report is written by 'radiograph study' at the end of the run, not rebuilt "
            f"from saved results: rerun 'radiograph study CONFIG.yaml --out {out_dir}' with "
            "the config of that run to write it again",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    if not saved.is_file():
        print(
            f"radiograph report: {saved} not found: OUT_DIR is the folder of a study run by "
            "'radiograph study', which saves its config there",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        config = load_study_config(saved, out_dir=out_dir)
    except ConfigError as err:
        print(f"radiograph report: {err}", file=sys.stderr)
        return EXIT_CONFIG
    results_path = config.report_dir / "results.csv"
    if not results_path.is_file():
        print(
            f"radiograph report: {results_path} not found: the study has not reached its "
            "report yet (run 'radiograph study' on it)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    rebuild_report(config, results_path)
    return 0


#: The config a study of another kind than radiopathomics saves in its output folder.
CONFIG_JSON = "config.json"


def saved_kind(out_dir: Path) -> str | None:
    """The kind of the study whose ``config.json`` (:data:`CONFIG_JSON`) is in ``out_dir``: its
    ``kind`` key; for a folder written before the studies recorded it, the kind whose config
    class (:attr:`StudyKind.saved`) has exactly its keys; None when there is no such file or
    no kind matches."""
    import dataclasses
    import json

    try:
        data = json.loads((out_dir / CONFIG_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") in STUDY_KINDS:
        return data["kind"]
    for name, kind in STUDY_KINDS.items():
        if kind.saved is not None:
            fields = {f.name for f in dataclasses.fields(kind.function("saved"))}
            if set(data) == fields:
                return name
    return None


def rebuild_report(config: Any, results_path: Path) -> None:
    """:func:`radiograph.study.write_report` on the results saved at ``results_path``."""
    import pandas as pd

    from radiograph.manifest import load_manifest
    from radiograph.study import write_report

    results = pd.read_csv(results_path, float_precision="round_trip")
    write_report(config, load_manifest(config.manifest_path), results)
