"""Architectures of the 2D patch encoders, and the key conversions their released checkpoints need.

Every builder returns a timm model with its classifier removed, so ``model(x)`` maps
(B, 3, S, S) to pooled (B, D) features:

=================  ==============================================  ====  =====  ============
registry name      architecture                                    D     S      paper / code
=================  ==============================================  ====  =====  ============
uni                ViT-L/16, LayerScale 1e-5, CLS token             1024  224    UNI (Chen 2024)
hipt-vit-s16       ViT-S/16 (DINO), CLS token, 256 px inputs        384   256    HIPT ViT_256
resnet50-trunc     ResNet-50 up to layer3, global average pool      1024  224    CLAM
ctranspath, chief  Swin-T/4 window 7 with a convolutional stem      768   224    CTransPath,
                                                                                  CHIEF
efficientnet-lite0 EfficientNet-Lite0 (TF "same" padding)           1280  224    Tan & Le 2019
=================  ==============================================  ====  =====  ============
"""

from __future__ import annotations

import re
from typing import Any

import timm
import torch
from timm.layers import to_2tuple
from timm.models.swin_transformer import checkpoint_filter_fn as swin_checkpoint_filter
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

StateDict = dict[str, torch.Tensor]


def uni_vit_large() -> nn.Module:
    """UNI's ViT-L/16 (``timm`` ``vit_large_patch16_224``, LayerScale init 1e-5), 1024-d CLS."""
    return timm.create_model(
        "vit_large_patch16_224",
        pretrained=False,
        img_size=224,
        patch_size=16,
        init_values=1e-5,
        num_classes=0,
        dynamic_img_size=True,
    )


def hipt_vit_small() -> nn.Module:
    """HIPT's ViT-S/16 patch encoder (DINO ViT-S, position embeddings for a 14 x 14 grid,
    interpolated bicubically to the 16 x 16 grid of its 256-pixel inputs), 384-d CLS."""
    return timm.create_model(
        "vit_small_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True
    )


def resnet50_truncated() -> nn.Module:
    """CLAM's ``resnet50_baseline``: ResNet-50 without ``layer4``, global average pool, 1024-d."""
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    model.layer4 = nn.Identity()
    model.num_features = 1024
    return model


class ConvStem(nn.Module):
    """CTransPath's patch embedding: two stride-2 3x3 conv-BN-ReLU blocks and a 1x1 conv.

    Replaces Swin's 4x4 patchify convolution; maps (B, 3, H, W) to (B, H/4, W/4, C) (the
    channels-last layout timm's Swin expects), followed by ``norm_layer`` when given.
    """

    def __init__(
        self,
        img_size: Any = 224,
        patch_size: Any = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        norm_layer: Any = None,
        **_: Any,
    ):
        super().__init__()
        if to_2tuple(patch_size) != (4, 4):
            raise ValueError(f"ConvStem downsamples by 4; got patch_size={patch_size}")
        self.img_size = to_2tuple(img_size)
        self.patch_size = (4, 4)
        self.grid_size = (self.img_size[0] // 4, self.img_size[1] // 4)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        layers: list[nn.Module] = []
        cin, cout = in_chans, embed_dim // 8
        for _ in range(2):
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin, cout = cout, cout * 2
        layers.append(nn.Conv2d(cin, embed_dim, kernel_size=1))
        self.proj = nn.Sequential(*layers)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def ctranspath_swin() -> nn.Module:
    """CTransPath / CHIEF backbone: Swin-T (patch 4, window 7) with :class:`ConvStem`, 768-d."""
    return timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, num_classes=0, embed_layer=ConvStem
    )


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with TensorFlow "same" padding (timm ``tf_efficientnet_lite0``),
    1280-d."""
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)


def swin_checkpoint_to_timm(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Convert a Swin checkpoint written by timm < 0.9 (CTransPath, CHIEF) to the current layout.

    Old checkpoints put each stage's patch merging at the end of the stage and store the
    ``relative_position_index`` / ``attn_mask`` buffers; timm's own filter moves the merging to
    the start of the next stage and drops the buffers.
    """
    return swin_checkpoint_filter(state_dict, model)


_EFFNET_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_EFFNET_DS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_EFFNET_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_EFFNET_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")


def efficientnet_lite_to_timm(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Rename an ``efficientnet_lite_pytorch`` (EfficientNet-PyTorch style) state dict to timm's.

    The source numbers blocks globally (``_blocks.12._expand_conv``); timm numbers them per
    stage (``blocks.5.1.conv_pw``), with the stage lengths read from ``model``. Blocks without
    an expansion convolution are timm ``DepthwiseSeparableConv``; the others
    ``InvertedResidual``. Keys already in timm's layout are returned unchanged.
    """
    if not any(k.startswith("_") for k in state_dict):
        return state_dict
    stage_of = [(s, j) for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    expands = {
        int(m.group(1))
        for k in state_dict
        if (m := _EFFNET_BLOCK.match(k)) and m.group(2) == "_expand_conv"
    }
    out: StateDict = {}
    for key, value in state_dict.items():
        match = _EFFNET_BLOCK.match(key)
        if match:
            index, layer, rest = int(match.group(1)), match.group(2), match.group(3)
            names = _EFFNET_IR if index in expands else _EFFNET_DS
            if index >= len(stage_of) or layer not in names:
                out[key] = value  # left for the key-mismatch report
                continue
            stage, j = stage_of[index]
            out[f"blocks.{stage}.{j}.{names[layer]}.{rest}"] = value
        else:
            top, _, rest = key.partition(".")
            out[f"{_EFFNET_TOP.get(top, top)}.{rest}"] = value
    return out
