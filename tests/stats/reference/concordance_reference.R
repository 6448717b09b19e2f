# Reference values of radiograph.stats.concordance: Harrell's C and its standard deviation from
# Hmisc::rcorr.cens, and the C-index of survival::concordance, on two data sets shipped with
# the survival package:
#   - lung (NCCTG advanced lung cancer): columns time (days), status (1 censored, 2 dead), age,
#     sex, ph.ecog; rows with NA in any of them are dropped (1 row, ph.ecog), 227 kept;
#     event = status == 2.
#   - veteran (VA lung cancer trial): columns time (days), status (1 dead), karno, age,
#     celltype; no NA (137 rows); event = status == 1.
# Predictors ("risk": higher = earlier death), per data set:
#   - lp: linear predictor of coxph(Surv(time, event) ~ ...) on all rows (lung: age + sex +
#     ph.ecog; veteran: karno + celltype + age), predict(fit, type = "lp").
#   - age: age alone (integer years: many tied risks).
#   - ecog (lung only): ph.ecog alone (4 values: heavy ties).
#
# Regenerate from the repository root:
#     Rscript tests/stats/reference/concordance_reference.R
# It writes tests/stats/reference/concordance_reference.json with the input columns (so Python
# reads the same data) and, per predictor:
#   - rcorr_c, rcorr_dxy, rcorr_sd: rcorr.cens(-risk, Surv(time, event)) "C Index", "Dxy" and
#     "S.D." (the S.D. of Dxy; the S.D. of C is half of it). rcorr.cens wants a predictor
#     where higher means longer survival, hence -risk.
#   - rcorr_relevant, rcorr_concordant: its "Relevant Pairs" and "Concordant" counts (each
#     unordered pair is counted twice by rcorr.cens).
#   - surv_c, surv_concordant, surv_discordant, surv_tied_x: survival::concordance(Surv(time,
#     event) ~ risk, reverse = TRUE) (reverse: a higher predictor means a shorter survival),
#     its concordance and pair counts.
#   - surv_se: sqrt of that fit's var (the infinitesimal jackknife, for information only).
# All numbers are written with digits = NA (full double precision).

suppressPackageStartupMessages({
  library(survival)
  library(Hmisc)
  library(jsonlite)
})

reference_for <- function(time, event, risk) {
  rc <- rcorr.cens(-risk, Surv(time, event))
  sc <- concordance(Surv(time, event) ~ risk, reverse = TRUE)
  list(
    risk = risk,
    rcorr_c = unname(rc["C Index"]),
    rcorr_dxy = unname(rc["Dxy"]),
    rcorr_sd = unname(rc["S.D."]),
    rcorr_relevant = unname(rc["Relevant Pairs"]),
    rcorr_concordant = unname(rc["Concordant"]),
    surv_c = unname(sc$concordance),
    surv_concordant = unname(sc$count["concordant"]),
    surv_discordant = unname(sc$count["discordant"]),
    surv_tied_x = unname(sc$count["tied.x"]),
    surv_se = sqrt(unname(sc$var))
  )
}

lung_cols <- c("time", "status", "age", "sex", "ph.ecog")
lung_all <- survival::lung
lung_cc <- lung_all[complete.cases(lung_all[, lung_cols]), lung_cols]
lung_cc$event <- as.integer(lung_cc$status == 2)
lung_fit <- coxph(Surv(time, event) ~ age + sex + ph.ecog, data = lung_cc)
lung_ref <- list(
  source = paste("survival::lung; event = status == 2;",
                 "rows with NA in time/status/age/sex/ph.ecog dropped"),
  n_dropped_na = nrow(lung_all) - nrow(lung_cc),
  time = lung_cc$time,
  event = lung_cc$event,
  coxph_formula = "Surv(time, event) ~ age + sex + ph.ecog",
  coxph_coef = unname(coef(lung_fit)),
  predictors = list(
    lp = reference_for(lung_cc$time, lung_cc$event, unname(predict(lung_fit, type = "lp"))),
    age = reference_for(lung_cc$time, lung_cc$event, as.numeric(lung_cc$age)),
    ecog = reference_for(lung_cc$time, lung_cc$event, as.numeric(lung_cc$ph.ecog))
  )
)

vet <- survival::veteran
vet_fit <- coxph(Surv(time, status) ~ karno + celltype + age, data = vet)
vet_ref <- list(
  source = "survival::veteran; event = status == 1; no NA",
  n_dropped_na = 0L,
  time = vet$time,
  event = as.integer(vet$status),
  coxph_formula = "Surv(time, status) ~ karno + celltype + age",
  coxph_coef = unname(coef(vet_fit)),
  predictors = list(
    lp = reference_for(vet$time, vet$status, unname(predict(vet_fit, type = "lp"))),
    age = reference_for(vet$time, vet$status, as.numeric(vet$age))
  )
)

out <- list(
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  hmisc_version = as.character(packageVersion("Hmisc")),
  lung = lung_ref,
  veteran = vet_ref
)
write_json(out, "tests/stats/reference/concordance_reference.json", digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
