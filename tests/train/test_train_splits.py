"""Outer splits: patient-level, stratified, every subject tested once, written once and reused."""

from __future__ import annotations

import numpy as np
import pytest

from radiograph.io.atomic import read_json
from radiograph.train.splits import (
    SplitsError,
    check_splits,
    load_or_create_splits,
    make_splits,
)


def _cohort(n_patients: int = 60, seed: int = 0):
    """Patients with 1-3 subjects each; the event is per patient, 30% events."""
    rng = np.random.default_rng(seed)
    subjects, patients, events = [], [], []
    for p in range(n_patients):
        event = int(rng.uniform() < 0.3)
        for k in range(int(rng.integers(1, 4))):
            subjects.append(f"P{p:03d}-{k}")
            patients.append(f"P{p:03d}")
            events.append(event)
    return subjects, patients, events


def test_no_patient_in_two_folds_and_every_subject_tested_once():
    subjects, patients, events = _cohort()
    folds = make_splits(subjects, patients, events, n_folds=5, seed=3)
    assert len(folds) == 5
    tested = [s for fold in folds for s in fold["test"]]
    assert sorted(tested) == sorted(subjects)
    patient_of = dict(zip(subjects, patients))
    fold_of_patient: dict[str, set[int]] = {}
    for k, fold in enumerate(folds):
        assert set(fold["train"]).isdisjoint(fold["test"])
        assert set(fold["train"]) | set(fold["test"]) == set(subjects)
        for s in fold["test"]:
            fold_of_patient.setdefault(patient_of[s], set()).add(k)
        train_patients = {patient_of[s] for s in fold["train"]}
        test_patients = {patient_of[s] for s in fold["test"]}
        assert train_patients.isdisjoint(test_patients)
    assert all(len(ks) == 1 for ks in fold_of_patient.values())
    check_splits(folds, patient_of)


def test_folds_are_stratified_by_event():
    subjects, patients, events = _cohort(n_patients=200)
    event_of = dict(zip(subjects, events))
    overall = np.mean(events)
    for fold in make_splits(subjects, patients, events, n_folds=5, seed=0):
        rate = np.mean([event_of[s] for s in fold["test"]])
        assert abs(rate - overall) < 0.05
        assert 0.15 < len(fold["test"]) / len(subjects) < 0.25


def test_seed_decides_the_splits():
    subjects, patients, events = _cohort()
    assert make_splits(subjects, patients, events, 5, seed=1) == make_splits(
        subjects, patients, events, 5, seed=1
    )
    assert make_splits(subjects, patients, events, 5, seed=1) != make_splits(
        subjects, patients, events, 5, seed=2
    )


def test_written_once_and_reused(tmp_path):
    subjects, patients, events = _cohort()
    path = tmp_path / "splits.json"
    first = load_or_create_splits(path, subjects, patients, events, n_folds=5, seed=0)
    stamp = path.stat().st_mtime_ns
    # Another model with another seed reuses the file as it is.
    again = load_or_create_splits(path, subjects, patients, events, n_folds=5, seed=99)
    assert again == first
    assert path.stat().st_mtime_ns == stamp
    stored = read_json(path)
    assert stored["n_folds"] == 5 and stored["seed"] == 0
    assert stored["subjects"] == dict(zip(subjects, patients))


def test_changed_cohort_or_fold_count_is_an_error(tmp_path):
    subjects, patients, events = _cohort()
    path = tmp_path / "splits.json"
    load_or_create_splits(path, subjects, patients, events, n_folds=5)
    with pytest.raises(SplitsError, match="another cohort"):
        load_or_create_splits(path, subjects[:-1], patients[:-1], events[:-1], n_folds=5)
    moved = list(patients)
    moved[0] = "P999"
    with pytest.raises(SplitsError, match="another cohort"):
        load_or_create_splits(path, subjects, moved, events, n_folds=5)
    with pytest.raises(SplitsError, match="made for 5 folds"):
        load_or_create_splits(path, subjects, patients, events, n_folds=4)


def test_check_splits_catches_a_patient_in_two_test_folds():
    folds = [{"train": ["b", "c"], "test": ["a"]}, {"train": ["a"], "test": ["b", "c"]}]
    check_splits(folds, {"a": "p1", "b": "p2", "c": "p2"})
    with pytest.raises(SplitsError, match="patient 'p1'"):
        check_splits(folds, {"a": "p1", "b": "p1", "c": "p2"})


def test_bad_input():
    with pytest.raises(ValueError, match="duplicate subject ids"):
        make_splits(["a", "a", "b"], ["1", "2", "3"], [0, 1, 0], n_folds=2)
    with pytest.raises(ValueError, match="n_folds"):
        make_splits(["a", "b"], ["1", "1"], [0, 1], n_folds=2)
