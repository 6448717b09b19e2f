"""A small synthetic habitat-fusion cohort and a fast study config shared by the study tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiograph.fusion.clinical import ClinicalVariable
from radiograph.fusion.config import FusionStudyConfig, HabitatSettings, SelectionSettings
from radiograph.fusion.designs import CentreDesign
from radiograph.fusion.mha import MHAConfig
from radiograph.synth.fusion_cohort import make_fusion_cohort

CLINICAL = (
    ClinicalVariable("age", "continuous"),
    ClinicalVariable("figo", "ordinal", ("I", "II", "III", "IV")),
    ClinicalVariable("parpi", "categorical", ("no", "yes"), "no"),
    ClinicalVariable("ca125", "continuous"),
    ClinicalVariable("menopause", "categorical", ("no", "yes"), "no"),
)


def small_config(cohort: Path, out: Path, **changes) -> FusionStudyConfig:
    """Tiny sizes: one classifier, 3 folds, 60 MHA epochs, no pyradiomics."""
    settings = dict(
        cohort=cohort,
        out_dir=out,
        clinical=CLINICAL,
        design=CentreDesign(("A",), 0.3, ("B", "C", "D")),
        leave_one_centre_out=False,
        habitat=HabitatSettings(voxels_per_subject=300, n_init=2, radiomics=False),
        selection=SelectionSettings(k=10),
        classifiers=("logistic",),
        outer_folds=3,
        inner_folds=3,
        mha=MHAConfig(d_model=16, heads=2, epochs=60),
        n_boot=0,
    )
    return FusionStudyConfig(**(settings | changes))


@pytest.fixture(scope="session")
def fusion_cohort(tmp_path_factory) -> Path:
    """cohort.csv of 300 patients, 12^3 volumes, 30 patches per slide (seed 0)."""
    return make_fusion_cohort(
        tmp_path_factory.mktemp("fusion_cohort"), seed=0, patients=300, size=12, patches=30
    )
