# Reference values for radiograph/stats/regression.py (tests/stats/test_regression.py).
#
# Regenerate from the repository root with:
#     Rscript tests/stats/reference/regression_reference.R
# which rewrites tests/stats/reference/regression_reference.json. Needs the R packages survival,
# pROC and jsonlite (Debian: r-cran-survival, r-cran-proc, r-cran-jsonlite).
#
# Datasets (all shipped with the R packages, no download):
#   * survival::lung. Rows with NA in any used column (time, status, age, sex, ph.ecog, wt.loss,
#     inst) are dropped, as R's complete-case analysis does; the single row with ph.ecog == 3 is
#     DROPPED too (a one-patient level gives no stable hazard ratio). Event = status == 2.
#     sex is a factor with reference 1 (male), ph.ecog a factor with reference 0.
#   * survival::colon, etype == 2 (death), rx restricted to Obs (treatment 0) and Lev+5FU
#     (treatment 1); group = node4 (more than 4 positive lymph nodes, 0/1). No NA in the used
#     columns (time, status, rx, node4, age, sex), so no row is dropped.
#   * pROC::aSAH: outcome Poor (1) vs Good (0) on age, gender (reference Male), s100b and wfns
#     as an unordered factor (reference 1). No NA. Confidence intervals of the odds ratios are
#     Wald intervals (confint.default), not profile-likelihood ones (confint).
#
# The JSON holds the input columns (after the drops above) and the R results, at full precision.

suppressPackageStartupMessages({
  library(survival)
  library(pROC)
  library(jsonlite)
})

level <- 0.95
# Convergence tightened beyond the defaults (coxph: relative log-likelihood change 1e-9; glm:
# relative deviance change 1e-8) so that the references are exact to ~1e-10. glm's standard
# errors come from the IRLS weights of the iterate before the last one (1e-4 off the MLE's here
# with the defaults), so every glm is refitted starting from its converged coefficients.
cox_ctrl <- coxph.control(eps = 1e-11, iter.max = 100)
glm_ctrl <- glm.control(epsilon = 1e-14, maxit = 100)
fit_glm <- function(formula) {
  fit <- glm(formula, family = binomial, data = asah_df, control = glm_ctrl)
  glm(formula, family = binomial, data = asah_df, control = glm_ctrl, start = coef(fit))
}
zq <- qnorm(1 - (1 - level) / 2)

cox_table <- function(fit) {
  s <- summary(fit, conf.int = level)$coefficients
  ci <- exp(confint(fit, level = level))
  list(term = rownames(s), coef = unname(s[, "coef"]), se = unname(s[, "se(coef)"]),
       hazard_ratio = unname(s[, "exp(coef)"]), ci_low = unname(ci[, 1]),
       ci_high = unname(ci[, 2]), z = unname(s[, "z"]), p_value = unname(s[, "Pr(>|z|)"]))
}

cox_summary <- function(fit) {
  lr <- 2 * (fit$loglik[2] - fit$loglik[1])
  df <- length(coef(fit))
  list(table = cox_table(fit), n = fit$n, n_events = fit$nevent,
       log_likelihood = fit$loglik[2], null_log_likelihood = fit$loglik[1],
       lr_statistic = lr, lr_df = df, lr_p = pchisq(lr, df, lower.tail = FALSE),
       concordance = unname(fit$concordance["concordance"]))
}

# Likelihood-ratio p of a univariable model against the null (all levels of a factor at once).
cox_lr_p <- function(fit) unname(summary(fit)$logtest["pvalue"])

# ---- survival::lung: Cox, stratified Cox, univariable -> multivariable ----------------------
lung_cols <- c("time", "status", "age", "sex", "ph.ecog", "wt.loss", "inst")
lung_df <- survival::lung[complete.cases(survival::lung[, lung_cols]), lung_cols]
lung_df <- lung_df[lung_df$ph.ecog != 3, ]
lung_df$event <- as.integer(lung_df$status == 2)
lung_df$sex_f <- relevel(factor(lung_df$sex), ref = "1")
lung_df$ecog_f <- relevel(factor(lung_df$ph.ecog), ref = "0")

cox_fit <- coxph(Surv(time, event) ~ age + sex_f + ecog_f + wt.loss, data = lung_df,
                 ties = "efron", control = cox_ctrl)
strat_fit <- coxph(Surv(time, event) ~ age + sex_f + ecog_f + wt.loss + strata(inst),
                   data = lung_df, ties = "efron", control = cox_ctrl)

uni_forms <- list(age = ~ age, sex = ~ sex_f, ph.ecog = ~ ecog_f, wt.loss = ~ wt.loss)
uni <- lapply(uni_forms, function(rhs) {
  fit <- coxph(update(Surv(time, event) ~ ., rhs), data = lung_df, ties = "efron",
               control = cox_ctrl)
  c(cox_table(fit), list(lr_p = cox_lr_p(fit)))
})
kept_cox <- names(uni)[sapply(uni, function(u) u$lr_p < 0.05)]
kept_terms <- c(age = "age", sex = "sex_f", ph.ecog = "ecog_f", wt.loss = "wt.loss")[kept_cox]
multi_fit <- coxph(as.formula(paste("Surv(time, event) ~", paste(kept_terms, collapse = "+"))),
                   data = lung_df, ties = "efron", control = cox_ctrl)

# ---- survival::colon: treatment x node4 interaction -----------------------------------------
colon_df <- survival::colon[survival::colon$etype == 2 &
                            survival::colon$rx %in% c("Obs", "Lev+5FU"),
                            c("time", "status", "rx", "node4", "age", "sex")]
colon_df <- colon_df[complete.cases(colon_df), ]
colon_df$treatment <- as.integer(colon_df$rx == "Lev+5FU")

interaction <- function(adjust) {
  rhs_adj <- if (length(adjust)) paste("+", paste(adjust, collapse = "+")) else ""
  groups <- lapply(c(0, 1), function(g) {
    fit <- coxph(as.formula(paste("Surv(time, status) ~ treatment", rhs_adj)),
                 data = colon_df[colon_df$node4 == g, ], ties = "efron", control = cox_ctrl)
    tab <- cox_table(fit)
    list(group = g, n = fit$n, n_events = fit$nevent, hazard_ratio = tab$hazard_ratio[1],
         ci_low = tab$ci_low[1], ci_high = tab$ci_high[1], p_value = tab$p_value[1])
  })
  without <- coxph(as.formula(paste("Surv(time, status) ~ treatment + factor(node4)", rhs_adj)),
                   data = colon_df, ties = "efron", control = cox_ctrl)
  with <- coxph(as.formula(paste("Surv(time, status) ~ treatment * factor(node4)", rhs_adj)),
                data = colon_df, ties = "efron", control = cox_ctrl)
  a <- anova(without, with)
  s <- summary(with)$coefficients
  term <- "treatment:factor(node4)1"
  list(adjust = adjust, groups = groups, lr_statistic = a$Chisq[2], lr_df = a$Df[2],
       lr_p = a[["Pr(>|Chi|)"]][2], wald_p = unname(s[term, "Pr(>|z|)"]),
       ratio_of_hazard_ratios = unname(s[term, "exp(coef)"]),
       log_likelihood_with = with$loglik[2], log_likelihood_without = without$loglik[2])
}

# ---- pROC::aSAH: logistic regression ---------------------------------------------------------
asah <- pROC::aSAH
asah_df <- data.frame(poor = as.integer(asah$outcome == "Poor"), age = asah$age,
                      gender = as.character(asah$gender), s100b = asah$s100b,
                      wfns = as.integer(as.character(asah$wfns)))
asah_df$gender_f <- relevel(factor(asah_df$gender), ref = "Male")
asah_df$wfns_f <- relevel(factor(asah_df$wfns), ref = "1")

glm_summary <- function(fit) {
  s <- summary(fit)$coefficients
  ci <- exp(confint.default(fit, level = level))
  null <- fit_glm(poor ~ 1)
  lr <- 2 * (as.numeric(logLik(fit)) - as.numeric(logLik(null)))
  df <- length(coef(fit)) - 1
  list(table = list(term = rownames(s), coef = unname(s[, "Estimate"]),
                    se = unname(s[, "Std. Error"]), odds_ratio = unname(exp(s[, "Estimate"])),
                    ci_low = unname(ci[, 1]), ci_high = unname(ci[, 2]),
                    z = unname(s[, "z value"]), p_value = unname(s[, "Pr(>|z|)"])),
       n = nrow(asah_df), n_events = sum(asah_df$poor),
       log_likelihood = as.numeric(logLik(fit)), null_log_likelihood = as.numeric(logLik(null)),
       lr_statistic = lr, lr_df = df, lr_p = pchisq(lr, df, lower.tail = FALSE),
       auc = as.numeric(pROC::auc(asah_df$poor, fitted(fit), direction = "<", quiet = TRUE)))
}

glm_fit <- fit_glm(poor ~ age + gender_f + s100b + wfns_f)
glm_uni_forms <- list(age = ~ age, gender = ~ gender_f, s100b = ~ s100b, wfns = ~ wfns_f)
glm_uni <- lapply(glm_uni_forms, function(rhs) {
  fit <- fit_glm(update(poor ~ ., rhs))
  tab <- glm_summary(fit)
  c(tab$table, list(lr_p = tab$lr_p))
})
kept_glm <- names(glm_uni)[sapply(glm_uni, function(u) u$lr_p < 0.05)]
kept_glm_terms <- c(age = "age", gender = "gender_f", s100b = "s100b", wfns = "wfns_f")[kept_glm]
glm_multi <- fit_glm(as.formula(paste("poor ~", paste(kept_glm_terms, collapse = "+"))))

out <- list(
  r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  level = level,
  lung = list(
    data = as.list(lung_df[, c("time", "event", "age", "sex", "ph.ecog", "wt.loss", "inst")]),
    cox = cox_summary(cox_fit),
    stratified = cox_summary(strat_fit),
    univariable = uni,
    kept = kept_cox,
    multivariable = cox_summary(multi_fit)
  ),
  colon = list(
    data = as.list(colon_df[, c("time", "status", "treatment", "node4", "age", "sex")]),
    unadjusted = interaction(character(0)),
    adjusted = interaction(c("age", "sex"))
  ),
  asah = list(
    data = as.list(asah_df[, c("poor", "age", "gender", "s100b", "wfns")]),
    logistic = glm_summary(glm_fit),
    univariable = glm_uni,
    kept = kept_glm,
    multivariable = glm_summary(glm_multi)
  )
)
jsonlite::write_json(out, "tests/stats/reference/regression_reference.json", digits = NA,
                     auto_unbox = TRUE, pretty = FALSE)
