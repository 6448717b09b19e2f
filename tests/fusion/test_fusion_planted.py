"""Planted recovery in the habitat-fusion study: the true number of habitats, the planted
clinical and habitat features selected in most outer folds.

Run on the leave-one-centre-out design holding out centre D (training on centres A-C, about
250 of the 300 patients): the paper's design trains on centre A's 7:3 split (about 90
patients here), where the univariable clinical screening has too little power at this size
(FIGO selected in 2/3, 0/3, 3/3 folds and PARPi in 0/3, 0/3, 1/3 for seeds 0, 1, 2)."""

from __future__ import annotations

import numpy as np

from radiograph.fusion import study
from radiograph.io.atomic import read_json

from .conftest import small_config


def test_true_k_and_planted_features_selected(fusion_cohort, tmp_path):
    """Measured with this config on seeds 0, 1, 2 (300 patients): k = 4 each time; FIGO in
    3/3 folds each time; the planted habitat's best feature (share, ADC mean or volume) in
    2/3, 3/3, 2/3 folds. PARPi, the protective variable, was selected in 1/3, 2/3, 0/3 folds:
    its realised marginal effect at this size is weak (seed 0, all 300 patients: OR 0.59,
    p = 0.034), so it is not asserted."""
    config = small_config(fusion_cohort, tmp_path, leave_one_centre_out=True)
    cohort = study.read_cohort(config)
    result = study.run_design(
        config, cohort, study.designs(config, cohort.table)["loco_D"], tmp_path / "loco_D"
    )
    assert result.habitat_k == 4
    centres = np.asarray(read_json(tmp_path / "loco_D" / "habitat_model.json")["centres"])
    planted = int(np.argmax(centres[:, 2] - centres[:, 3])) + 1  # high DWI, low ADC
    folds = result.selected[result.selected["fold"].astype(str) != "final"]
    share = folds.groupby(["modality", "feature"]).size() / config.outer_folds
    assert share.get(("clinic", "figo"), 0) > 0.5
    assert (
        max(
            share.get(("habitat", f"h{planted}_{name}"), 0)
            for name in ("fraction", "mean_ADC", "volume_mm3")
        )
        > 0.5
    )
