"""Radiology stage: volume + tumour mask -> spatial units -> unit features with 3D positions.

>>> volume = load_volume("S1", ["ct.nii.gz"], "mask.nii.gz")            # doctest: +SKIP
>>> units = grid_units(volume.mask, volume.spacing[0], size_mm=8.0)      # doctest: +SKIP
>>> feats, names = RadiomicsExtractor(modality="CT").extract(volume, units)  # doctest: +SKIP
"""

from radiograph.radiology.habitats import HabitatModel, HabitatModelError, HabitatSummary
from radiograph.radiology.radiomics_features import RadiomicsError, RadiomicsExtractor
from radiograph.radiology.units import NoUnitsError, Units, grid_units, habitat_units
from radiograph.radiology.volume import Volume, VolumeError, load_volume, read_image

__all__ = [
    "HabitatModel",
    "HabitatModelError",
    "HabitatSummary",
    "NoUnitsError",
    "RadiomicsError",
    "RadiomicsExtractor",
    "Units",
    "Volume",
    "VolumeError",
    "grid_units",
    "habitat_units",
    "load_volume",
    "read_image",
]
