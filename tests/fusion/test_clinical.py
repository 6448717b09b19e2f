"""Clinical table: typed encoding fitted on training rows, planted effects recovered by the
univariable-then-multivariable model, and bad cells named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from radiograph.fusion.clinical import (
    ClinicalEncoder,
    ClinicalVariable,
    check_clinical,
    fit_clinical_model,
)

VARIABLES = [
    ClinicalVariable("age", "continuous"),
    ClinicalVariable("figo", "ordinal", ("I", "II", "III", "IV")),
    ClinicalVariable("parpi", "categorical", ("no", "yes"), reference="no"),
    ClinicalVariable("noise", "categorical", ("a", "b", "c")),
]


def _table(seed: int, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Planted: FIGO rank harmful (+0.7 log-odds per stage), PARPi protective (-1.2)."""
    rng = np.random.default_rng(seed)
    figo = rng.integers(0, 4, n)
    parpi = rng.integers(0, 2, n)
    eta = -1.0 + 0.7 * (figo - 1.5) - 1.2 * parpi
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    table = pd.DataFrame(
        {
            "subject_id": [f"s{i}" for i in range(n)],
            "age": np.round(rng.normal(60, 10, n), 1).astype(object),
            "figo": np.array(["I", "II", "III", "IV"], dtype=object)[figo],
            "parpi": np.array(["no", "yes"], dtype=object)[parpi],
            "noise": rng.choice(["a", "b", "c"], n).astype(object),
        }
    )
    table.loc[rng.random(n) < 0.1, "age"] = ""
    table.loc[rng.random(n) < 0.1, "noise"] = ""
    return table, y


def test_planted_clinical_effects_kept_with_right_direction():
    """Over 5 seeds (n = 400) the model keeps figo and parpi every time (measured 5/5), the
    noise variables at most once, with OR(figo) > 1 and OR(parpi=yes) < 1."""
    noise_kept = 0
    for seed in range(5):
        table, y = _table(seed)
        model = fit_clinical_model(table, y, VARIABLES)
        assert {"figo", "parpi"} <= set(model.kept)
        noise_kept += len(set(model.kept) - {"figo", "parpi"})
        odds = model.selection.multivariable.table.set_index("term")["odds_ratio"]
        assert odds["figo"] > 1 and odds["parpi[yes]"] < 1
    assert noise_kept <= 2


def test_predictions_equal_statsmodels_refit_by_hand():
    table, y = _table(7)
    model = fit_clinical_model(table, y, VARIABLES)
    x = pd.DataFrame(
        {
            "figo": table["figo"].map({"I": 0, "II": 1, "III": 2, "IV": 3}),
            "parpi_yes": (table["parpi"] == "yes").astype(float),
        }
    )
    assert set(model.kept) == {"figo", "parpi"}
    ref = sm.Logit(y, sm.add_constant(x.astype(float))).fit(disp=0).predict()
    np.testing.assert_allclose(model.predict_proba(table), ref, rtol=1e-6, atol=1e-8)


def test_encoder_learns_from_training_rows_only():
    table, _ = _table(1)
    train, other = table.iloc[:200], table.iloc[200:].copy()
    enc = ClinicalEncoder(VARIABLES).fit(train)
    before = enc.transform(train)
    other["age"] = "999"
    other["noise"] = "c"
    enc2 = ClinicalEncoder(VARIABLES).fit(train)
    enc2.transform(other)
    pd.testing.assert_frame_equal(before, enc2.transform(train))
    median = pd.to_numeric(train["age"].where(train["age"] != "")).median()
    missing = train["age"] == ""
    assert (before.loc[missing, "age"] == median).all()
    assert (before.loc[missing, "age__missing"] == 1).all()
    assert "noise[Unknown]" in before.columns and "noise[a]" not in before.columns
    assert "parpi[no]" not in before.columns


def test_unlisted_category_names_file_subject_and_column():
    table, _ = _table(2, n=20)
    table.loc[4, "figo"] = "V"
    table.loc[6, "age"] = "old"
    with pytest.raises(ValueError) as err:
        check_clinical(table, VARIABLES, source="clinical.csv")
    text = str(err.value)
    assert "clinical.csv: subject s4, column 'figo': value 'V'" in text
    assert "subject s6, column 'age'" in text
    with pytest.raises(ValueError, match="reference 'z' is not one of its levels"):
        ClinicalVariable("x", "categorical", ("a", "b"), reference="z")
