# Reference values for radiograph.stats.pooling (meta-analysis of per-centre estimates).
#
# Regenerate from the repository root with:
#     Rscript tests/stats/reference/pooling_reference.R
# It writes tests/stats/reference/pooling_reference.json (tests read that file; CI has no R).
#
# Method: metafor::rma(yi, vi, method = "DL" | "REML" | "FE") (DerSimonian & Laird 1986;
# Viechtbauer 2005; Higgins & Thompson 2002). REML runs with control threshold 1e-12 so that
# its Fisher scoring has converged far below the tests' tolerance of 1e-6.
# Data sets:
#   bcg         : metafor::dat.bcg (13 BCG vaccine trials), log risk ratios from
#                 escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg); no NA.
#   four_centres: made-up log hazard ratios and standard errors of 4 centres (fixed numbers
#                 below), heterogeneous; also analysed at level 0.90.
#   homogeneous : made-up, 3 centres with Q < df, so tau^2 is truncated at 0.
# Exported per data set: the inputs yi and sei, and per method: estimate, se, ci_lb, ci_ub,
# zval, pval, tau2, I2 (percent), H2, QE, QEp and the weights in percent (weights(fit)).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

fit_all <- function(yi, sei, level = 95) {
  out <- list(yi = yi, sei = sei, level = level / 100)
  for (method in c("DL", "REML", "FE")) {
    fit <- rma(yi = yi, sei = sei, method = method, level = level,
               control = list(threshold = 1e-12, maxiter = 1000))
    out[[method]] <- list(
      estimate = as.numeric(fit$beta), se = fit$se, ci_lb = fit$ci.lb, ci_ub = fit$ci.ub,
      zval = fit$zval, pval = fit$pval, tau2 = fit$tau2, I2 = fit$I2, H2 = fit$H2,
      QE = fit$QE, QEp = fit$QEp, weights = as.numeric(weights(fit))
    )
  }
  out
}

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
four_yi <- c(-0.35, 0.10, -0.62, -0.05)
four_sei <- c(0.12, 0.20, 0.25, 0.15)
homogeneous_yi <- c(-0.20, -0.25, -0.15)
homogeneous_sei <- c(0.10, 0.15, 0.20)

cases <- list(
  bcg = fit_all(as.numeric(bcg$yi), sqrt(as.numeric(bcg$vi))),
  four_centres = fit_all(four_yi, four_sei),
  four_centres_90 = fit_all(four_yi, four_sei, level = 90),
  homogeneous = fit_all(homogeneous_yi, homogeneous_sei)
)
cases$meta <- list(
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor"))
)
write_json(cases, "tests/stats/reference/pooling_reference.json", digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
