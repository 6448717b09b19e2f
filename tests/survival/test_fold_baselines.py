"""One path for the downstream models of a fold: a study's fold (``embeddings.npz`` and the
manifest, :func:`radiograph.study._fold_baselines`) and :func:`run_baselines` on the same
vectors give identical numbers, because both call :func:`fit_fold_baselines`; a model that
fails is recorded as NaN with a note, and the others are still scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.util import Surv

from radiograph.manifest import load_manifest
from radiograph.study import _fold_baselines
from radiograph.study_config import StudyConfig
from radiograph.survival import SURVIVAL_METRICS, fit_fold_baselines, run_baselines

SETTINGS = {
    "models": ("coxph", "rsf"),
    "screening": True,
    "screening_p": 0.3,
    "inner_folds": 2,
    "grids": {"coxph": {"alpha": [1.0, 100.0]}, "rsf": {"max_depth": [2, None]}},
    "model_params": {"rsf": {"n_estimators": 15, "min_samples_leaf": 3}},
}


def _cohort(n: int = 60, p: int = 6, seed: int = 0):
    """Exponential times with log-hazard on 2 of ``p`` features; two subjects per patient."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    event_time = rng.exponential(np.exp(-(x[:, 0] - 0.7 * x[:, 1])))
    censor_time = rng.exponential(2.0, size=n)
    event = event_time <= censor_time
    time = np.minimum(event_time, censor_time) + 1e-3
    ids = [f"S{i:03d}" for i in range(n)]
    patients = [f"P{i // 2:03d}" for i in range(n)]
    return x, Surv.from_arrays(event, time), ids, patients


def _study_fold(tmp_path, x, y, ids, patients, test):
    """A study's view of the fold: the manifest and ``fold_0/embeddings.npz``, rows shuffled."""
    pd.DataFrame(
        {
            "subject_id": ids,
            "patient_id": patients,
            "centre": "A",
            "time": y["time"],
            "time_unit": "days",
            "event": y["event"].astype(int),
        }
    ).to_csv(tmp_path / "manifest.csv", index=False)
    fold_dir = tmp_path / "fold_0"
    fold_dir.mkdir()
    np.savez(
        fold_dir / "embeddings.npz",
        subject_ids=np.array(ids),
        split=np.where(test, "test", "train"),
        x=x,
    )
    return load_manifest(tmp_path / "manifest.csv", check_files=False), fold_dir


@pytest.mark.parametrize("n_boot", [0, 20])
def test_a_study_fold_and_run_baselines_give_identical_numbers(tmp_path, n_boot):
    x, y, ids, patients = _cohort()
    test = np.zeros(len(ids), dtype=bool)
    test[np.random.default_rng(1).permutation(len(ids))[:20]] = True
    manifest, fold_dir = _study_fold(tmp_path, x, y, ids, patients, test)
    config = StudyConfig(
        out_dir=tmp_path, cohort={}, baselines=dict(SETTINGS), report={"n_boot": n_boot}
    )
    study, risks = _fold_baselines(config, manifest, fold_dir, seed=4)

    options = {k: v for k, v in SETTINGS.items() if k != "models"}
    table = run_baselines(
        x,
        y,
        [(np.flatnonzero(~test), np.flatnonzero(test))],
        names=SETTINGS["models"],
        seed=4,
        patient_ids=patients,
        n_boot=n_boot,
        **options,
    )
    assert list(table["fold"].unique()) == [0]
    pd.testing.assert_frame_equal(
        study.reset_index(drop=True),
        table.drop(columns="fold").reset_index(drop=True),
        check_exact=True,
    )
    expected_metrics = len(SURVIVAL_METRICS) * (3 if n_boot else 1)
    assert len(study) == 2 * expected_metrics and study["value"].notna().sum() > expected_metrics
    assert np.isfinite(study.loc[study["metric"] == "c_index", "value"]).all()
    assert sorted(risks["model"].unique()) == ["coxph", "rsf"]
    for _, rows in risks.groupby("model"):
        assert list(rows["subject_id"]) == ids and rows["risk"].nunique() > 1


def test_a_failing_model_gives_nan_and_a_note_and_the_others_are_scored():
    x, y, _, _ = _cohort(seed=3)
    is_test = np.arange(len(x)) >= 45
    result = fit_fold_baselines(
        x,
        y,
        is_test,
        names=("coxph", "fsvm"),
        inner_folds=2,
        grids={"fsvm": {"alpha": [1.0]}},
        model_params={"coxph": {"n_iter": -1}},
    )
    coxph = result.metrics[result.metrics["model"] == "coxph"]
    assert coxph["value"].isna().all() and list(coxph["metric"]) == list(SURVIVAL_METRICS)
    assert len(result.notes) == 1 and result.notes[0].startswith("coxph failed")
    fsvm = result.metrics[result.metrics["model"] == "fsvm"].set_index("metric")["value"]
    assert np.isfinite(fsvm["c_index"]) and set(result.risks) == {"fsvm"}
    assert result.risks["fsvm"].shape == (len(x),)


def test_bad_fold_inputs_are_named():
    x, y, _, _ = _cohort()
    with pytest.raises(ValueError, match="is_test"):
        fit_fold_baselines(x, y, np.zeros(len(x), dtype=bool))
    with pytest.raises(ValueError, match="must match"):
        fit_fold_baselines(x[:-1], y, np.arange(len(x)) > 40)
    with pytest.raises(ValueError, match="patient_ids"):
        fit_fold_baselines(x, y, np.arange(len(x)) > 40, patient_ids=["P"])
