r"""Losses: pure functions on tensors.

Survival (Cox partial likelihood), classification (cross-entropy) and the three SPARRA terms of
the training loss (Eq. 8 of Gao et al., MICCAI: the Gamma posterior of the precision, Eq. 4; the
sparsity KL term; the Gaussian reconstruction term of Eq. 6, an MSE).

Notation for the Cox model: subject :math:`i` has log relative hazard (risk) :math:`r_i`,
observed time :math:`t_i` and event indicator :math:`\delta_i`. Let
:math:`\xi_1 < \xi_2 < \dots` be the distinct times,
:math:`H_k = \{i: t_i = \xi_k, \delta_i = 1\}` the events at :math:`\xi_k` (:math:`d_k = |H_k|`)
and :math:`R_k = \{j: t_j \ge \xi_k\}` the risk set.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Ties = Literal["efron", "breslow"]


def _as_vector(name: str, value: Tensor) -> Tensor:
    """Flatten a (n,) or (n, 1) tensor to (n,); anything else is an error naming ``name``."""
    if value.dim() == 2 and value.size(1) == 1:
        return value[:, 0]
    if value.dim() != 1:
        raise ValueError(f"{name}: expected shape (n,) or (n, 1), got {tuple(value.shape)}")
    return value


def cox_nll(risk: Tensor, time: Tensor, event: Tensor, ties: Ties = "efron") -> Tensor:
    r"""Negative Cox partial log-likelihood, averaged over the events of the batch.

    .. math::

        \ell = \sum_k \Big[ \sum_{i \in H_k} r_i
               - \sum_{l=0}^{d_k - 1} \log\Big( \sum_{j \in R_k} e^{r_j}
               - \tfrac{l}{d_k} \sum_{j \in H_k} e^{r_j} \Big) \Big],
        \qquad \text{loss} = -\ell \,/\, \sum_i \delta_i .

    That is Efron's exact handling of tied event times; ``ties="breslow"`` drops the
    :math:`\tfrac{l}{d_k}` correction (every tied event sees the full risk set :math:`R_k`).
    Without ties the two coincide with Cox's partial likelihood.

    Computed in :math:`O(n \log n)`: subjects are sorted by decreasing time, the log risk-set
    sums :math:`\log \sum_{j \in R_k} e^{r_j}` come from one cumulative log-sum-exp read at the
    last subject of each tie group, and the Efron correction is evaluated as
    :math:`\log R_k + \operatorname{log1p}(-\tfrac{l}{d_k} T_k / R_k)` with
    :math:`T_k / R_k \le 1`, so risks of :math:`\pm 10^4` neither overflow nor produce NaN.
    The loss is invariant to the order of the subjects.

    Args:
        risk: (n,) or (n, 1) float log relative hazards (higher = earlier event).
        time: (n,) or (n, 1) observed times (any unit; only their order and ties matter).
        event: (n,) or (n, 1) event indicator (bool or 0/1); 0 = censored.
        ties: ``"efron"`` (default, exact for tied event times) or ``"breslow"``.

    Returns:
        Scalar tensor. With no event in the batch the partial likelihood is empty: the result is
        a zero that is still connected to ``risk`` (its gradient is zero), so a training step on
        such a batch runs without special-casing.
    """
    risk = _as_vector("risk", risk)
    time = _as_vector("time", time)
    event = _as_vector("event", event)
    if not (risk.numel() == time.numel() == event.numel()):
        raise ValueError(
            f"risk, time and event must have the same length, got {risk.numel()}, "
            f"{time.numel()}, {event.numel()}"
        )
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}")
    if not risk.is_floating_point():
        raise ValueError(f"risk must be a floating-point tensor, got {risk.dtype}")
    if time.is_floating_point() and not bool(torch.isfinite(time).all()):
        raise ValueError("time contains NaN or infinite values")
    event = event.to(torch.bool)
    n_events = int(event.sum())
    if n_events == 0:
        return risk.sum() * 0.0

    order = torch.argsort(time, descending=True)
    r = risk[order]
    t = time[order]
    e = event[order]

    # Tie groups of equal times, numbered 0..G-1 along the decreasing-time order.
    _, group_size = torch.unique_consecutive(t, return_counts=True)
    group = torch.repeat_interleave(torch.arange(group_size.numel(), device=r.device), group_size)
    group_last = torch.cumsum(group_size, 0) - 1
    log_risk_set = torch.logcumsumexp(r, 0)[group_last]  # (G,) log sum_{j in R_k} exp(r_j)

    r_ev = r[e]
    g_ev = group[e]  # non-decreasing
    log_r_ev = log_risk_set[g_ev]
    log_lik = r_ev - log_r_ev
    if ties == "efron":
        n_groups = group_size.numel()
        d = torch.bincount(g_ev, minlength=n_groups)  # events per tie group
        first = torch.cumsum(d, 0) - d  # index of each group's first event among the events
        rank = torch.arange(n_events, device=r.device) - first[g_ev]  # l = 0..d_k-1
        # T_k / R_k, each term exp(r_i - log R_k) <= 1 since i is in its own risk set.
        tie_share = (
            torch.zeros(n_groups, dtype=r.dtype, device=r.device)
            .index_add(0, g_ev, torch.exp(r_ev - log_r_ev))
            .clamp(max=1.0)
        )
        frac = rank.to(r.dtype) / d[g_ev].to(r.dtype)
        log_lik = log_lik - torch.log1p(-frac * tie_share[g_ev])
    return -log_lik.sum() / n_events


def cross_entropy_loss(
    logits: Tensor, target: Tensor, class_weights: Tensor | None = None
) -> Tensor:
    r"""Cross-entropy for binary or multi-class classification, averaged over subjects.

    Binary, ``logits`` of shape (B,) or (B, 1) and ``target`` in {0, 1}:
    :math:`-\sum_i w_{y_i} [y_i \log \sigma(z_i) + (1 - y_i) \log(1 - \sigma(z_i))]
    / \sum_i w_{y_i}`.
    Multi-class, ``logits`` (B, C) and ``target`` (B,) class indices in [0, C):
    :math:`-\sum_i w_{y_i} \log \operatorname{softmax}(z_i)_{y_i} / \sum_i w_{y_i}`.
    Without ``class_weights`` all :math:`w = 1` (a plain mean).

    Args:
        logits: (B,), (B, 1) or (B, C) float.
        target: (B,) (or (B, 1)) class labels; 0/1 for the binary case.
        class_weights: optional (2,) (binary) or (C,) weight per class.

    Returns:
        Scalar tensor.
    """
    target = _as_vector("target", target)
    binary = logits.dim() == 1 or (logits.dim() == 2 and logits.size(1) == 1)
    if binary:
        logits = _as_vector("logits", logits)
    elif logits.dim() != 2:
        raise ValueError(
            f"logits: expected shape (B,), (B, 1) or (B, C), got {tuple(logits.shape)}"
        )
    if logits.size(0) != target.numel():
        raise ValueError(
            f"logits have {logits.size(0)} rows but target has {target.numel()} entries"
        )
    n_classes = 2 if binary else logits.size(1)
    labels = target.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"target: labels must lie in [0, {n_classes}), got {labels.unique().tolist()}"
        )
    if class_weights is not None and class_weights.shape != (n_classes,):
        raise ValueError(
            f"class_weights: expected shape ({n_classes},), got {tuple(class_weights.shape)}"
        )
    if not binary:
        weight = None if class_weights is None else class_weights.to(logits.dtype)
        return F.cross_entropy(logits, labels, weight=weight)
    per_subject = F.binary_cross_entropy_with_logits(
        logits, labels.to(logits.dtype), reduction="none"
    )
    if class_weights is None:
        return per_subject.mean()
    w = class_weights.to(logits.dtype)[labels]
    return (w * per_subject).sum() / w.sum()


def gamma_posterior(
    mu: Tensor,
    logvar: Tensor,
    alpha0: float = 2.0,
    beta0: float = 1e-2,
    mu0: float = 0.0,
    lambda0: float = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""Eq. 4: closed-form Gamma posterior :math:`\mathcal{G}(\alpha_v, \beta_v)` of precision v.

    .. math::

        \alpha_v = 2\alpha_0 + 1, \qquad
        \beta_v = 2\beta_0 + \lambda_0 (\mu_s - \mu_0)^2 + \lambda_0 \sigma_s^2 .

    Args:
        mu: (M,) or (M, 1) posterior means :math:`\mu_s` of the node scores.
        logvar: same shape, :math:`\log \sigma_s^2`.
        alpha0, beta0, mu0, lambda0: Normal-Gamma prior (paper defaults 2, 1e-2, 0, 1).

    Returns:
        ``(alpha_v, beta_v)``, both shaped like ``mu`` (``alpha_v`` is constant).
    """
    alpha_v = torch.full_like(mu, 2.0 * alpha0 + 1.0)
    beta_v = 2.0 * beta0 + lambda0 * (mu - mu0) ** 2 + lambda0 * torch.exp(logvar)
    return alpha_v, beta_v


def sparsity_kl(
    mu: Tensor,
    logvar: Tensor,
    alpha_v: Tensor,
    beta_v: Tensor,
    mu0: float = 0.0,
    lambda0: float = 1.0,
) -> Tensor:
    r"""Sparsity term :math:`\mathbb{E}_{q(v|s)} KL(q(s|X) \| p(s|v))` of Eq. 5/8, up to constants.

    .. math::

        \mathrm{KL} = \tfrac12 \operatorname{mean}_i \big( \lambda_0 \mathbb{E}[v_i]
                      ((\mu_i - \mu_0)^2 + \sigma_i^2) - \log \sigma_i^2 \big),
        \qquad \mathbb{E}[v_i] = \alpha_{v,i} / \beta_{v,i},

    with :math:`\mathbb{E}[v]` treated as a constant (detached), as in the reference
    implementation: the gradient reaches :math:`\mu, \sigma` only through the bracket.

    Args:
        mu, logvar: (M,) or (M, 1) posterior means and log-variances of the node scores.
        alpha_v, beta_v: Gamma posterior from :func:`gamma_posterior`, same shape.
        mu0, lambda0: prior mean and precision scale.

    Returns:
        Scalar tensor (mean over the M nodes).
    """
    expected_v = (alpha_v / beta_v).detach()
    return 0.5 * torch.mean(lambda0 * expected_v * ((mu - mu0) ** 2 + torch.exp(logvar)) - logvar)


def reconstruction_mse(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean squared error :math:`\operatorname{mean}((\hat X - X)^2)`: the negative log of the
    Gaussian decoder likelihood of Eq. 6 up to the precision :math:`\tau` and constants.

    Args:
        pred: (M, d) reconstructed node features.
        target: (M, d) input features of the same nodes.

    Returns:
        Scalar tensor.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return F.mse_loss(pred, target)
