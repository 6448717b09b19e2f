"""The paper's radiopathomics study: features -> graphs -> {Mean, ABMIL, SPARRA} x
{radiology, pathology, both} -> RSF / CoxPH / Coxnet / FSVM -> Table 1 and Fig. 2-4.

    python experiments/radiopathomics.py --config experiments/configs/synthetic.yaml
    python experiments/radiopathomics.py --config experiments/configs/tcga_rcc.yaml

Stages whose outputs exist are skipped, so a rerun resumes (see radiograph/study.py).
"""

from __future__ import annotations

import argparse
import sys

from radiograph.cli import quiet_known_warnings
from radiograph.study import StudyConfigError, load_study_config, run_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="study YAML file")
    parser.add_argument("--out", default=None,
                        help="output folder (overrides the config's out_dir)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    quiet_known_warnings()
    try:
        config = load_study_config(args.config, out_dir=args.out)
    except StudyConfigError as err:
        print(f"radiopathomics: {err}", file=sys.stderr)
        return 2
    run_study(config, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
