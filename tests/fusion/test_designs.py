"""Centre designs: patient-level stratified split, leave-one-centre-out, intersection counts,
and a centre named in the design but absent from the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radiograph.fusion.designs import CentreDesign, intersection, leave_one_centre_out


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "centre": np.where(np.arange(n) < 120, "A", np.where(np.arange(n) < 160, "B", "C")),
            "label": np.repeat(rng.integers(0, 2, n // 2), 2),
        }
    )


def test_split_is_patient_level_stratified_and_reproducible():
    table = _table()
    design = CentreDesign(("A",), 0.3, ("B", "C"), seed=1)
    cohort = design.assign(table)
    assert (cohort[table.centre != "A"] == "external").all()
    home = table[table.centre == "A"].assign(cohort=cohort)
    assert home.groupby("patient_id")["cohort"].nunique().max() == 1
    share = (home.drop_duplicates("patient_id")["cohort"] == "internal").mean()
    assert share == pytest.approx(0.3, abs=0.02)
    rates = home.groupby("cohort")["label"].mean()
    assert abs(rates["train"] - rates["internal"]) < 0.06
    pd.testing.assert_series_equal(cohort, design.assign(table))


def test_absent_centre_and_loco_and_intersection():
    with pytest.raises(
        ValueError,
        match=r"centre\(s\) \['E'\] named in the design are absent "
        "from cohort.csv",
    ):
        CentreDesign(("A",), 0.3, ("B", "E")).assign(_table(), source="cohort.csv")
    folds = leave_one_centre_out(_table().centre)
    assert [f[0] for f in folds] == ["A", "B", "C"]
    assert sum(len(test) for _, _, test in folds) == 200
    available = pd.DataFrame(
        {"C": [True] * 4, "H": [True, False, True, True], "P": [True, True, False, True]}
    )
    keep, excluded = intersection(available, ["C", "H", "P"])
    assert keep.tolist() == [True, False, False, True] and excluded == 2
