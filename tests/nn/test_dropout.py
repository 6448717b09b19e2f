"""FastDropout: the distribution and scaling of ``torch.nn.Dropout``, reproducible by seed."""

from __future__ import annotations

import pytest
import torch

from radiograph.nn.base import FastDropout


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_keeps_each_entry_with_probability_one_minus_p_scaled(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000, dtype=torch.float64) + 0.5  # no zero entries
    out = FastDropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    # zeroed fraction within 5 binomial standard errors of p
    assert abs((~kept).double().mean().item() - p) < 5 * (p * (1 - p) / n) ** 0.5
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    # entries are dropped independently: neighbouring entries' masks are uncorrelated
    flat = kept.double().flatten()
    correlation = torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()
    assert abs(correlation) < 5 / n**0.5


def test_gradient_is_the_scaled_mask():
    torch.manual_seed(1)
    x = torch.randn(200, 30, dtype=torch.float64).requires_grad_()
    out = FastDropout(0.5).train()(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(grad, (out != 0).double() * 2.0)


def test_evaluation_mode_and_edge_rates():
    x = torch.randn(50, 8)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.count_nonzero(FastDropout(1.0).train()(x)) == 0


def test_same_seed_same_mask():
    x = torch.ones(300, 40)
    masks = []
    for _ in range(2):
        torch.manual_seed(7)
        masks.append(FastDropout(0.3).train()(x))
    assert torch.equal(masks[0], masks[1])
