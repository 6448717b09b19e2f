"""3D vision transformers whose output tokens keep the volume's spatial layout.

A :class:`ViT3D` cuts a (C, D, H, W) volume into non-overlapping 3D patches (a strided
``Conv3d``), adds a learned position embedding per patch, runs timm transformer ``Block``s and
a final LayerNorm, and returns one token per patch, in row-major order over the patch grid
(z slowest, x fastest). Token ``i`` therefore describes the voxel box
:meth:`ViT3D.token_boxes` ``[i]``, which is how radiology units get their features back.

Registry:

* ``"segvol-vit"``: SegVol's image encoder (MONAI ``ViT``, ViT-B: 12 blocks, 768-d, 12 heads,
  input 32 x 256 x 256 voxels (z, y, x), patches 4 x 16 x 16, 2048 tokens, no qkv bias).
  Weights: SegVol's released checkpoints (``ViT_pretrain.ckpt``: keys ``model.encoder.*``, or
  the full SegVol model: keys ``*image_encoder.*``); MONAI key names are mapped to ours by
  :func:`monai_vit_to_vit3d`.
* ``"vit3d-tiny"``: a small ViT (4 blocks, 192-d, input 32 x 64 x 64, patches 8^3, 256 tokens)
  for CPU demos and tests; weights are a state dict of this module.

Weights always come from a local file; ``random_weights=True`` gives a seeded random encoder.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from timm.models.vision_transformer import Block
from torch import nn

from radiograph.encoders.base import EncoderError, RandomWeightsWarning
from radiograph.encoders.registry import load_matching_state, read_state_dict, strip_wrappers
from radiograph.io.features import file_sha256

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class VolumeEncoderSpec:
    """Architecture of a registered 3D encoder (sizes in voxels, (z, y, x) order)."""

    img_size: Triple
    patch_size: Triple
    dim: int
    depth: int
    num_heads: int
    weights_hint: str
    mlp_ratio: float = 4.0
    in_chans: int = 1
    qkv_bias: bool = False


VOLUME_ENCODERS: dict[str, VolumeEncoderSpec] = {
    "segvol-vit": VolumeEncoderSpec(
        img_size=(32, 256, 256),
        patch_size=(4, 16, 16),
        dim=768,
        depth=12,
        num_heads=12,
        weights_hint="SegVol ViT checkpoint (ViT_pretrain.ckpt or SegVol_v1.pth from "
        "huggingface.co/BAAI/SegVol)",
    ),
    "vit3d-tiny": VolumeEncoderSpec(
        img_size=(32, 64, 64),
        patch_size=(8, 8, 8),
        dim=192,
        depth=4,
        num_heads=3,
        weights_hint="state dict saved from build_volume_encoder('vit3d-tiny')",
    ),
}


class ViT3D(nn.Module):
    """A plain 3D ViT returning one token per patch.

    Attributes:
        name: registry name.
        dim: token dimension.
        img_size: (z, y, x) input size in voxels.
        patch_size: (z, y, x) patch size in voxels.
        grid: (z, y, x) number of patches along each axis.
        weights_sha256: SHA-256 of the weights file ("" for random weights).
        random_weights: True when randomly initialised.
    """

    def __init__(
        self,
        *,
        img_size: Sequence[int],
        patch_size: Sequence[int],
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        in_chans: int = 1,
        qkv_bias: bool = False,
        name: str = "vit3d",
    ):
        super().__init__()
        self.name = name
        self.img_size: Triple = tuple(int(s) for s in img_size)  # type: ignore[assignment]
        self.patch_size: Triple = tuple(int(p) for p in patch_size)  # type: ignore[assignment]
        if any(s % p for s, p in zip(self.img_size, self.patch_size)):
            raise ValueError(
                f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}"
            )
        self.grid: Triple = tuple(  # type: ignore[assignment]
            s // p for s, p in zip(self.img_size, self.patch_size)
        )
        self.dim = int(dim)
        self.in_chans = int(in_chans)
        self.weights_sha256 = ""
        self.random_weights = False
        self.patch_embed = nn.Conv3d(
            in_chans, dim, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, dim))
        self.blocks = nn.ModuleList(
            [
                Block(
                    dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=nn.LayerNorm
                )
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def num_tokens(self) -> int:
        return int(math.prod(self.grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) volumes of ``img_size`` -> (B, num_tokens, dim) tokens."""
        if x.ndim != 5 or tuple(x.shape[1:]) != (self.in_chans, *self.img_size):
            raise ValueError(
                f"{self.name}: input must be (B, {self.in_chans}, "
                f"{', '.join(map(str, self.img_size))}); got {tuple(x.shape)}"
            )
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def token_boxes(self, offset: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """int64 (num_tokens, 2, 3): voxel box [start, stop) of each token, (z, y, x).

        Args:
            offset: voxel index (z, y, x) of the input window's first voxel in the volume.
        """
        gz, gy, gx = np.meshgrid(*(np.arange(g) for g in self.grid), indexing="ij")
        start = np.stack([gz.ravel(), gy.ravel(), gx.ravel()], axis=1) * np.array(self.patch_size)
        start = start + np.asarray(offset, dtype=np.int64)
        return np.stack([start, start + np.array(self.patch_size)], axis=1).astype(np.int64)

    def token_centres_physical(
        self, reference: sitk.Image, offset: Sequence[int] = (0, 0, 0)
    ) -> np.ndarray:
        """float64 (num_tokens, 3): physical centre (mm, (x, y, z)) of each token's box.

        Args:
            reference: an image with the volume's grid (spacing, origin, direction).
            offset: voxel index (z, y, x) of the input window's first voxel in that grid.
        """
        boxes = self.token_boxes(offset)
        centre_zyx = boxes[:, 0] + (boxes[:, 1] - boxes[:, 0] - 1) / 2.0
        spacing = np.array(reference.GetSpacing())
        direction = np.array(reference.GetDirection()).reshape(3, 3)
        return np.array(reference.GetOrigin()) + (centre_zyx[:, ::-1] * spacing) @ direction.T

    def extra_repr(self) -> str:
        source = (
            "random weights"
            if self.random_weights
            else f"weights sha256 {self.weights_sha256[:12]}"
        )
        return (
            f"name={self.name!r}, img_size={self.img_size}, patch_size={self.patch_size}, "
            f"dim={self.dim}, {source}"
        )


def available_volume_encoders() -> list[str]:
    """Names accepted by :func:`build_volume_encoder`."""
    return sorted(VOLUME_ENCODERS)


def build_volume_encoder(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    random_weights: bool = False,
    seed: int = 0,
) -> ViT3D:
    """Build a registered 3D encoder in eval mode, with weights from a local file.

    Args:
        name: a name from :func:`available_volume_encoders`.
        weights: checkpoint file (native state dict, or SegVol / MONAI ViT keys).
        random_weights: initialise randomly (seeded by ``seed``) instead.
        seed: seed of the random initialisation.

    Raises:
        EncoderError: unknown name; neither or both of weights / random_weights; a missing,
            unreadable or mismatched weights file.
    """
    if name not in VOLUME_ENCODERS:
        raise EncoderError(
            f"unknown 3D encoder {name!r}; choose one of {', '.join(available_volume_encoders())}"
        )
    spec = VOLUME_ENCODERS[name]
    if weights is not None and random_weights:
        raise EncoderError(f"encoder {name!r}: give either --weights or --random-weights, not both")
    if weights is None and not random_weights:
        raise EncoderError(
            f"encoder {name!r} needs weights: pass --weights PATH to the "
            f"{spec.weights_hint}, or --random-weights for a randomly initialised "
            "encoder (features without meaning)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViT3D(
            img_size=spec.img_size,
            patch_size=spec.patch_size,
            dim=spec.dim,
            depth=spec.depth,
            num_heads=spec.num_heads,
            mlp_ratio=spec.mlp_ratio,
            in_chans=spec.in_chans,
            qkv_bias=spec.qkv_bias,
            name=name,
        )
    if random_weights:
        warnings.warn(
            f"encoder {name!r} is randomly initialised (seed {seed}): its features carry "
            "no pretrained knowledge",
            RandomWeightsWarning,
            stacklevel=2,
        )
        model.random_weights = True
    else:
        load_volume_weights(model, weights, hint=spec.weights_hint)  # type: ignore[arg-type]
    return model.eval()


def load_volume_weights(model: ViT3D, path: str | os.PathLike, *, hint: str = "") -> None:
    """Load a checkpoint into ``model``: native keys, or SegVol / MONAI ``ViT`` keys.

    Every key and shape must match (after :func:`monai_vit_to_vit3d`); sets
    ``model.weights_sha256``.

    Raises:
        EncoderError: the file is missing or unreadable, or names one line of what differs.
    """
    path = Path(path)
    hint = hint or "checkpoint of this architecture"
    if not path.is_file():
        raise EncoderError(
            f"encoder {model.name!r}: weights file not found: {path} "
            f"(pass --weights with the path of the {hint})"
        )
    state = {strip_wrappers(k): v for k, v in read_state_dict(path, model.name).items()}
    state = monai_vit_to_vit3d(state, model)
    load_matching_state(model, state, path, model.name, f"Pass the {hint}")
    model.weights_sha256 = file_sha256(path)


#: MONAI ViT -> ViT3D key renames inside each transformer block.
_MONAI_BLOCK = {
    "attn.out_proj.": "attn.proj.",
    "mlp.linear1.": "mlp.fc1.",
    "mlp.linear2.": "mlp.fc2.",
}
#: MONAI >= 1.4 blocks hold an unused cross-attention branch when built without it.
_MONAI_UNUSED = re.compile(r"blocks\.\d+\.(norm_cross_attn|cross_attn)\.")


def monai_vit_to_vit3d(state: dict[str, torch.Tensor], model: ViT3D) -> dict[str, torch.Tensor]:
    """Map a SegVol / MONAI ``ViT`` state dict to :class:`ViT3D` keys (others pass unchanged).

    * SegVol's checkpoints nest the encoder: keys ``model.encoder.*`` (ViT pre-training) or
      ``*image_encoder.*`` (the SegVol model); only those keys are kept, prefix removed.
    * ``patch_embedding.position_embeddings`` -> ``pos_embed``.
    * ``pos_embed="perceptron"``: ``patch_embedding.patch_embeddings.1`` is a Linear on each
      patch flattened as ``(p1 p2 p3 c)`` (MONAI's einops pattern
      ``b c (h p1) (w p2) (d p3) -> b (h w d) (p1 p2 p3 c)``); its weight (dim, p1*p2*p3*c)
      becomes the Conv3d kernel (dim, c, p1, p2, p3), the same linear map. ``pos_embed="conv"``
      (``patch_embedding.patch_embeddings.weight``) is already a Conv3d kernel.
    * In blocks: ``attn.out_proj`` -> ``attn.proj``, ``mlp.linear1/2`` -> ``mlp.fc1/2``; MONAI's
      ``attn.qkv`` packs (q, k, v) x heads x head_dim like timm's, so it maps unchanged.
    """
    for marker in ("model.encoder.", "image_encoder."):
        nested = {k.split(marker, 1)[1]: v for k, v in state.items() if marker in k}
        if nested:
            state = nested
            break
    if not any(k.startswith("patch_embedding.") for k in state):
        return state
    out: dict[str, torch.Tensor] = {}
    p1, p2, p3 = model.patch_size
    for key, value in state.items():
        if _MONAI_UNUSED.match(key):
            continue
        if key == "patch_embedding.position_embeddings":
            out["pos_embed"] = value
        elif key == "patch_embedding.patch_embeddings.1.weight":
            dim = value.shape[0]
            c = value.shape[1] // (p1 * p2 * p3)
            out["patch_embed.weight"] = (
                value.reshape(dim, p1, p2, p3, c).permute(0, 4, 1, 2, 3).contiguous()
            )
        elif key in (
            "patch_embedding.patch_embeddings.1.bias",
            "patch_embedding.patch_embeddings.bias",
        ):
            out["patch_embed.bias"] = value
        elif key == "patch_embedding.patch_embeddings.weight":
            out["patch_embed.weight"] = value
        else:
            for old, new in _MONAI_BLOCK.items():
                key = key.replace(old, new)
            out[key] = value
    return out
