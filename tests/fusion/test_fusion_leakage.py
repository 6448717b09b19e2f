"""No leakage in the habitat-fusion study: permuting the labels of the internal and external
subjects changes no fitted step (selected features per fold, classifier choice, clinical odds
ratios, thresholds) and no probability of any model, stacking meta-model and MHA fusion
included."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from radiograph.fusion import study

from .conftest import small_config


def test_permuted_test_labels_change_nothing_fitted(fusion_cohort, tmp_path):
    config = small_config(fusion_cohort, tmp_path, stacking=("CH", "CHP"))
    cohort = study.read_cohort(config)
    assignment = study.designs(config, cohort.table)[study.MAIN_DESIGN]
    held = assignment.index[assignment.isin(["internal", "external"])]
    permuted = cohort.table.copy()
    permuted.loc[held, "label"] = np.random.default_rng(1).permutation(
        permuted.loc[held, "label"].to_numpy()
    )
    assert (permuted.loc[held, "label"] != cohort.table.loc[held, "label"]).sum() > 20

    a = study.run_design(config, cohort, assignment, tmp_path / "a")
    b = study.run_design(
        config, dataclasses.replace(cohort, table=permuted), assignment, tmp_path / "b"
    )
    for name in ("selected", "thresholds", "classifier_cv", "clinical_or", "habitat_absent"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert a.habitat_k == b.habitat_k
    pd.testing.assert_frame_equal(
        a.predictions.drop(columns="label"), b.predictions.drop(columns="label")
    )
    assert not a.predictions["label"].equals(b.predictions["label"])
