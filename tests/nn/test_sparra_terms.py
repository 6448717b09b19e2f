"""SPARRA loss terms (Eq. 4, the KL term of Eq. 8, the MSE of Eq. 6) vs float64 hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radiograph.nn.losses import gamma_posterior, reconstruction_mse, sparsity_kl

PRIOR = {"alpha0": 1.5, "beta0": 0.2, "mu0": 0.3, "lambda0": 2.5}


def _sample(n: int = 25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(scale=2.0, size=n)


def test_gamma_posterior_is_eq4():
    mu, logvar = _sample()
    alpha_v, beta_v = gamma_posterior(torch.tensor(mu), torch.tensor(logvar), **PRIOR)
    expected_alpha = 2 * PRIOR["alpha0"] + 1
    expected_beta = (
        2 * PRIOR["beta0"]
        + PRIOR["lambda0"] * (mu - PRIOR["mu0"]) ** 2
        + PRIOR["lambda0"] * np.exp(logvar)
    )
    np.testing.assert_allclose(alpha_v.numpy(), np.full_like(mu, expected_alpha), rtol=1e-14)
    np.testing.assert_allclose(beta_v.numpy(), expected_beta, rtol=1e-14)


def test_gamma_posterior_paper_defaults():
    alpha_v, beta_v = gamma_posterior(
        torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, np.log(0.5)])
    )
    np.testing.assert_allclose(alpha_v.numpy(), [5.0, 5.0])
    np.testing.assert_allclose(beta_v.numpy(), [0.02 + 1.0, 0.02 + 1.0 + 0.5], rtol=1e-14)


def test_sparsity_kl_value_and_detached_precision():
    """Value 0.5 mean(lambda0 E[v] ((mu - mu0)^2 + sigma^2) - log sigma^2); no gradient via E[v]."""
    mu_np, logvar_np = _sample(seed=1)
    mu = torch.tensor(mu_np, requires_grad=True)
    logvar = torch.tensor(logvar_np, requires_grad=True)
    alpha_v, beta_v = gamma_posterior(mu, logvar, **PRIOR)
    kl = sparsity_kl(mu, logvar, alpha_v, beta_v, PRIOR["mu0"], PRIOR["lambda0"])

    lam, m0 = PRIOR["lambda0"], PRIOR["mu0"]
    var = np.exp(logvar_np)
    e_v = (2 * PRIOR["alpha0"] + 1) / (2 * PRIOR["beta0"] + lam * (mu_np - m0) ** 2 + lam * var)
    expected = 0.5 * np.mean(lam * e_v * ((mu_np - m0) ** 2 + var) - logvar_np)
    assert kl.item() == pytest.approx(expected, rel=1e-12)

    kl.backward()
    n = len(mu_np)
    np.testing.assert_allclose(mu.grad.numpy(), lam * e_v * (mu_np - m0) / n, rtol=1e-12)
    np.testing.assert_allclose(logvar.grad.numpy(), 0.5 * (lam * e_v * var - 1.0) / n, rtol=1e-12)


def test_reconstruction_mse():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    got = reconstruction_mse(torch.tensor(pred), torch.tensor(target))
    assert got.item() == pytest.approx(np.mean((pred - target) ** 2), rel=1e-14)
    with pytest.raises(ValueError, match="shape"):
        reconstruction_mse(torch.tensor(pred), torch.tensor(target[:, :4]))
