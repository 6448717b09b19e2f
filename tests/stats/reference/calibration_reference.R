# Reference values for radiograph.stats.calibration and radiograph.stats.utility.
#
# Regenerate from the repository root with
#     Rscript tests/stats/reference/calibration_reference.R
# (needs R with the survival, rms (brings Hmisc) and jsonlite packages; Debian:
# r-cran-survival r-cran-rms r-cran-jsonlite). It writes calibration_reference.json next to
# this script; the Python tests read that file and never run R.
#
# Data: survival::colon, the death records (etype == 2) of the adjuvant colon cancer trial.
# Rows with NA in a model variable (nodes: 18, differ: 23) are dropped, as glm does.
# Two logistic models of death during follow-up (status) are fitted on the observation arm
# (rx == "Obs") and applied to the Lev+5FU arm (rx == "Lev+5FU"), whose mortality is lower:
# an external validation with real miscalibration (calibration-in-the-large < 0).
#   old: status ~ age + sex + obstruct + differ + extent
#   new: old + nodes
# The JSON holds the validation outcome y and both predicted probabilities (full precision),
# so Python reads exactly the numbers R used, and the results:
#   rms::val.prob(p_new, y)        all statistics (Intercept/Slope of the joint recalibration
#                                  fit, Brier, U:Chi-sq, S:z, ...)
#   glm(y ~ qlogis(p), binomial)   joint fit (epsilon 1e-14): coefficients, Wald SEs, Wald
#                                  CIs (confint.default)
#   glm(y ~ offset(qlogis(p)))     calibration-in-the-large: intercept, SE, Wald CI, p
#   Hosmer-Lemeshow by hand, in the ResourceSelection::hoslem.test convention (that package is
#                                  not packaged for Debian): breaks = unique(quantile(p, 0:g/g))
#                                  (type 7), cut(..., include.lowest = TRUE) (right-closed
#                                  groups), chi-square summed over both outcome columns
#   calibration bins               cut(p, quantile(p, 0:10/10), include.lowest = TRUE) and
#                                  10 equal-width bins on [0, 1], right-closed like the
#                                  Hosmer-Lemeshow groups and sklearn's calibration_curve;
#                                  Wilson intervals from prop.test(correct = FALSE)
#   decision curve by hand         treat when p >= pt; NB = TP/n - FP/n * pt / (1 - pt)
#   Hmisc::improveProb(p_old, p_new, y)   continuous NRI and IDI with their SEs
#   categorical NRI by hand        cutoffs 0.4, 0.5, 0.6, categories [0, 0.4), [0.4, 0.5), ...;
#                                  SE of Pencina et al. 2008, section 2

suppressPackageStartupMessages({
  library(survival)
  library(rms)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/stats/reference"

# ---- data and models -------------------------------------------------------------------
d <- colon[colon$etype == 2, c("rx", "status", "age", "sex", "obstruct", "differ",
                               "extent", "nodes")]
d <- d[complete.cases(d), ]
dev <- d[d$rx == "Obs", ]
val <- d[d$rx == "Lev+5FU", ]
fit_old <- glm(status ~ age + sex + obstruct + differ + extent, binomial, data = dev)
fit_new <- glm(status ~ age + sex + obstruct + differ + extent + nodes, binomial, data = dev)
y <- val$status
p_old <- unname(predict(fit_old, newdata = val, type = "response"))
p_new <- unname(predict(fit_new, newdata = val, type = "response"))

# ---- logistic recalibration -------------------------------------------------------------
vp <- val.prob(p_new, y, pl = FALSE)
lp <- qlogis(p_new)
# glm's default epsilon (1e-8) leaves the Wald SEs, computed from the working weights of the
# last iteration, about 5e-7 (relative) from the maximum-likelihood values; iterate to 1e-14
tight <- glm.control(epsilon = 1e-14, maxit = 100)
joint <- glm(y ~ lp, family = binomial, control = tight)
joint_ci <- confint.default(joint, level = 0.95)
large <- glm(y ~ 1, offset = lp, family = binomial, control = tight)
large_ci <- confint.default(large, level = 0.95)
large_sum <- summary(large)$coefficients
joint_sum <- summary(joint)$coefficients
slope_z1 <- (coef(joint)[2] - 1) / joint_sum[2, 2]

recalibration <- list(
  val_prob = as.list(vp),
  joint_intercept = unname(coef(joint)[1]),
  joint_intercept_se = joint_sum[1, 2],
  joint_intercept_ci = unname(joint_ci[1, ]),
  joint_intercept_p = joint_sum[1, 4],
  slope = unname(coef(joint)[2]),
  slope_se = joint_sum[2, 2],
  slope_ci = unname(joint_ci[2, ]),
  slope_p_vs_1 = unname(2 * pnorm(-abs(slope_z1))),
  intercept_in_the_large = unname(coef(large)[1]),
  intercept_in_the_large_se = large_sum[1, 2],
  intercept_in_the_large_ci = unname(large_ci[1, ]),
  intercept_in_the_large_p = large_sum[1, 4]
)

# ---- Brier -----------------------------------------------------------------------------
brier <- mean((p_new - y)^2)
prev <- mean(y)
brier_ref <- list(brier = brier, scaled = 1 - brier / (prev * (1 - prev)))

# ---- Hosmer-Lemeshow (hoslem.test convention) ------------------------------------------
hoslem <- function(y, p, g) {
  breaks <- unique(quantile(p, probs = seq(0, 1, 1 / g)))
  group <- cut(p, breaks = breaks, include.lowest = TRUE)
  obs1 <- tapply(y, group, sum)
  exp1 <- tapply(p, group, sum)
  size <- tapply(y, group, length)
  obs0 <- size - obs1
  exp0 <- size - exp1
  chisq <- sum((obs1 - exp1)^2 / exp1) + sum((obs0 - exp0)^2 / exp0)
  list(g = g, statistic = unname(chisq), df = g - 2,
       p_value = unname(pchisq(chisq, g - 2, lower.tail = FALSE)),
       observed = unname(obs1), expected = unname(exp1), size = unname(size))
}
hl <- list(new_g10 = hoslem(y, p_new, 10), old_g10 = hoslem(y, p_old, 10),
           new_g8 = hoslem(y, p_new, 8))

# ---- calibration bins with Wilson intervals ---------------------------------------------
bins <- function(y, p, breaks) {
  group <- cut(p, breaks = breaks, include.lowest = TRUE)
  keep <- table(group) > 0
  size <- as.vector(table(group))[keep]
  events <- as.vector(tapply(y, group, sum))[keep]
  wilson <- t(mapply(function(x, n) {
    suppressWarnings(prop.test(x, n, correct = FALSE)$conf.int)  # small-count chi-square warning
  }, events, size))
  list(edges = breaks, count = size, events = events,
       mean_predicted = as.vector(tapply(p, group, mean))[keep],
       observed = events / size, ci_low = wilson[, 1], ci_high = wilson[, 2])
}
curve <- list(quantile = bins(y, p_new, quantile(p_new, seq(0, 1, 0.1))),
              uniform = bins(y, p_new, seq(0, 1, 0.1)))

# ---- decision curve ----------------------------------------------------------------------
thresholds <- seq(0.05, 0.95, by = 0.05)
n <- length(y)
nb_model <- sapply(thresholds, function(pt) {
  treat <- p_new >= pt
  sum(treat & y == 1) / n - sum(treat & y == 0) / n * pt / (1 - pt)
})
nb_all <- sapply(thresholds, function(pt) prev - (1 - prev) * pt / (1 - pt))
decision <- list(thresholds = thresholds, net_benefit = nb_model, treat_all = nb_all,
                 interventions_avoided = (nb_model - nb_all) / (thresholds / (1 - thresholds)) *
                   100)

# ---- NRI and IDI ----------------------------------------------------------------------------
ip <- improveProb(p_old, p_new, y)
improve <- list(nri = ip$nri, se_nri = ip$se.nri, z_nri = ip$z.nri,
                nri_ev = ip$nri.ev, nri_ne = ip$nri.ne, se_nri_ev = ip$se.nri.ev,
                se_nri_ne = ip$se.nri.ne, idi = ip$idi, se_idi = ip$se.idi, z_idi = ip$z.idi,
                improved_sens = ip$improveSens, improved_spec = ip$improveSpec)

categorical_nri <- function(y, p_old, p_new, cutoffs) {
  breaks <- c(-Inf, cutoffs, Inf)
  c_old <- as.integer(cut(p_old, breaks, right = FALSE))
  c_new <- as.integer(cut(p_new, breaks, right = FALSE))
  ev <- y == 1
  up_e <- mean(c_new[ev] > c_old[ev]); down_e <- mean(c_new[ev] < c_old[ev])
  up_n <- mean(c_new[!ev] > c_old[!ev]); down_n <- mean(c_new[!ev] < c_old[!ev])
  nri <- (up_e - down_e) + (down_n - up_n)
  se <- sqrt((up_e + down_e) / sum(ev) + (up_n + down_n) / sum(!ev))
  list(cutoffs = cutoffs, nri = nri, se = se, z = nri / se,
       p_value = 2 * pnorm(-abs(nri / se)), nri_events = up_e - down_e,
       nri_nonevents = down_n - up_n)
}
continuous_se <- function(y, p_old, p_new) {
  ev <- y == 1
  up_e <- mean(p_new[ev] > p_old[ev]); down_e <- mean(p_new[ev] < p_old[ev])
  up_n <- mean(p_new[!ev] > p_old[!ev]); down_n <- mean(p_new[!ev] < p_old[!ev])
  sqrt((up_e + down_e) / sum(ev) + (up_n + down_n) / sum(!ev))
}
reclassification <- list(
  categorical = categorical_nri(y, p_old, p_new, c(0.4, 0.5, 0.6)),
  continuous_pencina_se = continuous_se(y, p_old, p_new)
)

out <- list(
  source = paste("survival::colon (etype == 2), complete cases; models fitted on rx == 'Obs',",
                 "evaluated on rx == 'Lev+5FU'"),
  r_version = R.version.string,
  rms_version = as.character(packageVersion("rms")),
  hmisc_version = as.character(packageVersion("Hmisc")),
  n = n,
  y = y, p_old = p_old, p_new = p_new,
  recalibration = recalibration, brier = brier_ref, hosmer_lemeshow = hl,
  calibration_curve = curve, decision_curve = decision, improve_prob = improve,
  reclassification = reclassification
)
write_json(out, file.path(out_dir, "calibration_reference.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
