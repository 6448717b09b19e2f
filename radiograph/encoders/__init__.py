"""Patch encoders: a registry of 2D foundation-model backbones with their preprocessing.

>>> enc = build_encoder("uni", weights="/models/uni/pytorch_model.bin")   # doctest: +SKIP
>>> feats = enc(enc.preprocess(tiles_uint8_bhw3))                          # doctest: +SKIP
"""

from radiograph.encoders.base import EncoderError, PatchEncoder, RandomWeightsWarning
from radiograph.encoders.registry import (
    ENCODERS,
    EncoderSpec,
    available_encoders,
    build_encoder,
    load_checkpoint,
)

__all__ = [
    "ENCODERS",
    "EncoderError",
    "EncoderSpec",
    "PatchEncoder",
    "RandomWeightsWarning",
    "available_encoders",
    "build_encoder",
    "load_checkpoint",
]
