"""Study designs beyond k-fold (seeds/000): a training centre split into training and internal
validation with other centres as external tests, leave-one-centre-out, and the modality
intersection on which fusion models are compared with unimodal ones.

Splits are patient-level (all rows of a patient fall on one side) and stratified by label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedShuffleSplit


@dataclass(frozen=True)
class CentreDesign:
    """``design: {train_centres: [A], internal_split: 0.3, external_centres: [B, C, D]}``."""

    train_centres: tuple[str, ...]
    internal_split: float
    external_centres: tuple[str, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.train_centres:
            raise ValueError("design.train_centres: name at least one centre")
        if not 0.0 < self.internal_split < 1.0:
            raise ValueError(
                f"design.internal_split: must lie in (0, 1), got {self.internal_split}"
            )
        both = set(self.train_centres) & set(self.external_centres)
        if both:
            raise ValueError(f"design: centre(s) {sorted(both)} are both training and external")

    def check(self, centres: Sequence[str], source: str) -> None:
        """Every named centre occurs in the cohort table ``source``."""
        present = set(centres)
        absent = [c for c in (*self.train_centres, *self.external_centres) if c not in present]
        if absent:
            raise ValueError(
                f"design: centre(s) {absent} named in the design are absent from "
                f"{source} (centres there: {sorted(present)})"
            )

    def assign(self, table: pd.DataFrame, *, source: str = "cohort table") -> pd.Series:
        """``cohort`` per row: ``train``, ``internal`` or ``external``; rows of other centres
        get ``unused``. Needs columns ``patient_id``, ``centre``, ``label``."""
        self.check(table["centre"].astype(str), source)
        cohort = pd.Series("unused", index=table.index)
        cohort[table["centre"].astype(str).isin(self.external_centres)] = "external"
        home = table[table["centre"].astype(str).isin(self.train_centres)]
        patients = home.groupby("patient_id")["label"].max()
        split = StratifiedShuffleSplit(1, test_size=self.internal_split, random_state=self.seed)
        _, internal = next(split.split(np.zeros(len(patients)), patients.to_numpy()))
        internal_ids = set(patients.index[internal])
        cohort[home.index] = np.where(home["patient_id"].isin(internal_ids), "internal", "train")
        return cohort


def leave_one_centre_out(centres: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out centre, train indices, test indices) for each centre, sorted by name."""
    centres = np.asarray(centres).astype(str)
    if len(set(centres)) < 2:
        raise ValueError("centres: leave-one-centre-out needs >= 2 centres")
    return [
        (c, np.flatnonzero(centres != c), np.flatnonzero(centres == c))
        for c in sorted(set(centres))
    ]


def intersection(available: pd.DataFrame, modalities: Sequence[str]) -> tuple[np.ndarray, int]:
    """Rows with every modality in ``modalities`` (bool columns of ``available``) and how many
    rows are excluded (reported beside every intersection comparison)."""
    missing = [m for m in modalities if m not in available.columns]
    if missing:
        raise ValueError(f"modalities: {missing} not among {list(available.columns)}")
    keep = available[list(modalities)].all(axis=1).to_numpy()
    return keep, int((~keep).sum())
