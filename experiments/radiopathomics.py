"""The paper's radiopathomics study: features -> graphs -> {Mean, ABMIL, SPARRA} x
{radiology, pathology, both} -> RSF / CoxPH / Coxnet / FSVM -> Table 1 and Fig. 2-4.

An example of running a study from Python; it is the command

    radiograph study experiments/configs/synthetic.yaml [--out DIR] [options]

to which this script passes its arguments (``--config PATH`` stands for CONFIG.yaml):

    python experiments/radiopathomics.py experiments/configs/tcga_rcc.yaml --check

The config is checked whole and the preflight runs before any work (exit status 2 listing
every problem); stages whose outputs exist are skipped, so a rerun resumes; the output folder
is locked (exit status 75 when another run holds it, or wait with --wait); subjects that fail
a per-subject stage are left out and listed in report/excluded_subjects.csv (exit status 1
beyond --allow-failures). See ``radiograph study --help`` and radiograph/study.py.
"""

from __future__ import annotations

import sys

from radiograph.cli import main as radiograph


def main(argv: list[str] | None = None) -> int:
    """``radiograph study`` with this script's arguments; its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--config" in args[:-1]:
        at = args.index("--config")
        args[at : at + 2] = [args[at + 1]]
    return radiograph(["study", *args])


if __name__ == "__main__":
    sys.exit(main())
