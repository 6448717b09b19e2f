"""Per-subject patch features in HDF5, in the CLAM / TRIDENT layout.

File layout (one file per slide or per volume)::

    features   float32 (N, D)      one row per patch / spatial unit
    coords     float64 (N, 2|3)    pathology: level-0 pixel (x, y) of each patch's top-left
                                   corner; radiology: physical (x, y, z) centre in millimetres
    attrs      on the file root (see ``FeatureSet.attrs``)

Files written by CLAM (``features`` sometimes stored as (1, N, D), attributes on ``coords``)
and TRIDENT (attributes on ``coords``) read the same way: attributes of the root, of
``coords`` and of ``features`` are merged, root last.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from radiograph import __version__
from radiograph.io.atomic import atomic_path

#: Attribute names radiograph writes; readers accept files that lack any of them.
STANDARD_ATTRS = (
    "subject_id",  # str
    "modality",  # "pathology" | "radiology"
    "source",  # slide or volume path the features came from
    "encoder",  # registry name of the feature extractor
    "weights_sha256",  # checksum of the weights file, "" for random or built-in weights
    "random_weights",  # bool: True when the encoder was randomly initialised
    "patch_size",  # int: pixels at the target resolution (2D) or voxels per side (3D)
    "level",  # int: pyramid level read (2D)
    "mpp",  # float: microns per pixel of the patches (2D)
    "spacing",  # (3,) float: voxel spacing in mm (3D)
    "code_version",  # radiograph version that wrote the file
)


@dataclass
class FeatureSet:
    """Patch features of one slide or volume.

    Attributes:
        features: (N, D) float32 feature matrix.
        coords: (N, 2) level-0 pixel coordinates or (N, 3) physical coordinates in mm.
        attrs: metadata (see ``STANDARD_ATTRS``); values are str, int, float, bool or arrays.
    """

    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.coords = np.asarray(self.coords, dtype=np.float64)
        if self.features.ndim == 3 and self.features.shape[0] == 1:
            self.features = self.features[0]
        if self.features.ndim != 2:
            raise ValueError(f"features must be (N, D); got shape {self.features.shape}")
        if self.coords.ndim != 2 or self.coords.shape[1] not in (2, 3):
            raise ValueError(f"coords must be (N, 2) or (N, 3); got shape {self.coords.shape}")
        if len(self.features) != len(self.coords):
            raise ValueError(
                f"features has {len(self.features)} rows but coords has {len(self.coords)}"
            )

    @property
    def num_patches(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def write_features(path: str | os.PathLike, fs: FeatureSet) -> Path:
    """Write ``fs`` to ``path`` atomically (temp file + rename); returns the path.

    ``code_version`` is filled in when absent.
    """
    attrs = {"code_version": __version__, **fs.attrs}
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("features", data=fs.features)
            h5.create_dataset("coords", data=fs.coords)
            for key, value in attrs.items():
                h5.attrs[key] = _to_h5_attr(value)
    return path


def read_features(path: str | os.PathLike) -> FeatureSet:
    """Read a feature file written by radiograph, CLAM or TRIDENT, and check it.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file: not readable HDF5 (e.g. truncated), ``features`` or
            ``coords`` missing, shapes that disagree (rows of ``features`` vs ``coords``, an
            unsupported coordinate dimension), or NaN / Inf values (counting the rows).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in ("features", "coords") if k not in h5]
            if missing:
                raise ValueError(f"missing dataset(s) {missing}; found {list(h5.keys())}")
            attrs: dict[str, Any] = {}
            for obj in (h5["features"], h5["coords"], h5):
                attrs.update({k: _from_h5_attr(v) for k, v in obj.attrs.items()})
            fs = FeatureSet(h5["features"][()], h5["coords"][()], attrs)
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err
    subject = fs.attrs.get("subject_id")
    where = f"{path} (subject {subject})" if subject else str(path)
    for name, values in (("features", fs.features), ("coords", fs.coords)):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{where}: {name} has {int(bad.sum())} of {len(values)} rows with "
                f"NaN or Inf (first at row {int(np.flatnonzero(bad)[0])})"
            )
    return fs


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file (used for weights checksums)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _to_h5_attr(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    return value


def _from_h5_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
