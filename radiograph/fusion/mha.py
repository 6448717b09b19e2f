"""Multi-head-attention fusion of modalities (seeds/000, "MHA_CHP", Fig. 2b).

One token per modality: modality m's feature vector x_m (its selected features, z-scored on
training rows) is projected to ``d_model`` by its own linear layer plus a learned modality
embedding. The tokens of a subject pass through ``layers`` transformer encoder layers
(multi-head self-attention, Vaswani et al. 2017) with a key padding mask that hides absent
modalities; the present tokens are mean-pooled and a linear layer gives the logit. Training:
binary cross-entropy, Adam, full batch, ``epochs`` steps, and modality dropout (each present
token of a training subject is hidden with probability ``modality_dropout``, at least one kept)
so that the model has seen every availability pattern. A subject with at least one modality
gets a prediction.

The paper leaves sizes to its supplement; defaults (:class:`MHAConfig`): 64-d tokens, 4 heads,
1 layer, dropout 0.1, 300 epochs, learning rate 1e-3, weight decay 1e-4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class MHAConfig:
    """Sizes and training of :class:`MHAFusion` (see the module docstring)."""

    d_model: int = 64
    heads: int = 4
    layers: int = 1
    dropout: float = 0.1
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    modality_dropout: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.d_model < 1 or self.heads < 1 or self.d_model % self.heads:
            raise ValueError(
                f"d_model, heads: d_model ({self.d_model}) must be a positive "
                f"multiple of heads ({self.heads})"
            )
        if self.layers < 1 or self.epochs < 1:
            raise ValueError(f"layers, epochs: must be >= 1, got {self.layers}, {self.epochs}")
        if not 0 <= self.modality_dropout < 1 or not 0 <= self.dropout < 1:
            raise ValueError("dropout, modality_dropout: must lie in [0, 1)")


class MHAFusion(nn.Module):
    """Tokens -> transformer encoder with padding mask -> masked mean pool -> logit.

    Args:
        dims: input feature count of each modality.
        config: sizes.
    """

    def __init__(self, dims: Sequence[int], config: MHAConfig):
        super().__init__()
        self.project = nn.ModuleList(nn.Linear(d, config.d_model) for d in dims)
        self.modality = nn.Parameter(torch.zeros(len(dims), config.d_model))
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.heads,
            dim_feedforward=2 * config.d_model,
            dropout=config.dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, xs: Sequence[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """``xs[m]``: (B, d_m) (any values where absent); ``present``: bool (B, M) with at
        least one True per row. Returns logits (B,)."""
        tokens = torch.stack([p(x) for p, x in zip(self.project, xs)], dim=1) + self.modality
        h = self.encoder(tokens, src_key_padding_mask=~present)
        w = present.to(h.dtype).unsqueeze(-1)
        return self.head((h * w).sum(1) / w.sum(1)).squeeze(-1)


def _check(xs: Sequence[np.ndarray], present: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    present = np.asarray(present, dtype=bool)
    if present.ndim != 2 or present.shape[1] != len(xs):
        raise ValueError(f"present: expected (n, {len(xs)}), got {present.shape}")
    if not present.any(axis=1).all():
        raise ValueError("present: a subject has no modality at all")
    out = []
    for m, x in enumerate(xs):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(present):
            raise ValueError(f"xs[{m}]: expected ({len(present)}, d), got {x.shape}")
        out.append(np.where(present[:, [m]], np.nan_to_num(x), 0.0).astype(np.float32))
    return out, present


@dataclass
class MHAClassifier:
    """Fit/predict wrapper: per-modality z-scoring on present training rows, then
    :class:`MHAFusion` trained as in the module docstring."""

    config: MHAConfig = MHAConfig()

    def fit(self, xs: Sequence[np.ndarray], present: np.ndarray, y: np.ndarray) -> MHAClassifier:
        xs, present = _check(xs, present)
        y = np.asarray(y, dtype=np.float32)
        if y.shape != (len(present),) or set(np.unique(y).tolist()) != {0.0, 1.0}:
            raise ValueError("y: needs shape (n,) with both classes 0 and 1")
        self.mean_ = [
            x[p].mean(0) if p.any() else np.zeros(x.shape[1], np.float32)
            for x, p in zip(xs, present.T)
        ]
        self.scale_ = [
            np.where(s > 0, s, 1.0)
            for s in (
                x[p].std(0) if p.any() else np.ones(x.shape[1], np.float32)
                for x, p in zip(xs, present.T)
            )
        ]
        gen = torch.Generator().manual_seed(self.config.seed)
        torch.manual_seed(self.config.seed)
        self.model_ = MHAFusion([x.shape[1] for x in xs], self.config)
        opt = torch.optim.Adam(
            self.model_.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        tx, tp = self._tensors(xs, present)
        ty = torch.from_numpy(y)
        loss_fn = nn.BCEWithLogitsLoss()
        self.model_.train()
        for _ in range(self.config.epochs):
            keep = torch.rand(tp.shape, generator=gen) >= self.config.modality_dropout
            mask = tp & keep
            empty = ~mask.any(1)
            mask[empty] = tp[empty]
            opt.zero_grad()
            loss_fn(self.model_(tx, mask), ty).backward()
            opt.step()
        self.model_.eval()
        return self

    def _tensors(
        self, xs: list[np.ndarray], present: np.ndarray
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        z = [
            torch.from_numpy(np.where(p[:, None], (x - m) / s, 0.0).astype(np.float32))
            for x, p, m, s in zip(xs, present.T, self.mean_, self.scale_)
        ]
        return z, torch.from_numpy(present)

    @torch.no_grad()
    def predict_proba(self, xs: Sequence[np.ndarray], present: np.ndarray) -> np.ndarray:
        """(n,) P(y = 1) for every subject with at least one modality."""
        xs, present = _check(xs, present)
        tx, tp = self._tensors(xs, present)
        return torch.sigmoid(self.model_(tx, tp)).double().numpy()
