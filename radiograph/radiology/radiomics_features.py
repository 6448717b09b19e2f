"""Hand-crafted radiomics features of each unit with pyradiomics.

Per unit and channel, pyradiomics runs on the unit's own mask (``units.labels == i``) and the
channel's ``intensity`` (HU for CT, in-mask z-scores for MR), both cropped to the unit's
bounding box plus ``padDistance`` voxels: without filters the result is identical to running
on the whole volume, and much faster. Feature classes come from a pyradiomics YAML parameter
file (default: ``params/pyradiomics_ct.yaml`` or ``params/pyradiomics_mr.yaml``: first order,
shape, GLCM, GLRLM, GLSZM, GLDM, NGTDM). Shape features depend only on the mask, so they are
computed for the first channel only. Feature names are ``ch<c>_<pyradiomics name>``, e.g.
``ch0_original_glcm_Contrast``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics import featureextractor
from tqdm.auto import tqdm

from radiograph.io.features import file_sha256
from radiograph.radiology.units import Units
from radiograph.radiology.volume import Volume
from radiograph.runner import terminal_only

PARAMS_DIR = Path(__file__).parent / "params"
DEFAULT_PARAMS = {
    "CT": PARAMS_DIR / "pyradiomics_ct.yaml",
    "MR": PARAMS_DIR / "pyradiomics_mr.yaml",
}
SHAPE_CLASSES = ("shape", "shape2D")


class RadiomicsError(ValueError):
    """pyradiomics cannot compute a unit's features, or the parameter file is unusable."""


class RadiomicsExtractor:
    """pyradiomics features for every unit of a volume.

    Args:
        params: pyradiomics YAML parameter file; None: the default for ``modality``.
        modality: "CT" or "MR", chooses the default parameter file.

    Attributes:
        params_path: the parameter file used.
        params_sha256: its checksum (stored with the features).
    """

    def __init__(self, params: str | os.PathLike | None = None, *, modality: str = "CT"):
        quiet_pyradiomics()
        self.params_path = Path(params) if params is not None else DEFAULT_PARAMS[modality.upper()]
        if not self.params_path.is_file():
            raise RadiomicsError(f"pyradiomics parameter file not found: {self.params_path}")
        try:
            self._first = featureextractor.RadiomicsFeatureExtractor(str(self.params_path))
            self._other = featureextractor.RadiomicsFeatureExtractor(str(self.params_path))
        except Exception as err:  # noqa: BLE001 - pyradiomics raises assorted errors on bad files
            raise RadiomicsError(
                f"pyradiomics parameter file {self.params_path} is not valid: {err}"
            ) from err
        for name in SHAPE_CLASSES:
            self._other.enabledFeatures.pop(name, None)
        self.params_sha256 = file_sha256(self.params_path)
        self._pad = int(self._first.settings.get("padDistance", 5))

    def extract(
        self, volume: Volume, units: Units, *, progress: bool = False
    ) -> tuple[np.ndarray, list[str]]:
        """Features of every unit.

        Args:
            volume: the preprocessed volume (its ``intensity`` array is used).
            units: the units (disjoint label volume).
            progress: show a tqdm bar over the units.

        Returns:
            (features float32 (N, F), names list of F str).

        Raises:
            RadiomicsError: pyradiomics fails on a unit (message names subject and unit).
        """
        boxes = units.boxes()
        rows: list[list[float]] = []
        names: list[str] | None = None
        for i in tqdm(
            range(len(units)),
            desc=f"{volume.subject_id} radiomics",
            unit="unit",
            disable=terminal_only(progress),
            leave=False,
        ):
            row_names, row = [], []
            start = np.maximum(boxes[i, 0] - self._pad, 0)
            stop = np.minimum(boxes[i, 1] + self._pad, volume.shape)
            crop = tuple(slice(a, b) for a, b in zip(start, stop))
            mask = self._image((units.labels[crop] == i + 1).astype(np.uint8), volume, start)
            for c in range(volume.num_channels):
                image = self._image(volume.intensity[c][crop], volume, start)
                extractor = self._first if c == 0 else self._other
                try:
                    result = extractor.execute(image, mask, label=1)
                except Exception as err:  # noqa: BLE001 - report which unit failed and why
                    raise RadiomicsError(
                        f"subject {volume.subject_id!r}: pyradiomics failed on unit {i} "
                        f"({int(units.voxels[i])} voxels), channel {c}: {err}"
                    ) from err
                for key, value in result.items():
                    if not key.startswith("diagnostics_"):
                        row_names.append(f"ch{c}_{key}")
                        row.append(float(value))
            if names is None:
                names = row_names
            elif row_names != names:
                raise RadiomicsError(
                    f"subject {volume.subject_id!r}: unit {i} produced a "
                    "different feature list from unit 0"
                )
            rows.append(row)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1), names or []

    @staticmethod
    def _image(array: np.ndarray, volume: Volume, start: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing([float(s) for s in volume.spacing])
        image.SetOrigin([float(o) for o in volume.index_to_physical(start[None].astype(float))[0]])
        image.SetDirection([float(d) for d in volume.direction.ravel()])
        return image


def quiet_pyradiomics() -> None:
    """Keep pyradiomics' log to errors (it warns on every unit otherwise)."""
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
