"""The patch-encoder interface every 2D encoder in the registry implements."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


class EncoderError(ValueError):
    """An encoder cannot be built: unknown name, missing or mismatched weights file."""


class RandomWeightsWarning(UserWarning):
    """Features come from a randomly initialised encoder (``--random-weights``)."""


class PatchEncoder(torch.nn.Module):
    """A backbone plus the preprocessing it was trained with.

    Attributes:
        name: registry name, e.g. ``"uni"`` or ``"timm:resnet18"``.
        dim: feature dimension D of :meth:`forward`'s output.
        input_size: side S in pixels of the square input the backbone expects.
        mean, std: per-channel (R, G, B) normalisation applied to pixel values in [0, 1].
        weights_sha256: SHA-256 of the weights file, "" when randomly initialised.
        random_weights: True when the backbone was randomly initialised.
    """

    def __init__(
        self,
        name: str,
        backbone: torch.nn.Module,
        *,
        dim: int,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        weights_sha256: str = "",
        random_weights: bool = False,
    ):
        super().__init__()
        self.name = name
        self.backbone = backbone
        self.dim = int(dim)
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.weights_sha256 = weights_sha256
        self.random_weights = bool(random_weights)

    def preprocess(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Resize and normalise RGB tiles for the backbone.

        Args:
            tiles: uint8 (B, H, W, 3) RGB tiles, numpy or torch (any device).

        Returns:
            float32 (B, 3, S, S), contiguous, on the device of ``tiles`` (CPU for numpy),
            resized with antialiased bilinear interpolation when H or W differs from S, then
            normalised as ``(x / 255 - mean) / std``.
        """
        if isinstance(tiles, np.ndarray) and not tiles.flags.writeable:
            tiles = tiles.copy()
        x = torch.as_tensor(tiles)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(
                f"{self.name}: tiles must be uint8 (B, H, W, 3); got {x.dtype} {tuple(x.shape)}"
            )
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        size = self.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed tiles -> (B, dim) features."""
        out = self.backbone(x)
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise RuntimeError(
                f"{self.name}: backbone returned {tuple(out.shape)}, expected (B, {self.dim})"
            )
        return out

    def extra_repr(self) -> str:
        source = (
            "random weights"
            if self.random_weights
            else f"weights sha256 {self.weights_sha256[:12]}"
        )
        return f"name={self.name!r}, dim={self.dim}, input_size={self.input_size}, {source}"
