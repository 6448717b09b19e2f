"""The MRP modality model (radiograph.nn.longitudinal): every availability pattern gives a
finite prediction, the output ignores the order of time points, the ablation switches remove
what they name, missing cross-modal targets do not enter the loss."""

from __future__ import annotations

import itertools

import pytest
import torch

from radiograph.nn.longitudinal import ClinicalNet, MRPConfig, MRPModel

PHASES = 3
WIDTHS = (2, 1, 3)
AUX = (3, 0, 2)


def _model(modality: str = "mri", **changes) -> MRPModel:
    torch.manual_seed(0)
    config = MRPConfig(
        modality=modality,
        n_phases=PHASES,
        clinical_widths=WIDTHS,
        aux_classes=AUX,
        feature_dim=8,
        hidden=8,
        dropout=0.0,
        **changes,
    )
    return MRPModel(config).eval()


def _batch(patterns: list[tuple[int, ...]], dims: int = 3, size: int = 8):
    """One patient per pattern (the phase indices it has)."""
    t = max(1, max(len(p) for p in patterns))
    g = torch.Generator().manual_seed(1)
    images = torch.randn(len(patterns), t, 1, *(size,) * dims, generator=g)
    phase = torch.zeros(len(patterns), t, dtype=torch.long)
    mask = torch.zeros(len(patterns), t, dtype=torch.bool)
    for b, pattern in enumerate(patterns):
        phase[b, : len(pattern)] = torch.tensor(pattern, dtype=torch.long)
        mask[b, : len(pattern)] = True
    clinical = torch.randn(len(patterns), sum(WIDTHS), generator=g)
    return images, phase, mask, clinical


def test_every_availability_pattern_gives_a_finite_prediction():
    """All 2^3 subsets of phases (the empty one: clinical only) for MRI, and 1-2 views for
    mammography, in one batch."""
    subsets = [s for k in range(PHASES + 1) for s in itertools.combinations(range(PHASES), k)]
    for modality, dims in (("mri", 3), ("mammo", 2)):
        model = _model(modality)
        images, phase, mask, clinical = _batch(subsets, dims)
        out = model(images, phase, mask, clinical)
        assert out.logit.shape == (len(subsets),)
        assert torch.isfinite(out.logit).all() and torch.isfinite(out.image_logit).all()
        # a patient's prediction does not depend on who else is in the batch
        for b in (0, len(subsets) - 1):
            alone = model(images[b : b + 1], phase[b : b + 1], mask[b : b + 1], clinical[b : b + 1])
            torch.testing.assert_close(alone.logit, out.logit[b : b + 1], atol=1e-5, rtol=1e-5)


def test_output_does_not_depend_on_the_order_of_time_points():
    model = _model()
    images, phase, mask, clinical = _batch([(0, 1, 2), (0, 2)])
    out = model(images, phase, mask, clinical)
    for perm in ([2, 0, 1], [1, 2, 0]):
        permuted = model(images[:, perm], phase[:, perm], mask[:, perm], clinical)
        torch.testing.assert_close(permuted.logit, out.logit, atol=1e-5, rtol=1e-5)


def test_phase_embedding_tells_phases_apart_and_its_ablation_does_not():
    """The same volume labelled pre or post: different outputs with the embedding, identical
    without it (the ablation really removes the phase information)."""
    images, _, mask, clinical = _batch([(0,)])
    as_pre, as_post = torch.zeros(1, 1, dtype=torch.long), torch.full((1, 1), 2)
    full, ablated = _model(), _model(phase_embedding=False)
    assert not torch.allclose(
        full(images, as_pre, mask, clinical).logit, full(images, as_post, mask, clinical).logit
    )
    torch.testing.assert_close(
        ablated(images, as_pre, mask, clinical).logit,
        ablated(images, as_post, mask, clinical).logit,
    )


def test_cross_modal_ablation_removes_the_branch_from_the_loss():
    images, phase, mask, clinical = _batch([(0, 1), (2,)])
    label = torch.tensor([1.0, 0.0])
    targets = torch.tensor([[0.0, 0.5, 1.0], [2.0, -1.0, 0.0]])
    model = _model(cross_modal=False)
    out = model(images, phase, mask, clinical)
    assert out.aux == []
    expected = 10.0 * torch.nn.functional.binary_cross_entropy_with_logits(out.logit, label)
    torch.testing.assert_close(model.loss(out, label, targets), expected)


def test_loss_weights_and_missing_targets_masked():
    """Hand computation: 10 BCE(main) + 10 BCE(image) + 1 mean(CE, MSE, CE) where each term
    uses only its observed targets; a NaN target changes nothing but its own term."""
    images, phase, mask, clinical = _batch([(0, 1), (2,), (1,)])
    label = torch.tensor([1.0, 0.0, 1.0])
    targets = torch.tensor(
        [[0.0, 0.5, 1.0], [2.0, float("nan"), 0.0], [float("nan"), -1.0, float("nan")]]
    )
    model = _model()
    out = model(images, phase, mask, clinical)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ce = torch.nn.functional.cross_entropy
    terms = [
        ce(out.aux[0][:2], torch.tensor([0, 2])),
        ((out.aux[1][[0, 2]] - torch.tensor([0.5, -1.0])) ** 2).mean(),
        ce(out.aux[2][:2], torch.tensor([1, 0])),
    ]
    expected = (
        10 * bce(out.logit, label) + 10 * bce(out.image_logit, label) + torch.stack(terms).mean()
    )
    torch.testing.assert_close(model.loss(out, label, targets), expected)
    # changing a masked target does not change the loss
    other = targets.clone()
    other[1, 1] = float("nan")
    other[2, 0] = float("nan")
    torch.testing.assert_close(model.loss(out, label, other), expected)


def test_resnet_encoders_run_on_one_channel_inputs():
    """torchvision r3d_18 / resnet18 backbones, random init (no download)."""
    for modality, dims, size in (("mri", 3, 16), ("mammo", 2, 32)):
        model = _model(modality, encoder="resnet")
        images, phase, mask, clinical = _batch([(0,), (0, 2)], dims, size)
        assert torch.isfinite(model(images, phase, mask, clinical).logit).all()


def test_clinical_net_and_bad_inputs():
    assert ClinicalNet(WIDTHS)(torch.randn(4, sum(WIDTHS))).shape == (4,)
    with pytest.raises(ValueError, match="aux_classes"):
        MRPConfig(modality="mri", n_phases=2, aux_classes=(1,))
    with pytest.raises(ValueError, match="modality"):
        MRPConfig(modality="ct", n_phases=2)
    model = _model()
    images, phase, mask, clinical = _batch([(0,)])
    with pytest.raises(ValueError, match="clinical"):
        model(images, phase, mask, clinical[:, :2])
    with pytest.raises(ValueError, match="mask"):
        model(images, phase, mask.long(), clinical)
