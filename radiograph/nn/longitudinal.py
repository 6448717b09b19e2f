"""The MRP response model (seeds/002, Gao et al. 2024, Methods "Model development").

One modality model (the paper's iMGrhpc for mammography, iMRrhpc for MRI) takes a patient's
images, each tagged with its treatment phase, and the clinical attributes:

- **image encoder**, shared by every image of the patient (the Siamese 3D ResNet-18 of
  iMRrhpc: baseline and follow-up volumes through the same weights): torchvision ``r3d_18`` or
  ``resnet18`` (1-channel input, random init or a local weights file), or a small 3-layer CNN
  (``encoder="small"``) that keeps the CPU study within its budget.
- **phase embedding**: the one-hot phase through Linear + ELU, *added* to each image feature
  (``f_t <- f_t + ELU(W onehot(phase_t))``), then a per-image Linear + ELU; the images are
  mean-pooled over the patient's present slots, so the output does not depend on the order in
  which time points are listed and any number of them (0 included) gives a prediction.
- **tabular encoder**: each clinical variable's encoded columns through its own Linear + ELU,
  concatenated, then a 2-layer MLP (Linear-ELU-Linear-ELU).
- **cross-modal branch**: from the pooled image feature alone, heads predicting each clinical
  attribute (cross-entropy over its levels, or squared error of a standardised number) and the
  response (image-branch BCE); missing targets are masked out of the loss.
- **response head**: Linear on [image feature, clinical feature].

Loss (:meth:`MRPModel.loss`): ``w_main * BCE(main) + w_image * BCE(image branch)
+ w_aux * mean_a(loss_a)``. The released MRP code weighs the main and the image-branch BCE
by 10 and the auxiliary attribute terms by far less; we use ``w_main = w_image = 10`` and
``w_aux = 1`` (the auxiliary mean over attributes, each term already O(1)), so the response
terms dominate and the attribute heads only shape the image features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Encoder = Literal["small", "resnet"]
Modality = Literal["mri", "mammo"]


@dataclass(frozen=True)
class MRPConfig:
    """One modality model's settings.

    Attributes:
        modality: ``"mri"`` (3D volumes, (1, D, H, W)) or ``"mammo"`` (2D images, (1, H, W)).
        n_phases: declared phases (the one-hot width of the phase embedding).
        clinical_widths: encoded columns of each clinical variable, in order (their sum is
            the width of the clinical input); empty: no clinical input.
        aux_classes: per clinical attribute predicted by the cross-modal branch, its number
            of classes (>= 2: cross-entropy) or 0 (a standardised number: squared error).
        encoder: ``"small"`` (3-layer CNN) or ``"resnet"`` (r3d_18 / resnet18).
        weights: local state dict of the torchvision backbone (``encoder="resnet"``), or None
            for random init. Never downloaded.
        feature_dim: width of the image feature after the encoder projection.
        clinical_dim: width of each variable's Linear + ELU embedding.
        hidden: output width of the tabular 2-layer MLP (paper: 256).
        phase_embedding: add the learned phase embedding (ablation: False).
        cross_modal: the cross-modal branch: attribute heads and image-branch response head
            (ablation: False leaves the main response head alone, as the paper's "w/o
            cross-modal knowledge predictor").
        w_main, w_image, w_aux: loss weights (module docstring).
        dropout: dropout before the response head.
    """

    modality: Modality
    n_phases: int
    clinical_widths: tuple[int, ...] = ()
    aux_classes: tuple[int, ...] = ()
    encoder: Encoder = "small"
    weights: Path | None = None
    feature_dim: int = 32
    clinical_dim: int = 8
    hidden: int = 32
    phase_embedding: bool = True
    cross_modal: bool = True
    w_main: float = 10.0
    w_image: float = 10.0
    w_aux: float = 1.0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.modality not in ("mri", "mammo"):
            raise ValueError(f"modality: must be 'mri' or 'mammo', got {self.modality!r}")
        if self.encoder not in ("small", "resnet"):
            raise ValueError(f"encoder: must be 'small' or 'resnet', got {self.encoder!r}")
        if self.n_phases < 1:
            raise ValueError(f"n_phases: must be >= 1, got {self.n_phases}")
        if any(w < 1 for w in self.clinical_widths):
            raise ValueError(f"clinical_widths: each must be >= 1, got {self.clinical_widths}")
        if any(k == 1 or k < 0 for k in self.aux_classes):
            raise ValueError(
                f"aux_classes: each must be 0 (a number) or >= 2 classes, got {self.aux_classes}"
            )
        for name in ("feature_dim", "clinical_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("w_main", "w_image", "w_aux"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.weights is not None and self.encoder != "resnet":
            raise ValueError("weights: only the 'resnet' encoder loads a weights file")

    @property
    def spatial_dims(self) -> int:
        """3 for MRI volumes, 2 for mammograms."""
        return 3 if self.modality == "mri" else 2


def _small_cnn(dims: int, width: int) -> nn.Module:
    """Three stride-2 conv + ReLU blocks and global average pooling: (N, 1, *S) -> (N, width)."""
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    pool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(
        conv(1, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        conv(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        conv(16, width, 3, stride=2, padding=1),
        nn.ReLU(),
        pool,
        nn.Flatten(),
    )


class _ResNetBackbone(nn.Module):
    """torchvision ``r3d_18`` (3D) or ``resnet18`` (2D) without its classifier: (N, 1, *S) ->
    (N, 512). The 2D stem takes one channel (a loaded RGB kernel is summed over its input
    channels); the 3D stem keeps its 3 channels and gets the grey volume repeated."""

    def __init__(self, dims: int, weights: Path | None):
        super().__init__()
        from torchvision.models import resnet18
        from torchvision.models.video import r3d_18

        self.dims = dims
        self.net = r3d_18(weights=None) if dims == 3 else resnet18(weights=None)
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        if dims == 2:
            old = self.net.conv1
            new = nn.Conv2d(
                1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False
            )
            with torch.no_grad():
                new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
            self.net.conv1 = new
        self.net.fc = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.dims == 3:
            x = x.expand(-1, 3, *x.shape[2:])
        return self.net(x)


class TabularEncoder(nn.Module):
    """Per-variable Linear + ELU, concatenated, 2-layer MLP (Methods, "rhpc" model):
    (B, sum(widths)) -> (B, hidden)."""

    def __init__(self, widths: tuple[int, ...], dim: int, hidden: int):
        super().__init__()
        self.widths = widths
        self.embed = nn.ModuleList(nn.Sequential(nn.Linear(w, dim), nn.ELU()) for w in widths)
        self.mlp = nn.Sequential(
            nn.Linear(dim * len(widths), hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU()
        )

    def forward(self, x: Tensor) -> Tensor:
        parts = torch.split(x, list(self.widths), dim=1)
        return self.mlp(torch.cat([e(p) for e, p in zip(self.embed, parts)], dim=1))


@dataclass
class MRPOutput:
    """Outputs of :meth:`MRPModel.forward` for a batch of B patients.

    Attributes:
        logit: (B,) response logit of the main head (image + clinical).
        image_logit: (B,) response logit of the image branch.
        aux: one tensor per clinical attribute: (B, k) logits or (B,) predicted number.
        image_feature: (B, feature_dim) pooled image feature (zeros without images).
    """

    logit: Tensor
    image_logit: Tensor
    aux: list[Tensor]
    image_feature: Tensor


class MRPModel(nn.Module):
    """One MRP modality model (module docstring); ``forward(images, phase, mask, clinical)``."""

    def __init__(self, config: MRPConfig):
        super().__init__()
        self.config = config
        c = config
        if c.encoder == "small":
            self.encoder = nn.Sequential(_small_cnn(c.spatial_dims, c.feature_dim))
        else:
            self.encoder = nn.Sequential(
                _ResNetBackbone(c.spatial_dims, c.weights), nn.Linear(512, c.feature_dim)
            )
        self.phase = (
            nn.Sequential(nn.Linear(c.n_phases, c.feature_dim), nn.ELU())
            if c.phase_embedding
            else None
        )
        self.per_image = nn.Sequential(nn.Linear(c.feature_dim, c.feature_dim), nn.ELU())
        self.tabular = (
            TabularEncoder(c.clinical_widths, c.clinical_dim, c.hidden)
            if c.clinical_widths
            else None
        )
        width = c.feature_dim + (c.hidden if self.tabular is not None else 0)
        self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(width, 1))
        self.image_head = nn.Linear(c.feature_dim, 1)
        self.aux_heads = nn.ModuleList(
            nn.Linear(c.feature_dim, max(k, 1)) for k in (c.aux_classes if c.cross_modal else ())
        )

    def encode_images(self, images: Tensor, phase: Tensor, mask: Tensor) -> Tensor:
        """Pooled image feature (B, feature_dim).

        Args:
            images: (B, T, 1, *S) float images, T slots per patient (absent slots any value).
            phase: (B, T) long phase index of each slot, in [0, n_phases).
            mask: (B, T) bool, True where the slot holds an image.
        """
        b, t = mask.shape
        feature = images.new_zeros(b, t, self.config.feature_dim)
        if mask.any():
            present = self.encoder(images[mask])
            if self.phase is not None:
                onehot = F.one_hot(phase[mask], self.config.n_phases).to(present.dtype)
                present = present + self.phase(onehot)
            # under autocast the per-image feature is bf16 / fp16; the pooled one stays float32
            feature = feature.index_put((mask,), self.per_image(present).to(feature.dtype))
        count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(feature.dtype)
        return feature.sum(dim=1) / count

    def forward(
        self, images: Tensor, phase: Tensor, mask: Tensor, clinical: Tensor | None = None
    ) -> MRPOutput:
        """Response and auxiliary predictions for B patients (see :meth:`encode_images`).

        Args:
            clinical: (B, sum(clinical_widths)) encoded clinical attributes (None when the
                config has no clinical input).
        """
        if mask.dtype != torch.bool or mask.shape != phase.shape or images.shape[:2] != mask.shape:
            raise ValueError(
                f"mask: must be a bool (B, T) tensor matching images "
                f"{tuple(images.shape[:2])} and phase {tuple(phase.shape)}"
            )
        h_img = self.encode_images(images, phase, mask)
        parts = [h_img]
        if self.tabular is not None:
            if clinical is None or clinical.shape != (
                mask.shape[0],
                sum(self.config.clinical_widths),
            ):
                raise ValueError(
                    f"clinical: expected shape ({mask.shape[0]}, "
                    f"{sum(self.config.clinical_widths)}), got "
                    f"{None if clinical is None else tuple(clinical.shape)}"
                )
            parts.append(self.tabular(clinical))
        logit = self.head(torch.cat(parts, dim=1)).squeeze(1)
        aux = [
            h(h_img) if k else h(h_img).squeeze(1)
            for h, k in zip(self.aux_heads, self.config.aux_classes)
        ]
        return MRPOutput(logit, self.image_head(h_img).squeeze(1), aux, h_img)

    def loss(self, out: MRPOutput, label: Tensor, aux_targets: Tensor | None = None) -> Tensor:
        """``w_main BCE(logit) + w_image BCE(image_logit) + w_aux mean_a L_a`` (scalar; the
        last two only with ``cross_modal``), in float32 whatever the outputs' dtype (outputs
        of an autocast forward pass are bf16 / fp16).

        Args:
            label: (B,) 0/1 response.
            aux_targets: (B, A) float targets, NaN where missing: a class index for a
                categorical attribute, a standardised number otherwise. A term with no
                observed target in the batch is left out of the mean.
        """
        c = self.config
        y = label.float()
        total = c.w_main * F.binary_cross_entropy_with_logits(out.logit.float(), y)
        if c.cross_modal:
            total = total + c.w_image * F.binary_cross_entropy_with_logits(
                out.image_logit.float(), y
            )
        if not out.aux:
            return total
        if aux_targets is None or aux_targets.shape != (y.shape[0], len(out.aux)):
            raise ValueError(f"aux_targets: expected shape ({y.shape[0]}, {len(out.aux)})")
        terms = []
        for a, (pred, k) in enumerate(zip(out.aux, c.aux_classes)):
            pred, target = pred.float(), aux_targets[:, a]
            seen = ~torch.isnan(target)
            if not seen.any():
                continue
            if k:
                terms.append(F.cross_entropy(pred[seen], target[seen].long()))
            else:
                terms.append(F.mse_loss(pred[seen], target[seen].float()))
        if terms:
            total = total + c.w_aux * torch.stack(terms).mean()
        return total


class ClinicalNet(nn.Module):
    """The clinical-only comparator (paper: "rhpc"): :class:`TabularEncoder` + Linear,
    (B, sum(widths)) -> (B,) logit."""

    def __init__(self, widths: tuple[int, ...], dim: int = 8, hidden: int = 32):
        super().__init__()
        if not widths:
            raise ValueError("widths: the clinical-only model needs >= 1 clinical variable")
        self.tabular = TabularEncoder(widths, dim, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, clinical: Tensor) -> Tensor:
        return self.head(self.tabular(clinical)).squeeze(1)
