# Reference values for radiograph.stats.cutpoints (maximally selected log-rank statistics).
#
# Regenerate from the repository root with:
#     Rscript tests/stats/reference/cutpoints_reference.R
# It writes tests/stats/reference/cutpoints_reference.json (tests read that file; CI has no R).
#
# Method: maxstat::maxstat.test(Surv(time, event) ~ x, smethod = "LogRank", pmethod = ...)
# (Lausen & Schumacher 1992; Lausen, Sauerbrei & Schumacher 1994; Hothorn & Lausen 2003),
# on data shipped with R packages:
#   dlbcl_mge  : maxstat::DLBCL, time/cens ~ MGE (mean gene expression), minprop 0.1, maxprop 0.9
#   lung_age   : survival::lung, time/status ~ age (many ties), minprop 0.1, maxprop 0.9
#   lung_karno : survival::lung, time/status ~ ph.karno (few distinct values), minprop 0.2,
#                maxprop 0.8
# Rows with NA in the columns used are dropped first (as model.frame's na.omit does); the JSON
# holds the rows actually used. lung's status (1 = censored, 2 = dead) is exported as 0/1.
# Exported per case: the inputs, exactRankTests' log-rank scores, the statistic, the estimated
# cut-point, the candidate cut-points (cuts) and their standardised statistics (stats), and the
# p-values of pmethod "Lau92", "Lau94" and "condMC" (B = 100000, set.seed(20240501)).

suppressPackageStartupMessages({
  library(survival)
  library(maxstat)
  library(jsonlite)
})

reference_case <- function(time, event, x, minprop, maxprop) {
  keep <- complete.cases(time, event, x)
  time <- as.numeric(time[keep])
  event <- as.numeric(event[keep])
  x <- as.numeric(x[keep])
  d <- data.frame(time = time, event = event, x = x)
  fit <- function(pmethod, ...) {
    maxstat.test(Surv(time, event) ~ x, data = d, smethod = "LogRank", pmethod = pmethod,
                 minprop = minprop, maxprop = maxprop, ...)
  }
  lau92 <- fit("Lau92")
  lau94 <- fit("Lau94")
  set.seed(20240501)
  cond_mc <- fit("condMC", B = 100000)
  list(
    time = time, event = event, x = x, minprop = minprop, maxprop = maxprop,
    logrank_scores = as.numeric(exactRankTests::cscores(Surv(time, event), type = "LogRank")),
    statistic = unname(lau92$statistic), estimate = unname(lau92$estimate),
    cuts = as.numeric(lau92$cuts), stats = as.numeric(lau92$stats),
    p_lau92 = lau92$p.value, p_lau94 = lau94$p.value,
    p_condmc = cond_mc$p.value, condmc_b = 100000
  )
}

data(DLBCL, package = "maxstat")
lung <- survival::lung
cases <- list(
  dlbcl_mge = reference_case(DLBCL$time, DLBCL$cens, DLBCL$MGE, 0.1, 0.9),
  lung_age = reference_case(lung$time, lung$status - 1, lung$age, 0.1, 0.9),
  lung_karno = reference_case(lung$time, lung$status - 1, lung$ph.karno, 0.2, 0.8)
)
cases$meta <- list(
  r_version = R.version.string,
  maxstat_version = as.character(packageVersion("maxstat")),
  survival_version = as.character(packageVersion("survival"))
)
write_json(cases, "tests/stats/reference/cutpoints_reference.json", digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
