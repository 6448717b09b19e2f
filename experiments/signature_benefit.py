"""Pathomics signature and treatment-benefit study (seed 003): a thin wrapper over
:func:`radiograph.signature.study.run_signature_study`.

    python experiments/signature_benefit.py --config experiments/configs/signature_benefit.yaml \
        [--out DIR] [--synth N_SEED]

``--synth SEED`` first writes the synthetic stand-in cohort (``radiograph synth --kind
signature``) to the config's features folder.
"""

from __future__ import annotations

import argparse
import time

from radiograph.signature.study import load_config, run_signature_study
from radiograph.synth.signature_cohort import make_signature_cohort


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config")
    parser.add_argument("--out", default=None, help="output folder (overrides the config)")
    parser.add_argument(
        "--synth",
        type=int,
        default=None,
        metavar="SEED",
        help="write the synthetic cohort with this seed first",
    )
    args = parser.parse_args()
    config = load_config(args.config, **({"out": args.out} if args.out else {}))
    start = time.perf_counter()
    if args.synth is not None:
        make_signature_cohort(config.features_dir, args.synth, overwrite=True)
    result = run_signature_study(config)
    for endpoint, tables in result.tables.items():
        by = tables.get("treatment_by_group")
        print(f"{endpoint}: C-index\n{tables['concordance'].to_string(index=False)}")
        if by is not None:
            print(by[by["set"] == "all"].to_string(index=False))
    print(f"done in {time.perf_counter() - start:.0f} s: {config.out}/report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
