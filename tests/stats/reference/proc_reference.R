# Reference values of radiograph.stats.discrimination, computed with pROC (Robin et al. 2011)
# on its shipped data set `aSAH` (113 patients after aneurysmal subarachnoid haemorrhage;
# outcome Good / Poor; scores s100b, wfns (WFNS grade 1-5, as numbers) and ndka).
#
# Regenerate from the repository root:
#     Rscript tests/stats/reference/proc_reference.R
# It writes tests/stats/reference/proc_reference.json: the input columns (so Python reads the
# same data) and pROC's results at full precision. Rows with NA in outcome / s100b / wfns /
# ndka are dropped first, as pROC does (aSAH has none: all 113 rows are kept).
#
# Conventions: controls = "Good", cases = "Poor" (pROC's default level order); every curve
# below has direction "<" (controls lower), i.e. a higher score means "Poor", the convention
# of the Python code (which never flips the direction). Exported as `direction`.

suppressPackageStartupMessages({
  library(pROC)
  library(jsonlite)
})

data(aSAH, package = "pROC")
columns <- c("outcome", "s100b", "wfns", "ndka")
complete <- aSAH[complete.cases(aSAH[, columns]), columns]
label <- as.integer(complete$outcome == "Poor")
scores <- list(s100b = complete$s100b, wfns = as.numeric(complete$wfns), ndka = complete$ndka)

roc_of <- function(lab, score) {
  roc(lab, score, levels = c(0, 1), direction = "auto", quiet = TRUE)
}

delong_ci <- function(r, level) {
  ci <- as.numeric(ci.auc(r, method = "delong", conf.level = level))
  list(auc = as.numeric(auc(r)), ci_low = ci[1], ci_high = ci[3], level = level,
       direction = r$direction)
}

rocs <- lapply(scores, function(s) roc_of(label, s))
auc_results <- lapply(rocs, delong_ci, level = 0.95)
auc_results_90 <- lapply(rocs, delong_ci, level = 0.90)

paired <- function(a, b) {
  test <- roc.test(rocs[[a]], rocs[[b]], method = "delong", paired = TRUE)
  list(a = a, b = b, statistic = unname(test$statistic), p_value = test$p.value,
       auc_a = unname(test$estimate[1]), auc_b = unname(test$estimate[2]),
       difference = unname(test$estimate[1] - test$estimate[2]),
       ci_low = test$conf.int[1], ci_high = test$conf.int[2],
       level = attr(test$conf.int, "conf.level"))
}

# Unpaired: s100b on the first 56 rows, ndka on the other 57 (two "independent cohorts").
first <- seq_len(56)
second <- setdiff(seq_len(nrow(complete)), first)
roc_a <- roc_of(label[first], scores$s100b[first])
roc_b <- roc_of(label[second], scores$ndka[second])
unpaired_test <- roc.test(roc_a, roc_b, method = "delong", paired = FALSE)
unpaired <- list(
  label_a = label[first], score_a = scores$s100b[first],
  label_b = label[second], score_b = scores$ndka[second],
  direction_a = roc_a$direction, direction_b = roc_b$direction,
  auc_a = as.numeric(auc(roc_a)), auc_b = as.numeric(auc(roc_b)),
  statistic = unname(unpaired_test$statistic),
  df = unname(unpaired_test$parameter), p_value = unpaired_test$p.value
)

# Youden's best threshold of s100b (pROC reports the midpoint between two observed scores).
best <- coords(rocs$s100b, "best", best.method = "youden", transpose = FALSE,
               ret = c("threshold", "sensitivity", "specificity", "ppv", "npv", "accuracy",
                       "tp", "fp", "tn", "fn"))
youden <- lapply(as.list(best), unname)

# Wilson score intervals (prop.test without continuity correction) of the 2x2 table of s100b
# at a fixed threshold, positive when s100b >= threshold.
threshold <- 0.3
predicted <- scores$s100b >= threshold
tp <- sum(predicted & label == 1); fp <- sum(predicted & label == 0)
tn <- sum(!predicted & label == 0); fn <- sum(!predicted & label == 1)
wilson <- function(x, n) {
  test <- prop.test(x, n, correct = FALSE, conf.level = 0.95)
  list(x = x, n = n, estimate = unname(test$estimate), ci_low = test$conf.int[1],
       ci_high = test$conf.int[2])
}
fixed <- list(
  threshold = threshold, tp = tp, fp = fp, tn = tn, fn = fn,
  sensitivity = wilson(tp, tp + fn), specificity = wilson(tn, tn + fp),
  ppv = wilson(tp, tp + fp), npv = wilson(tn, tn + fn), accuracy = wilson(tp + tn, length(label))
)

# ci.auc's clipping to [0, 1]: a small hand-made sample whose Wald upper bound exceeds 1, and a
# perfectly separated one (DeLong variance 0: pROC returns [1, 1]).
clip_label <- c(0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1)
clip_score <- c(1, 2, 3, 4, 5, 6, 5.5, 7, 8, 9, 10)
perfect_label <- c(0, 0, 0, 1, 1, 1)
perfect_score <- c(1, 2, 3, 4, 5, 6)
edge_cases <- list(
  clipped = c(list(label = clip_label, score = clip_score),
              delong_ci(roc_of(clip_label, clip_score), 0.95)),
  perfect = c(list(label = perfect_label, score = perfect_score),
              delong_ci(roc_of(perfect_label, perfect_score), 0.95))
)

out <- list(
  source = "pROC::aSAH; controls = Good, cases = Poor; no rows dropped for NA",
  r_version = R.version.string,
  proc_version = as.character(packageVersion("pROC")),
  n_dropped_na = nrow(aSAH) - nrow(complete),
  data = c(list(label = label), scores),
  auc = auc_results,
  auc_90 = auc_results_90,
  paired = list(s100b_ndka = paired("s100b", "ndka"), wfns_s100b = paired("wfns", "s100b")),
  unpaired = unpaired,
  youden = youden,
  fixed_threshold = fixed,
  edge_cases = edge_cases
)
write_json(out, "tests/stats/reference/proc_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
