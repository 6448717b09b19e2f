"""Clinical data as a typed modality: declared variables, encoders fitted on training rows only,
and the univariable-then-multivariable logistic clinical model (seeds/000, Table 1).

Each variable is declared in the study config (:class:`ClinicalVariable`):

- ``continuous``: a number; a blank cell is missing.
- ``ordinal``: one of ``levels`` in their clinical order (e.g. FIGO I < II < III < IV),
  encoded as its rank 0..L-1; a blank cell is missing.
- ``categorical``: one of ``levels``; a blank cell becomes the explicit level
  :data:`UNKNOWN`; one-hot against ``reference`` (no column for the reference level).

A cell outside the declared levels is an error (:func:`check_clinical`) naming the file, the
subject and the column, raised before any model is fitted. :class:`ClinicalEncoder` learns from
the training rows only: the one-hot columns (levels seen in training, reference dropped), the
medians that fill missing continuous/ordinal values, and which variables get a 0/1 missing
mask (those with a missing value in training). Applied to other cohorts it never refits.

The clinical model (:func:`fit_clinical_model`) keeps the variables with a univariable
likelihood-ratio p < ``p_enter`` and fits a multivariable logistic model on them
(:func:`radiograph.stats.univariable_then_multivariable`, ``model="logistic"``); its odds
ratios carry Wald intervals. Predictions use that model's coefficients
(``P = 1 / (1 + exp(-(b0 + x b)))``) on the training-fitted encoding.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from radiograph.stats.regression import SelectionResult, univariable_then_multivariable

UNKNOWN = "Unknown"
KINDS = ("continuous", "ordinal", "categorical")
Kind = Literal["continuous", "ordinal", "categorical"]


@dataclass(frozen=True)
class ClinicalVariable:
    """One declared clinical column.

    Attributes:
        name: column of the clinical table.
        kind: ``continuous``, ``ordinal`` or ``categorical``.
        levels: allowed values (ordinal: in order; categorical: any order; empty for
            continuous). :data:`UNKNOWN` is always allowed for a categorical variable.
        reference: reference level of a categorical variable (default: its first level).
    """

    name: str
    kind: Kind
    levels: tuple[str, ...] = ()
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"clinical variable {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}"
            )
        object.__setattr__(self, "levels", tuple(str(v) for v in self.levels))
        if self.kind == "continuous" and self.levels:
            raise ValueError(
                f"clinical variable {self.name!r}: a continuous variable has no levels"
            )
        if self.kind != "continuous" and len(self.levels) < 2:
            raise ValueError(
                f"clinical variable {self.name!r}: a {self.kind} variable needs "
                f">= 2 levels, got {list(self.levels)}"
            )
        if self.kind == "categorical":
            reference = self.levels[0] if self.reference is None else str(self.reference)
            if reference not in self.levels:
                raise ValueError(
                    f"clinical variable {self.name!r}: reference {reference!r} is "
                    f"not one of its levels {list(self.levels)}"
                )
            object.__setattr__(self, "reference", reference)
        elif self.reference is not None:
            raise ValueError(
                f"clinical variable {self.name!r}: only a categorical variable "
                "has a reference level"
            )

    @classmethod
    def from_dict(cls, data: Mapping) -> ClinicalVariable:
        """From a config mapping ``{name, kind, levels?, reference?}``."""
        unknown = set(data) - {"name", "kind", "levels", "reference"}
        if unknown or "name" not in data or "kind" not in data:
            raise ValueError(
                f"clinical variable {dict(data)}: needs 'name' and 'kind' (and "
                f"optionally 'levels', 'reference'); unknown keys {sorted(unknown)}"
            )
        return cls(
            str(data["name"]), data["kind"], tuple(data.get("levels", ())), data.get("reference")
        )


def _missing(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def check_clinical(
    table: pd.DataFrame,
    variables: Sequence[ClinicalVariable],
    *,
    id_column: str = "subject_id",
    source: str | os.PathLike = "clinical table",
) -> None:
    """Every declared column exists and every cell is valid; one error lists every problem.

    Raises:
        ValueError: ``"<source>: subject <id>, column <name>: ..."`` for each bad cell (an
            unlisted category, a non-numeric continuous value), or a missing column.
    """
    problems = []
    if id_column not in table.columns:
        raise ValueError(f"{source}: no {id_column!r} column")
    for var in variables:
        if var.name not in table.columns:
            problems.append(f"{source}: column {var.name!r} declared in the config is absent")
            continue
        values = table[var.name]
        present = ~_missing(values)
        for sid, value in zip(table.loc[present, id_column], values[present]):
            if var.kind == "continuous":
                try:
                    ok = math.isfinite(float(value))
                except (TypeError, ValueError):
                    ok = False
                why = "is not a finite number"
            else:
                allowed = var.levels + ((UNKNOWN,) if var.kind == "categorical" else ())
                ok = str(value).strip() in allowed
                why = f"is not a listed level {list(allowed)}"
            if not ok:
                problems.append(
                    f"{source}: subject {sid}, column {var.name!r}: value {value!r} {why}"
                )
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise ValueError("invalid clinical table:\n  " + "\n  ".join(shown))


@dataclass
class ClinicalEncoder:
    """Numeric encoding of the declared variables, fitted on training rows (module docstring).

    Attributes (after :meth:`fit`):
        columns_: names of the encoded columns, in order.
        medians_: continuous/ordinal variable -> training median used for missing cells.
        masked_: variables that get a ``<name>__missing`` 0/1 column.
        onehot_: categorical variable -> non-reference levels seen in training.
    """

    variables: Sequence[ClinicalVariable]
    medians_: dict[str, float] = field(default_factory=dict, init=False)
    masked_: tuple[str, ...] = field(default=(), init=False)
    onehot_: dict[str, tuple[str, ...]] = field(default_factory=dict, init=False)
    columns_: tuple[str, ...] = field(default=(), init=False)

    def _raw(self, table: pd.DataFrame, var: ClinicalVariable) -> pd.Series:
        values = table[var.name]
        missing = _missing(values)
        if var.kind == "continuous":
            return pd.to_numeric(values.where(~missing), errors="raise").astype(np.float64)
        if var.kind == "ordinal":
            rank = {level: float(i) for i, level in enumerate(var.levels)}
            return (
                values.where(~missing)
                .map(lambda v: rank[str(v).strip()] if pd.notna(v) else np.nan)
                .astype(np.float64)
            )
        return values.where(~missing, UNKNOWN).map(lambda v: str(v).strip())

    def fit(self, table: pd.DataFrame) -> ClinicalEncoder:
        """Learn encodings from the training rows ``table``."""
        medians, masked, onehot, columns = {}, [], {}, []
        for var in self.variables:
            raw = self._raw(table, var)
            if var.kind == "categorical":
                seen = tuple(
                    lv for lv in (*var.levels, UNKNOWN) if lv != var.reference and (raw == lv).any()
                )
                onehot[var.name] = seen
                columns += [f"{var.name}[{lv}]" for lv in seen]
                continue
            if raw.isna().all():
                raise ValueError(f"column {var.name!r}: no training value to fit on")
            medians[var.name] = float(raw.median())
            columns.append(var.name)
            if raw.isna().any():
                masked.append(var.name)
                columns.append(f"{var.name}__missing")
        self.medians_, self.masked_, self.onehot_ = medians, tuple(masked), onehot
        self.columns_ = tuple(columns)
        return self

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """(n, len(columns_)) float64 encoded table, index of ``table``."""
        if not self.columns_:
            raise ValueError("ClinicalEncoder: call fit before transform")
        out: dict[str, pd.Series] = {}
        for var in self.variables:
            raw = self._raw(table, var)
            if var.kind == "categorical":
                for level in self.onehot_[var.name]:
                    out[f"{var.name}[{level}]"] = (raw == level).astype(np.float64)
                continue
            out[var.name] = raw.fillna(self.medians_[var.name])
            if var.name in self.masked_:
                out[f"{var.name}__missing"] = raw.isna().astype(np.float64)
        return pd.DataFrame(out, index=table.index)[list(self.columns_)]

    def prepared(self, table: pd.DataFrame) -> pd.DataFrame:
        """One column per variable for regression tables: numbers (missing filled with the
        training median) for continuous/ordinal, level strings (blank -> Unknown) for
        categorical."""
        out = {}
        for var in self.variables:
            raw = self._raw(table, var)
            out[var.name] = (
                raw if var.kind == "categorical" else raw.fillna(self.medians_[var.name])
            )
        return pd.DataFrame(out, index=table.index)


@dataclass
class ClinicalModel:
    """The Clinic model of seeds/000: univariable screening, multivariable logistic model.

    Attributes:
        selection: the :class:`~radiograph.stats.regression.SelectionResult` (univariable
            table with likelihood-ratio p, kept variables, multivariable odds ratios).
        encoder: the training-fitted encoder.
    """

    selection: SelectionResult
    encoder: ClinicalEncoder

    @property
    def kept(self) -> tuple[str, ...]:
        return self.selection.kept

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        """(n,) P(label = 1) from the multivariable model; the training prevalence when no
        variable was kept."""
        fit = self.selection.multivariable
        if fit is None:
            raise ValueError("the clinical model kept no variable: " + self.selection.reason)
        coef = dict(zip(fit.table["term"], fit.table["coef"]))
        frame = self.encoder.prepared(table)
        eta = np.full(len(frame), coef.pop("(Intercept)"), dtype=np.float64)
        for term, b in coef.items():
            if "[" in term:
                name, level = term[:-1].split("[", 1)
                eta += b * (frame[name] == level).to_numpy(np.float64)
            else:
                eta += b * frame[term].to_numpy(np.float64)
        return 1.0 / (1.0 + np.exp(-eta))


def fit_clinical_model(
    table: pd.DataFrame,
    label: Sequence[int],
    variables: Sequence[ClinicalVariable],
    *,
    p_enter: float = 0.05,
    level: float = 0.95,
) -> ClinicalModel:
    """Fit the encoder and the univariable-then-multivariable logistic model on training rows.

    Args:
        table: training rows with the declared columns.
        label: (n,) 0/1 outcome of those rows.
        variables: the declared variables (all are screened).
        p_enter: univariable likelihood-ratio threshold (seeds/000: 0.05).
        level: confidence level of the odds-ratio intervals.
    """
    y = np.asarray(label)
    if y.shape != (len(table),):
        raise ValueError(f"label: shape {y.shape} for {len(table)} rows")
    encoder = ClinicalEncoder(variables).fit(table)
    frame = encoder.prepared(table).assign(_label=y.astype(int))
    categorical = {v.name: v.reference for v in variables if v.kind == "categorical"}
    selection = univariable_then_multivariable(
        frame,
        [v.name for v in variables],
        model="logistic",
        outcome="_label",
        categorical=categorical,
        p_enter=p_enter,
        level=level,
    )
    return ClinicalModel(selection, encoder)
