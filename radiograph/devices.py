"""Where tensors run: the one rule every stage uses to turn a ``device`` setting into a torch
device."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name (``"cpu"``, ``"cuda:1"``)
    is passed to :class:`torch.device` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
