"""The signature study on the synthetic stand-in: planted treatment benefit recovered.

Planted (radiograph.synth.signature_cohort): chemotherapy log HR -0.9 in the true high-risk
group (``z > 0``, the median of the tissue score), 0 in the low-risk group. Measured
2026-12-01 over cohort seeds 0-5 (660 subjects; maxstat cut-off on the 252 training
subjects; n_boot 20), treatment HR (95% CI) by risk group:

=====  ===  ============  =========================  ==========================  =====
seed   end  cut quantile  high risk (p)              low risk                    pass
=====  ===  ============  =========================  ==========================  =====
0      OS   0.25          0.71 (0.57-0.88, 0.002)    0.85 (0.47-1.54)            yes
0      RFS  0.25          0.60 (0.49-0.74, 1e-6)     0.74 (0.43-1.25)            yes
1      OS   0.14          0.62 (0.50-0.77, 1e-5)     1.41 (0.59-3.36)            yes
1      RFS  0.41          0.45 (0.35-0.57, 5e-11)    0.83 (0.60-1.15)            yes
2      OS   0.71          0.57 (0.39-0.81, 0.002)    0.68 (0.52-0.90)            no
2      RFS  0.35          0.51 (0.40-0.66, 2e-7)     0.76 (0.54-1.06)            yes
3      OS   0.10          0.93 (0.75-1.16, 0.53)     0.85 (0.27-2.69)            no
3      RFS  0.23          0.81 (0.65-1.00, 0.046)    0.72 (0.43-1.19)            yes
4      OS   0.10          0.82 (0.65-1.03, 0.08)     0.74 (0.26-2.16)            no
4      RFS  0.12          0.73 (0.59-0.91, 0.004)    1.43 (0.53-3.80)            yes
5      OS   0.22          0.64 (0.51-0.81, 2e-4)     2.99 (1.17-7.66)            no
5      RFS  0.34          0.64 (0.51-0.80, 9e-5)     1.29 (0.78-2.15)            yes
=====  ===  ============  =========================  ==========================  =====

The issue's criterion (high: HR < 1, p < 0.05; low: interval covers 1) holds for RFS (the
labelling endpoint) on 6/6 seeds and for OS on 2/6; the high-risk HR is below 1 on 12/12.
Why OS fails: in the TRUE groups the planted interaction is there on every seed (true-high HR
0.41-0.65, p <= 0.002; true-low interval covers 1, 12/12, ``test_generator_plants...``), the
cut-off's smallest group share is R maxstat's default (minprop 0.1), and the signature orders
risk fairly (Pearson r with the true tissue score 0.74-0.93; OS lowest, 0.74 on seed 2). The
cause is where the maximally selected log-rank statistic puts the cut: its curve over the cut
quantile is flat on ~250 training subjects, so the argmax lands anywhere in 0.10-0.71 (even
with the TRUE log hazard as the score, on the 360 subjects of the training centre, it ranges
over 0.21-0.65 on seeds 0-5, the statistic within 10-20% of its maximum from q 0.2 to 0.7). A
cut above the true median (seed 2 OS, 0.71: 172 of the 482 "low" subjects truly high-risk)
leaks benefit into the low group; a cut at the 0.10 floor (seeds 3, 4 OS) dilutes the high
group with true low-risk subjects. A generator with real latent risk groups (a step of log
HR 1.1) did not change this (cut quantiles 0.12-0.32 on two seeds), so the generator was kept.
The test asserts what the measurements support: the full criterion on RFS, the high-risk HR
below 1 on OS (seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiograph.signature.study import load_config, run_signature_study
from radiograph.stats import interaction_test
from radiograph.synth.signature_cohort import make_signature_cohort

CONFIG = Path(__file__).parents[2] / "experiments" / "configs" / "signature_benefit.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("signature")
    make_signature_cohort(root / "cohort", 0)
    config = load_config(
        CONFIG,
        manifest=root / "cohort" / "manifest.csv",
        features_dir=root / "cohort",
        out=root / "out",
        n_boot=20,
        risk_maps=1,
    )
    return run_signature_study(config), root / "out"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_planted_treatment_benefit_is_recovered_in_the_high_risk_group_only(study) -> None:
    result, _ = study
    by = result.tables["rfs"]["treatment_by_group"]
    by = by[by["set"] == "all"].set_index("group")
    assert by.loc["high", "hazard_ratio"] < 1 and by.loc["high", "p_value"] < 0.05
    assert by.loc["low", "ci_low"] < 1 < by.loc["low", "ci_high"]
    by = result.tables["os"]["treatment_by_group"]
    assert by[(by["set"] == "all") & (by["group"] == "high")]["hazard_ratio"].item() < 1


def test_generator_plants_the_interaction_in_its_true_groups(study) -> None:
    """Seeds 0-5 measured: true-high HR 0.41-0.65 (p <= 0.002), true-low interval covers 1
    on 12/12 endpoint-seeds (HR 0.76-1.38)."""
    _, out = study
    truth = pd.read_csv(out.parent / "cohort" / "ground_truth.csv")
    truth["true_group"] = np.where(truth["high_true"] == 1, "high", "low")
    for endpoint in ("os", "rfs"):
        res = interaction_test(
            truth,
            f"{endpoint}_time",
            f"{endpoint}_event",
            "chemo",
            "true_group",
            group_reference="low",
        )
        by = res.by_group.set_index("group")
        assert by.loc["high", "hazard_ratio"] < 1 and by.loc["high", "p_value"] < 0.05
        assert by.loc["low", "ci_low"] < 1 < by.loc["low", "ci_high"]


def test_both_endpoints_are_reported_with_their_figures(study) -> None:
    result, out = study
    assert set(result.tables) == {"os", "rfs"}
    for endpoint in ("os", "rfs"):
        assert set(result.tables[endpoint]["concordance"]["cohort"]) == {
            "train",
            "internal",
            "external",
        }
        assert (out / endpoint / f"km_{endpoint}.png").is_file()
        assert (out / endpoint / "meta_analysis.csv").is_file()
    text = (out / "report.md").read_text()
    assert "observational, not randomised" in text
    assert len(list((out / "risk_maps").glob("*.npz"))) == 2
