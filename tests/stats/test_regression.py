"""Regression tables against R (survival::coxph, glm) and their properties.

References: tests/stats/reference/regression_reference.json, written by
``Rscript tests/stats/reference/regression_reference.R`` (survival::lung, survival::colon,
pROC::aSAH; the script says which rows are dropped). Deterministic fits are compared at 1e-6:
ratios, intervals, standard errors and statistics relative, p-values absolute (and relative
for the tiny ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radiograph.stats.regression import (
    RegressionResult,
    cox_regression,
    interaction_test,
    logistic_regression,
    univariable_then_multivariable,
)

REFERENCE = Path(__file__).parent / "reference" / "regression_reference.json"
TOL = 1e-6

LUNG_COVARIATES = ["age", "sex", "ph.ecog", "wt.loss"]
LUNG_CATEGORICAL = {"sex": 1, "ph.ecog": 0}
# R's term names (factor columns sex_f, ecog_f) -> ours.
R_TERMS = {
    "sex_f2": "sex[2]",
    "ecog_f1": "ph.ecog[1]",
    "ecog_f2": "ph.ecog[2]",
    "gender_fFemale": "gender[Female]",
    "wfns_f2": "wfns[2]",
    "wfns_f3": "wfns[3]",
    "wfns_f4": "wfns[4]",
    "wfns_f5": "wfns[5]",
}
ASAH_COVARIATES = ["age", "gender", "s100b", "wfns"]
ASAH_CATEGORICAL = {"gender": "Male", "wfns": 1}


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def lung(ref) -> pd.DataFrame:
    return pd.DataFrame(ref["lung"]["data"])


@pytest.fixture(scope="module")
def colon(ref) -> pd.DataFrame:
    return pd.DataFrame(ref["colon"]["data"])


@pytest.fixture(scope="module")
def asah(ref) -> pd.DataFrame:
    return pd.DataFrame(ref["asah"]["data"])


@pytest.fixture(scope="module")
def lung_fit(lung) -> RegressionResult:
    return cox_regression(lung, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL)


def assert_p_close(actual, expected) -> None:
    """p-values: absolute 1e-6, and relative 1e-6 for those below 1e-3."""
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL)
    small = expected < 1e-3
    np.testing.assert_allclose(actual[small], expected[small], rtol=TOL)


def assert_table_matches(table: pd.DataFrame, expected: dict, ratio: str) -> None:
    assert list(table["term"]) == [R_TERMS.get(t, t) for t in expected["term"]]
    for column in ("coef", "se", ratio, "ci_low", "ci_high", "z"):
        np.testing.assert_allclose(table[column], expected[column], rtol=TOL, err_msg=column)
    assert_p_close(table["p_value"], expected["p_value"])


def assert_fit_matches(fit: RegressionResult, expected: dict, ratio: str) -> None:
    assert_table_matches(fit.table, expected["table"], ratio)
    assert (fit.n, fit.n_events, fit.lr_df) == (
        expected["n"],
        expected["n_events"],
        expected["lr_df"],
    )
    for name in ("log_likelihood", "null_log_likelihood", "lr_statistic"):
        np.testing.assert_allclose(getattr(fit, name), expected[name], rtol=TOL, err_msg=name)
    assert_p_close([fit.lr_p], [expected["lr_p"]])


# ---- against R -------------------------------------------------------------------------------


def test_cox_matches_r_coxph_efron(lung_fit, ref):
    expected = ref["lung"]["cox"]
    assert_fit_matches(lung_fit, expected, "hazard_ratio")
    np.testing.assert_allclose(lung_fit.concordance, expected["concordance"], rtol=TOL)
    assert lung_fit.method == "cox-efron (lifelines)" and np.isnan(lung_fit.auc)


def test_stratified_cox_matches_r_strata(lung, ref):
    fit = cox_regression(
        lung, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL, strata=["inst"]
    )
    expected = ref["lung"]["stratified"]
    assert_fit_matches(fit, expected, "hazard_ratio")
    np.testing.assert_allclose(fit.concordance, expected["concordance"], rtol=TOL)
    # The stratified null model is not the unstratified one (lifelines' own LR test uses that).
    assert abs(fit.null_log_likelihood - ref["lung"]["cox"]["null_log_likelihood"]) > 100


def test_logistic_matches_r_glm_wald(asah, ref):
    fit = logistic_regression(asah, "poor", ASAH_COVARIATES, categorical=ASAH_CATEGORICAL)
    expected = ref["asah"]["logistic"]
    assert_fit_matches(fit, expected, "odds_ratio")
    np.testing.assert_allclose(fit.auc, expected["auc"], rtol=TOL)
    assert np.isnan(fit.concordance)


@pytest.mark.parametrize("dataset", ["lung", "asah"])
def test_univariable_then_multivariable_matches_r(dataset, ref, lung, asah):
    expected = ref[dataset]
    if dataset == "lung":
        result = univariable_then_multivariable(
            lung,
            LUNG_COVARIATES,
            model="cox",
            duration="time",
            event="event",
            categorical=LUNG_CATEGORICAL,
        )
        ratio = "hazard_ratio"
    else:
        result = univariable_then_multivariable(
            asah, ASAH_COVARIATES, model="logistic", outcome="poor", categorical=ASAH_CATEGORICAL
        )
        ratio = "odds_ratio"
    for covariate, uni in expected["univariable"].items():
        rows = result.univariable[result.univariable["covariate"] == covariate]
        # R's one-term fits come back unboxed (scalars) from the JSON.
        uni = {key: np.atleast_1d(value) for key, value in uni.items() if key != "lr_p"}
        keep = uni["term"] != "(Intercept)"
        uni = {key: list(value[keep]) for key, value in uni.items()}
        assert_table_matches(rows, uni, ratio)
        assert_p_close(rows["lr_p"], [expected["univariable"][covariate]["lr_p"]] * len(rows))
    assert result.kept == tuple(np.atleast_1d(expected["kept"]))
    assert result.reason == "" and result.criterion == "likelihood-ratio"
    assert_fit_matches(result.multivariable, expected["multivariable"], ratio)


@pytest.mark.parametrize("analysis", ["unadjusted", "adjusted"])
def test_interaction_matches_r_anova(analysis, colon, ref):
    expected = ref["colon"][analysis]
    result = interaction_test(
        colon, "time", "status", "treatment", "node4", covariates=list(expected["adjust"])
    )
    groups = pd.DataFrame(expected["groups"])
    assert list(result.by_group["group"]) == ["0", "1"]
    assert list(result.by_group["n"]) == list(groups["n"])
    assert list(result.by_group["n_events"]) == list(groups["n_events"])
    for column in ("hazard_ratio", "ci_low", "ci_high"):
        np.testing.assert_allclose(result.by_group[column], groups[column], rtol=TOL)
    assert_p_close(result.by_group["p_value"], groups["p_value"])
    assert result.lr_df == expected["lr_df"] == 1
    np.testing.assert_allclose(result.lr_statistic, expected["lr_statistic"], rtol=TOL)
    assert_p_close([result.lr_p, result.wald_p], [expected["lr_p"], expected["wald_p"]])
    np.testing.assert_allclose(
        result.ratio_of_hazard_ratios.estimate, expected["ratio_of_hazard_ratios"], rtol=TOL
    )
    np.testing.assert_allclose(
        [result.with_interaction.log_likelihood, result.without_interaction.log_likelihood],
        [expected["log_likelihood_with"], expected["log_likelihood_without"]],
        rtol=TOL,
    )
    assert result.n == len(colon) and result.n_dropped == 0


# ---- properties ------------------------------------------------------------------------------


def test_row_order_changes_nothing(lung, asah, lung_fit):
    shuffled = lung.sample(frac=1.0, random_state=3)
    again = cox_regression(shuffled, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL)
    pd.testing.assert_frame_equal(again.table, lung_fit.table, rtol=1e-9)
    assert again.concordance == pytest.approx(lung_fit.concordance, rel=1e-12)
    a = logistic_regression(asah, "poor", ASAH_COVARIATES, categorical=ASAH_CATEGORICAL)
    b = logistic_regression(asah.iloc[::-1], "poor", ASAH_COVARIATES, categorical=ASAH_CATEGORICAL)
    pd.testing.assert_frame_equal(a.table, b.table, rtol=1e-9)


def test_reference_level_change_gives_reciprocal_ratios(lung, lung_fit):
    other = cox_regression(
        lung, "time", "event", LUNG_COVARIATES, categorical={"sex": "2", "ph.ecog": 1}
    )
    old, new = lung_fit.table.set_index("term"), other.table.set_index("term")
    hr = old["hazard_ratio"]
    np.testing.assert_allclose(new.loc["sex[1]", "hazard_ratio"], 1 / hr["sex[2]"], rtol=1e-8)
    np.testing.assert_allclose(
        new.loc["sex[1]", ["ci_low", "ci_high"]].to_numpy(float),
        1 / old.loc["sex[2]", ["ci_high", "ci_low"]].to_numpy(float),
        rtol=1e-8,
    )
    np.testing.assert_allclose(
        new.loc["sex[1]", "p_value"], old.loc["sex[2]", "p_value"], rtol=1e-8
    )
    np.testing.assert_allclose(
        new.loc["ph.ecog[0]", "hazard_ratio"], 1 / hr["ph.ecog[1]"], rtol=1e-8
    )
    np.testing.assert_allclose(
        new.loc["ph.ecog[2]", "hazard_ratio"], hr["ph.ecog[2]"] / hr["ph.ecog[1]"], rtol=1e-8
    )
    np.testing.assert_allclose(
        new.loc[["age", "wt.loss"], "coef"], old.loc[["age", "wt.loss"], "coef"], rtol=1e-8
    )
    assert other.log_likelihood == pytest.approx(lung_fit.log_likelihood, rel=1e-12)
    assert other.lr_p == pytest.approx(lung_fit.lr_p, rel=1e-8)


def test_pandas_categorical_keeps_its_level_order(lung, lung_fit):
    table = lung.assign(
        sex=pd.Categorical(lung["sex"].map({1: "m", 2: "f"}), categories=["m", "f"])
    )
    fit = cox_regression(
        table, "time", "event", LUNG_COVARIATES, categorical={"sex": "m", "ph.ecog": 0}
    )
    assert list(fit.table["term"])[:2] == ["age", "sex[f]"]
    np.testing.assert_allclose(fit.table["coef"], lung_fit.table["coef"], rtol=1e-9)


def simulated_cohort(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arm = rng.integers(0, 2, size=n)
    event_time = rng.exponential(1.0 / (0.1 * np.exp(0.7 * x - 0.5 * arm)))
    censor = rng.exponential(10.0, size=n)
    logit = -0.5 + 1.2 * x
    return pd.DataFrame(
        {
            "time": np.minimum(event_time, censor),
            "event": (event_time <= censor).astype(int),
            "x": x,
            "arm": arm,
            "noise": rng.normal(size=n),
            "y": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )


def test_planted_effects_are_recovered():
    cohort = simulated_cohort(3000, seed=11)
    cox = cox_regression(cohort, "time", "event", ["x", "arm", "noise"]).table.set_index("term")
    assert abs(cox.loc["x", "coef"] - 0.7) < 3 * cox.loc["x", "se"]
    assert abs(cox.loc["arm", "coef"] + 0.5) < 3 * cox.loc["arm", "se"]
    assert cox.loc["x", "ci_low"] < np.exp(0.7) < cox.loc["x", "ci_high"]
    assert cox.loc["x", "p_value"] < 1e-10 and cox.loc["noise", "p_value"] > 1e-3
    logit = logistic_regression(cohort, "y", ["x", "noise"]).table.set_index("term")
    assert abs(logit.loc["x", "coef"] - 1.2) < 3 * logit.loc["x", "se"]
    assert abs(logit.loc["(Intercept)", "coef"] + 0.5) < 3 * logit.loc["(Intercept)", "se"]


def test_forest_frame_rows(asah):
    fit = logistic_regression(asah, "poor", ASAH_COVARIATES, categorical=ASAH_CATEGORICAL)
    forest = fit.forest_frame()
    assert list(forest.columns) == ["term", "ratio", "ci_low", "ci_high", "p"]
    assert list(forest["term"]) == list(fit.table["term"][1:])
    np.testing.assert_array_equal(forest["ratio"], fit.table["odds_ratio"][1:])
    assert (forest["ci_low"] < forest["ratio"]).all()
    assert (forest["ratio"] < forest["ci_high"]).all()


def test_dropna_records_the_rows_dropped(lung, lung_fit):
    holes = lung.copy()
    holes.loc[holes.index[:7], "wt.loss"] = np.nan
    with pytest.raises(ValueError, match=r"wt\.loss \(7 of 211 rows\).*dropna=True"):
        cox_regression(holes, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL)
    dropped = cox_regression(
        holes, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL, dropna=True
    )
    complete = cox_regression(
        lung.iloc[7:], "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL
    )
    assert (dropped.n_dropped, dropped.n) == (7, 204)
    pd.testing.assert_frame_equal(dropped.table, complete.table)


def test_interaction_flipping_treatment_coding(colon):
    base = interaction_test(colon, "time", "status", "treatment", "node4")
    flipped = interaction_test(
        colon.assign(treatment=1 - colon["treatment"]), "time", "status", "treatment", "node4"
    )
    np.testing.assert_allclose(
        flipped.by_group["hazard_ratio"], 1 / base.by_group["hazard_ratio"], rtol=1e-8
    )
    np.testing.assert_allclose(flipped.by_group["p_value"], base.by_group["p_value"], rtol=1e-7)
    assert flipped.lr_statistic == pytest.approx(base.lr_statistic, rel=1e-7)
    assert flipped.ratio_of_hazard_ratios.estimate == pytest.approx(
        1 / base.ratio_of_hazard_ratios.estimate, rel=1e-8
    )


def test_interaction_with_three_groups(colon):
    groups = colon.assign(
        age_band=pd.cut(colon["age"], [0, 50, 65, 100], labels=["young", "middle", "old"])
    )
    result = interaction_test(
        groups, "time", "status", "treatment", "age_band", group_reference="middle"
    )
    assert list(result.by_group["group"]) == ["middle", "young", "old"]
    assert result.by_group["n"].sum() == len(colon)
    assert result.lr_df == 2 and np.isnan(result.wald_p) and result.ratio_of_hazard_ratios is None
    interaction_terms = result.with_interaction.table["term"].str.startswith("treatment:")
    assert list(result.with_interaction.table["term"][interaction_terms]) == [
        "treatment:age_band[young]",
        "treatment:age_band[old]",
    ]
    assert 0 < result.lr_p < 1


def test_level_and_penalizer(lung, lung_fit):
    narrow = cox_regression(
        lung, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL, level=0.90
    ).table
    half_width = np.log(narrow["ci_high"] / narrow["ci_low"]) / 2
    np.testing.assert_allclose(half_width, 1.6448536269514722 * narrow["se"], rtol=1e-12)
    shrunk = cox_regression(
        lung, "time", "event", LUNG_COVARIATES, categorical=LUNG_CATEGORICAL, penalizer=0.5
    )
    assert (shrunk.table["coef"].abs() < lung_fit.table["coef"].abs()).all()
    with pytest.raises(ValueError, match=r"penalizer: must be finite and >= 0"):
        cox_regression(lung, "time", "event", ["age"], penalizer=-1.0)


def test_nothing_passes_gives_no_multivariable_model(lung):
    result = univariable_then_multivariable(
        lung, ["wt.loss"], model="cox", duration="time", event="event"
    )
    assert result.kept == () and result.multivariable is None
    assert "wt.loss" in result.reason


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"covariates": ["age", "karno"]}, r"karno: no such column"),
        ({"categorical": {"sex": 3}}, r"reference level '3' of sex does not occur"),
        ({"categorical": {"inst": 1}}, r"categorical: \['inst'\] not among the covariates"),
        ({"covariates": ["age", "age"]}, r"covariates: \['age'\] listed more than once"),
    ],
)
def test_cox_input_errors_name_the_column(lung, kwargs, message):
    arguments = {"covariates": ["age", "sex"], "categorical": {"sex": 1}, **kwargs}
    with pytest.raises(ValueError, match=message):
        cox_regression(lung, "time", "event", **arguments)


def test_data_errors_name_the_column(lung, asah, colon):
    with pytest.raises(ValueError, match=r"event: no events among 211"):
        cox_regression(lung.assign(event=0), "time", "event", ["age"])
    with pytest.raises(ValueError, match=r"time: 1 negative"):
        cox_regression(
            lung.assign(time=lung["time"].where(lung.index != lung.index[0], -1)),
            "time",
            "event",
            ["age"],
        )
    with pytest.raises(ValueError, match=r"time: 1 non-finite"):
        cox_regression(lung.assign(time=["x", *lung["time"][1:]]), "time", "event", ["age"])
    with pytest.raises(ValueError, match=r"name: non-numeric values"):
        cox_regression(lung.assign(name="a"), "time", "event", ["name"])
    with pytest.raises(ValueError, match=r"one: constant \(1\)"):
        cox_regression(lung.assign(one=1.0), "time", "event", ["age", "one"])
    empty = pd.Categorical(lung["sex"], categories=[1, 2, 3])
    with pytest.raises(ValueError, match=r"sex: level\(s\) \['3'\] have no rows"):
        cox_regression(lung.assign(sex=empty), "time", "event", ["sex"], categorical={"sex": 1})
    with pytest.raises(ValueError, match=r"age: 1 of 211 rows|age \(1 of 211 rows\)"):
        cox_regression(
            lung.assign(age=lung["age"].where(lung.index != lung.index[3])),
            "time",
            "event",
            ["age"],
        )
    with pytest.raises(ValueError, match=r"poor: labels must be 0/1"):
        logistic_regression(asah.assign(poor=asah["poor"] * 2), "poor", ["age"])
    with pytest.raises(ValueError, match=r"treatment: treatment must be coded 0/1.*'2'"):
        interaction_test(
            colon.assign(treatment=colon["treatment"] + 1), "time", "status", "treatment", "node4"
        )
    with pytest.raises(ValueError, match=r"node4: group '1' has no events"):
        no_events = colon.assign(status=colon["status"].where(colon["node4"] == 0, 0))
        interaction_test(no_events, "time", "status", "treatment", "node4")
    with pytest.raises(ValueError, match=r"model: must be 'cox' or 'logistic'"):
        univariable_then_multivariable(lung, ["age"], model="poisson")


def test_perfect_separation_is_an_error(asah):
    with pytest.raises(ValueError, match=r"separate the outcome perfectly"):
        logistic_regression(asah.assign(leak=asah["poor"] * 3.0), "poor", ["age", "leak"])
