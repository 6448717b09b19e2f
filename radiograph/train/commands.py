"""``radiograph train`` (cross-validated training) and ``radiograph look-inside`` (importance
plots)."""

from __future__ import annotations

import argparse
import sys

from radiograph.manifest import ManifestError
from radiograph.runner import add_lock_arguments, add_progress_argument, lock_from_args
from radiograph.train.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``look-inside`` sub-commands."""
    train = subparsers.add_parser(
        "train",
        help="cross-validated training of SPARRA / ABMIL / Mean pooling on a cohort's graphs",
        description="Train the configured aggregator on the outer folds of splits.json (made "
        "once: patient-level, stratified by event or label; reused by every model). "
        "Writes OUT_DIR/<aggregator>/<modalities>/fold_<k>/ with checkpoint.pt, "
        "train_log.csv, predictions.csv, embeddings.npz, importance/ and "
        "summary.json. Finished folds are skipped on a rerun.",
    )
    train.add_argument("--config", required=True, help="training config YAML")
    add_progress_argument(train)
    add_lock_arguments(train, output=None)  # _train locks the config's out_dir
    train.set_defaults(func=_train)

    look = subparsers.add_parser(
        "look-inside",
        help="plot node importance of the top- and bottom-risk test subjects of a fold",
        description="Draw each modality's graph of the N highest- and N lowest-risk test "
        "subjects of a trained fold, nodes coloured by importance, over the slide "
        "thumbnail and the CT projections. Writes PNGs to FOLD_DIR/look_inside/.",
    )
    look.add_argument("--config", required=True, help="the training config YAML")
    look.add_argument("--fold", type=int, default=0, help="fold index (default 0)")
    look.add_argument("--n", type=int, default=1, help="subjects at each end (default 1)")
    look.add_argument("--out", default=None, help="output folder (default FOLD_DIR/look_inside)")
    look.set_defaults(func=_look_inside)


def _train(args: argparse.Namespace) -> int:
    from radiograph.train.splits import SplitsError
    from radiograph.train.trainer import (
        FoldConflictError,
        format_results,
        run_cross_validation,
    )

    try:
        config = load_config(args.config)
        with lock_from_args(args, config.out_dir, "radiograph train"):
            results = run_cross_validation(config, progress=not args.no_progress)
    except (
        ConfigError,
        ManifestError,
        SplitsError,
        FoldConflictError,
        FileNotFoundError,
        ValueError,
    ) as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    print(f"{config.aggregator} on {'+'.join(config.modalities)} -> {config.model_dir}")
    print(format_results(results))
    return 0


def _look_inside(args: argparse.Namespace) -> int:
    from radiograph.train.look_inside import look_inside

    try:
        config = load_config(args.config)
        fold_dir = config.model_dir / f"fold_{args.fold}"
        written = look_inside(fold_dir, config.graphs_dir, config.manifest, args.out, args.n)
    except (ConfigError, ManifestError, FileNotFoundError, ValueError) as err:
        print(f"look-inside: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
