"""Radiology stage: volume + tumour mask -> spatial units -> unit features with 3D positions.

>>> volume = load_volume("S1", ["ct.nii.gz"], "mask.nii.gz")            # doctest: +SKIP
>>> units = grid_units(volume.mask, volume.spacing[0], size_mm=8.0)      # doctest: +SKIP
>>> feats, names = RadiomicsExtractor(modality="CT").extract(volume, units)  # doctest: +SKIP

The names load on first use (:mod:`radiograph._lazy`).
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "habitats": ("HabitatModel", "HabitatModelError", "HabitatSummary"),
        "radiomics_features": ("RadiomicsError", "RadiomicsExtractor"),
        "units": ("NoUnitsError", "Units", "grid_units", "habitat_units"),
        "volume": ("Volume", "VolumeError", "load_volume", "read_image"),
    },
)
