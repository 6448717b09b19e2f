"""Foundation-encoder features of radiology units.

An encoder turns the volume into *tokens*, each describing a box of voxels:

* a 3D encoder (:class:`radiograph.encoders.vit3d.ViT3D`) runs on windows of its input size
  that tile the units' bounding box (the tiling is centred on the box; outside the volume the
  window is padded with the channel's minimum); every window token describes one patch box;
* a 2D encoder (any :func:`radiograph.encoders.build_encoder` name) runs slice by slice on
  square tiles of ``tile`` x ``tile`` voxels of each axial slice (index axis z), each tile
  shown to the encoder as a grey RGB image; every tile is one token of box (1, tile, tile).

Only windows and tiles that contain unit voxels are encoded. Multi-channel volumes are
encoded one channel at a time and the channel features concatenated (D = C x encoder dim).

A unit's feature is the average of the tokens overlapping it, weighted by the number of the
unit's voxels in each token's box: the mean over the unit's voxels of the feature of the
token that holds each voxel (:func:`unit_features`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from radiograph.encoders.base import PatchEncoder
from radiograph.encoders.vit3d import ViT3D
from radiograph.radiology.units import Units
from radiograph.runner import terminal_only

#: MR z-scores in [-MR_RANGE, MR_RANGE] map to grey levels 0..255 for 2D encoders.
MR_RANGE = 3.0


@dataclass
class Tokens:
    """Encoder tokens and where they lie.

    Attributes:
        features: float32 (T, D).
        boxes: int64 (T, 2, 3) voxel box [start, stop) of each token, (z, y, x); may extend
            beyond the volume (padding).
    """

    features: np.ndarray
    boxes: np.ndarray


def encode_volume(
    encoder: ViT3D,
    image: np.ndarray,
    region: np.ndarray,
    *,
    batch_size: int = 2,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Tokens:
    """Tokens of a 3D encoder over the windows that touch ``region``.

    Args:
        encoder: a :class:`ViT3D` with ``in_chans == 1``.
        image: float (C, D, H, W) encoder input (the volume's ``normalised`` array).
        region: bool (D, H, W) voxels that need features (the units).
        batch_size: windows per forward pass.
        device: where the encoder runs.

    Returns:
        Tokens with features (T, C x dim) and the boxes of the tokens.
    """
    starts = window_starts(region, encoder.img_size)
    boxes = np.concatenate([encoder.token_boxes(s) for s in starts])
    per_channel = []
    for c, channel in enumerate(image):
        fill = float(channel.min())
        out = []
        for batch in _batches(starts, batch_size, progress, f"3D encoder, channel {c}"):
            x = np.stack([crop_padded(channel, s, encoder.img_size, fill) for s in batch])
            out.append(_run(encoder, torch.from_numpy(x[:, None]), device).reshape(-1, encoder.dim))
        per_channel.append(np.concatenate(out))
    return Tokens(np.concatenate(per_channel, axis=1), boxes)


def encode_slices(
    encoder: PatchEncoder,
    image: np.ndarray,
    region: np.ndarray,
    *,
    modality: str,
    tile: int = 32,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Tokens:
    """Tokens of a 2D encoder over ``tile`` x ``tile`` tiles of the slices touching ``region``.

    Args:
        encoder: a 2D :class:`PatchEncoder` (uint8 RGB tiles in).
        image: float (C, D, H, W) (the volume's ``normalised`` array).
        region: bool (D, H, W) voxels that need features.
        modality: "CT" (values in [0, 1]) or "MR" (z-scores, +-3 SD mapped to 0..255).
        tile: tile side in voxels.

    Returns:
        Tokens with features (T, C x dim) and boxes (1, tile, tile).
    """
    starts = window_starts(region, (1, tile, tile))
    size = (1, tile, tile)
    boxes = np.stack([np.stack([s, s + np.array(size)]) for s in starts]).astype(np.int64)
    per_channel = []
    for c, channel in enumerate(image):
        grey = to_uint8(channel, modality)
        out = []
        for batch in _batches(starts, batch_size, progress, f"2D encoder, channel {c}"):
            tiles = np.stack([crop_padded(grey, s, size, 0)[0] for s in batch])
            rgb = np.repeat(tiles[..., None], 3, axis=-1)
            out.append(_run(encoder, encoder.preprocess(rgb), device))
        per_channel.append(np.concatenate(out))
    return Tokens(np.concatenate(per_channel, axis=1), boxes)


def unit_features(tokens: Tokens, units: Units) -> np.ndarray:
    """float32 (N, D): each unit's mean over its voxels of the feature of the token holding them.

    Equivalently the overlap-weighted average of the tokens: weight of token t for unit u =
    number of u's voxels inside t's box. Tokens must cover every unit voxel.

    Raises:
        ValueError: a unit voxel lies in no token's box.
    """
    n = len(units)
    shape = np.array(units.labels.shape)
    weights = np.zeros((n, len(tokens.boxes)), dtype=np.float64)
    for t, (start, stop) in enumerate(tokens.boxes):
        lo, hi = np.maximum(start, 0), np.minimum(stop, shape)
        if np.any(hi <= lo):
            continue
        ids = units.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].ravel()
        weights[:, t] = np.bincount(ids, minlength=n + 1)[1:]
    covered = weights.sum(axis=1)
    if np.any(covered < units.voxels):
        raise ValueError("encoder tokens do not cover every unit voxel")
    weights /= units.voxels[:, None]
    return (weights @ tokens.features.astype(np.float64)).astype(np.float32)


def window_starts(region: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """int64 (W, 3): starts (z, y, x) of the ``size`` windows, tiling ``region``'s bounding box
    (the tiling centred on the box), that contain at least one ``region`` voxel."""
    zyx = np.nonzero(region)
    lo = np.array([c.min() for c in zyx])
    hi = np.array([c.max() for c in zyx]) + 1
    size = np.asarray(size, dtype=np.int64)
    counts = -(-(hi - lo) // size)
    first = lo - (counts * size - (hi - lo)) // 2
    grid = np.stack(np.meshgrid(*(np.arange(c) for c in counts), indexing="ij"), -1).reshape(-1, 3)
    cell = (np.stack(zyx, axis=1) - first) // size
    used = np.zeros(tuple(counts), dtype=bool)
    used[tuple(cell.T)] = True
    return (first + grid[used.ravel()] * size).astype(np.int64)


def crop_padded(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float
) -> np.ndarray:
    """The ``size`` block of 3D ``array`` from ``start`` (may be outside), padded with ``fill``."""
    start = np.asarray(start)
    stop = start + np.asarray(size)
    out = np.full(tuple(int(s) for s in size), fill, dtype=array.dtype)
    lo, hi = np.maximum(start, 0), np.minimum(stop, array.shape)
    if np.all(hi > lo):
        src = tuple(slice(a, b) for a, b in zip(lo, hi))
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        out[dst] = array[src]
    return out


def to_uint8(channel: np.ndarray, modality: str) -> np.ndarray:
    """Grey levels 0..255 of a ``normalised`` channel (CT: [0, 1]; MR: z-scores, +-3 SD)."""
    if modality.upper() == "MR":
        scaled = (np.clip(channel, -MR_RANGE, MR_RANGE) + MR_RANGE) / (2 * MR_RANGE)
    else:
        scaled = np.clip(channel, 0.0, 1.0)
    return np.round(scaled * 255.0).astype(np.uint8)


def _batches(items: np.ndarray, size: int, progress: bool, desc: str) -> Iterator[np.ndarray]:
    for i in tqdm(
        range(0, len(items), size),
        desc=desc,
        unit="batch",
        disable=terminal_only(progress),
        leave=False,
    ):
        yield items[i : i + size]


@torch.inference_mode()
def _run(encoder: torch.nn.Module, x: torch.Tensor, device: torch.device | str) -> np.ndarray:
    """float32 encoder outputs of the batch ``x``; on CUDA copied from pinned memory and run
    under float16 autocast, as the pathology encoders are (:func:`radiograph.pathology.extract.
    encode_tiles`)."""
    device = torch.device(device)
    x = x.to(dtype=torch.float32)
    if device.type != "cuda":
        return encoder(x.to(device)).float().cpu().numpy()
    with torch.autocast("cuda", dtype=torch.float16):
        return encoder(x.pin_memory().to(device, non_blocking=True)).float().cpu().numpy()
