"""cox_nll and cross_entropy_loss against lifelines, float64 hand computations and invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
from sksurv.datasets import load_whas500

from radiograph.nn.losses import cox_nll, cross_entropy_loss


def _hand_log_lik(risk: np.ndarray, time: np.ndarray, event: np.ndarray, ties: str) -> float:
    """Partial log-likelihood by an explicit O(n^2) loop over the distinct event times (float64)."""
    total = 0.0
    for t in np.unique(time[event]):
        tied = np.flatnonzero((time == t) & event)
        at_risk = [j for j in range(len(time)) if time[j] >= t]
        risk_sum = sum(np.exp(risk[j]) for j in at_risk)
        tie_sum = sum(np.exp(risk[i]) for i in tied)
        d = len(tied)
        for rank, i in enumerate(tied):
            frac = rank / d if ties == "efron" else 0.0
            total += risk[i] - np.log(risk_sum - frac * tie_sum)
    return total


def _tied_sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    risk = torch.tensor(rng.normal(size=n), dtype=torch.float64)
    time = torch.tensor(rng.integers(1, max(2, n // 4), size=n).astype(float))
    event = torch.tensor(rng.random(n) < 0.6)
    event[0] = True
    return risk, time, event


def test_efron_matches_lifelines_on_rossi():
    """lifelines' maximised Efron log-likelihood equals -cox_nll * n_events at its coefficients.

    lifelines standardises covariates internally but reports ``params_`` in the original units;
    the centring only adds a constant to every risk, which cancels in the partial likelihood.
    """
    data = load_rossi()
    fitter = CoxPHFitter().fit(data, duration_col="week", event_col="arrest")
    covariates = data[fitter.params_.index].to_numpy(dtype=float)
    risk = torch.tensor(covariates @ fitter.params_.to_numpy())
    time = torch.tensor(data["week"].to_numpy(dtype=float))
    event = torch.tensor(data["arrest"].to_numpy())
    n_events = int(event.sum())

    efron = -cox_nll(risk, time, event, ties="efron").item() * n_events
    breslow = -cox_nll(risk, time, event, ties="breslow").item() * n_events
    assert efron == pytest.approx(fitter.log_likelihood_, rel=1e-9)
    # Rossi has many tied weeks: the Breslow likelihood is measurably different.
    assert abs(breslow - fitter.log_likelihood_) > 0.1


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_matches_hand_loop_on_whas500(ties):
    """float64 O(n^2) loop on WHAS500 (tied follow-up times) agrees to 1e-6 relative."""
    features, outcome = load_whas500()
    numeric = features[["age", "bmi", "diasbp", "hr", "los", "sysbp"]].to_numpy(dtype=float)
    numeric = (numeric - numeric.mean(0)) / numeric.std(0)
    coef = np.random.default_rng(7).normal(scale=0.5, size=numeric.shape[1])
    risk = numeric @ coef
    time = outcome["lenfol"].astype(float)
    event = outcome["fstat"].astype(bool)
    event_times = time[event]
    assert len(np.unique(event_times)) < len(event_times), "the check needs tied event times"

    expected = -_hand_log_lik(risk, time, event, ties) / event.sum()
    got = cox_nll(torch.tensor(risk), torch.tensor(time), torch.tensor(event), ties=ties).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Ties in `time` detected")
@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_matches_torchsurv(ties):
    """Same value as torchsurv's implementation (summed over events: its mean is per distinct time).

    torchsurv accumulates its tie numerators in float32 even for float64 input, hence 1e-6.
    """
    torchsurv_cox = pytest.importorskip("torchsurv.loss.cox")
    risk, time, event = _tied_sample(300, seed=3)
    peer = torchsurv_cox.neg_partial_log_likelihood(
        risk, event, time, ties_method=ties, reduction="sum"
    )
    got = cox_nll(risk, time, event, ties=ties) * event.sum()
    assert got.item() == pytest.approx(peer.item(), rel=1e-6)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_gradient_matches_finite_differences(ties):
    risk, time, event = _tied_sample(14, seed=5)
    risk.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: cox_nll(r, time, event, ties=ties), (risk,))


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_invariant_to_subject_order(ties):
    risk, time, event = _tied_sample(200, seed=11)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    a = cox_nll(risk, time, event, ties=ties)
    b = cox_nll(risk[perm], time[perm], event[perm], ties=ties)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
def test_stable_for_risks_of_1e4(ties):
    """Adding +-1e4 to every risk leaves the loss unchanged (float64) and never gives NaN/inf."""
    risk, time, event = _tied_sample(100, seed=13)
    base = cox_nll(risk, time, event, ties=ties).item()
    for shift in (1e4, -1e4):
        assert cox_nll(risk + shift, time, event, ties=ties).item() == pytest.approx(base, rel=1e-9)

    extreme = torch.tensor([1e4, -1e4, 0.0, 5e3, -5e3, 1e4, -1e4, 2.0], requires_grad=True)
    time = torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0])
    event = torch.tensor([1, 1, 1, 0, 1, 1, 0, 1])
    loss = cox_nll(extreme, time, event, ties=ties)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all()


def test_no_event_returns_connected_zero():
    risk = torch.randn(6, requires_grad=True)
    loss = cox_nll(risk, torch.arange(6.0), torch.zeros(6, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert risk.grad is not None and torch.equal(risk.grad, torch.zeros(6))


def test_accepts_column_vectors_and_rejects_bad_input():
    risk, time, event = _tied_sample(20, seed=1)
    assert cox_nll(risk[:, None], time[:, None], event[:, None]).item() == pytest.approx(
        cox_nll(risk, time, event).item(), rel=1e-14
    )
    with pytest.raises(ValueError, match="same length"):
        cox_nll(risk, time[:-1], event)
    with pytest.raises(ValueError, match="ties"):
        cox_nll(risk, time, event, ties="exact")
    with pytest.raises(ValueError, match="risk"):
        cox_nll(risk.reshape(4, 5), time, event)
    with pytest.raises(ValueError, match="NaN"):
        cox_nll(risk, torch.where(event, time, torch.nan), event)


def test_binary_cross_entropy_matches_hand_computation():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=50)
    target = rng.integers(0, 2, size=50)
    weights = np.array([0.3, 1.7])
    p = 1.0 / (1.0 + np.exp(-logits))
    per = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    expected_plain = per.mean()
    expected_weighted = (weights[target] * per).sum() / weights[target].sum()

    lt, tt = torch.tensor(logits), torch.tensor(target)
    assert cross_entropy_loss(lt, tt).item() == pytest.approx(expected_plain, rel=1e-12)
    assert cross_entropy_loss(lt[:, None], tt).item() == pytest.approx(expected_plain, rel=1e-12)
    assert cross_entropy_loss(lt, tt, torch.tensor(weights)).item() == pytest.approx(
        expected_weighted, rel=1e-12
    )


def test_multiclass_cross_entropy_matches_hand_computation():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(40, 4))
    target = rng.integers(0, 4, size=40)
    weights = np.array([1.0, 0.5, 2.0, 1.5])
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    per = -log_softmax[np.arange(40), target]
    expected = (weights[target] * per).sum() / weights[target].sum()
    got = cross_entropy_loss(torch.tensor(logits), torch.tensor(target), torch.tensor(weights))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="labels"):
        cross_entropy_loss(torch.tensor(logits), torch.full((40,), 4))
