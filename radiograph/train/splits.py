"""Outer cross-validation splits: patient-level, stratified, written once and reused.

Every model and baseline of a study reads the same ``splits.json``, so their test folds hold
the same subjects. Subjects of one patient always fall in the same fold (no patient is both
trained and tested on), and the folds are stratified by a label (the event indicator for
survival, the class for classification) with scikit-learn's ``StratifiedGroupKFold``.

File format::

    {"n_folds": 5, "seed": 0,
     "subjects": {"S000": "P000", ...},          # subject -> patient, to detect a changed cohort
     "folds": [{"train": [...], "test": [...]}, ...]}
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from radiograph.io.atomic import read_json, write_json


class SplitsError(ValueError):
    """The splits file does not match the cohort."""


def make_splits(
    subject_ids: Sequence[str],
    patient_ids: Sequence[str],
    strata: Sequence[object],
    n_folds: int = 5,
    seed: int = 0,
) -> list[dict[str, list[str]]]:
    """Patient-grouped, stratified K-fold splits of the subjects.

    Args:
        subject_ids: (n,) unique subject ids.
        patient_ids: (n,) patient of each subject; a patient's subjects share a fold.
        strata: (n,) label to balance across folds (event 0/1, or class).
        n_folds: number of folds K (>= 2, <= number of patients).
        seed: shuffling seed (``StratifiedGroupKFold(shuffle=True, random_state=seed)``).

    Returns:
        K dicts ``{"train": [...], "test": [...]}`` of subject ids (each in input order); every
        subject is in exactly one test fold.

    Raises:
        ValueError: mismatched lengths, duplicate subject ids, or fewer patients than folds.
    """
    subject_ids = [str(s) for s in subject_ids]
    patient_ids = [str(p) for p in patient_ids]
    strata = [str(s) for s in strata]
    if not len(subject_ids) == len(patient_ids) == len(strata):
        raise ValueError(
            f"subject_ids, patient_ids and strata differ in length: {len(subject_ids)}, "
            f"{len(patient_ids)}, {len(strata)}"
        )
    duplicates = sorted(s for s, count in Counter(subject_ids).items() if count > 1)
    if duplicates:
        raise ValueError(f"duplicate subject ids: {duplicates[:5]}")
    n_patients = len(set(patient_ids))
    if n_folds < 2 or n_folds > n_patients:
        raise ValueError(f"n_folds must lie in [2, {n_patients}] (the patients), got {n_folds}")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    ids = np.array(subject_ids, dtype=object)
    for train, test in splitter.split(np.zeros(len(ids)), strata, groups=patient_ids):
        folds.append({"train": ids[np.sort(train)].tolist(), "test": ids[np.sort(test)].tolist()})
    return folds


def check_splits(
    folds: Sequence[dict[str, Sequence[str]]], subject_to_patient: dict[str, str]
) -> None:
    """Check that folds partition the subjects and keep each patient in one test fold.

    Raises:
        SplitsError: a subject missing, tested twice, in both train and test of a fold, or a
            patient in two test folds.
    """
    tested: dict[str, int] = {}
    patient_fold: dict[str, int] = {}
    for k, fold in enumerate(folds):
        overlap = set(fold["train"]) & set(fold["test"])
        if overlap:
            raise SplitsError(f"fold {k}: subjects in both train and test: {sorted(overlap)[:5]}")
        if set(fold["train"]) | set(fold["test"]) != set(subject_to_patient):
            raise SplitsError(f"fold {k}: train + test is not the cohort's subject set")
        for sid in fold["test"]:
            if sid in tested:
                raise SplitsError(f"subject {sid!r} is tested in folds {tested[sid]} and {k}")
            tested[sid] = k
            patient = subject_to_patient[sid]
            if patient_fold.setdefault(patient, k) != k:
                raise SplitsError(
                    f"patient {patient!r} is tested in folds {patient_fold[patient]} and {k}"
                )
    untested = set(subject_to_patient) - set(tested)
    if untested:
        raise SplitsError(f"subjects never tested: {sorted(untested)[:5]}")


def load_or_create_splits(
    path: str | os.PathLike,
    subject_ids: Sequence[str],
    patient_ids: Sequence[str],
    strata: Sequence[object],
    n_folds: int = 5,
    seed: int = 0,
) -> list[dict[str, list[str]]]:
    """Read the splits file at ``path``, or make the splits and write it (atomically) once.

    Args:
        path: the ``splits.json`` shared by every model of a study.
        subject_ids, patient_ids, strata, n_folds, seed: as in :func:`make_splits` (used only
            when the file does not exist yet, and to check an existing file).

    Returns:
        The folds, as in :func:`make_splits`.

    Raises:
        SplitsError: the existing file was made for another cohort (different subjects or
            patients) or another number of folds; the message names the file.
    """
    path = Path(path)
    subject_to_patient = {str(s): str(p) for s, p in zip(subject_ids, patient_ids)}
    if path.exists():
        stored = read_json(path)
        if stored.get("n_folds") != n_folds:
            raise SplitsError(
                f"{path}: made for {stored.get('n_folds')} folds, the config asks for {n_folds}; "
                "use another splits path or the same number of folds"
            )
        if stored.get("subjects") != subject_to_patient:
            old, new = set(stored.get("subjects", {})), set(subject_to_patient)
            raise SplitsError(
                f"{path}: made for another cohort (subjects only in the file: "
                f"{sorted(old - new)[:5]}, only in the manifest: {sorted(new - old)[:5]}, or "
                "patient ids changed); use another splits path"
            )
        folds = stored["folds"]
        try:
            check_splits(folds, subject_to_patient)
        except SplitsError as err:
            raise SplitsError(f"{path}: {err}") from err
        return folds
    folds = make_splits(subject_ids, patient_ids, strata, n_folds, seed)
    write_json(
        path, {"n_folds": n_folds, "seed": seed, "subjects": subject_to_patient, "folds": folds}
    )
    return folds
