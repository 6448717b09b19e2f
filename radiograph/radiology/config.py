"""The settings of radiology feature extraction: a plain dataclass with no heavy imports, so
that a study config is checked (:mod:`radiograph.study_config`) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

PYRADIOMICS = "pyradiomics"
UNIT_KINDS = ("grid", "habitat")
#: Default CT window in HU (soft-tissue window: level 40, width 400).
DEFAULT_HU_WINDOW = (-160.0, 240.0)
#: Candidate numbers of habitats (seeds/000 tests two to ten).
DEFAULT_K_RANGE = tuple(range(2, 11))


@dataclass(frozen=True)
class RadiologyConfig:
    """Everything that decides a subject's radiology features (apart from its files).

    Attributes:
        features: "pyradiomics", a 3D encoder name (``segvol-vit``, ``vit3d-tiny``) or any 2D
            encoder name of :func:`radiograph.encoders.build_encoder` (slice by slice).
        units: "grid" or "habitat".
        spacing_mm: isotropic resampling spacing in mm.
        unit_size_mm: grid cube side in mm.
        min_fraction: grid: minimum tumour fraction of a cube.
        min_unit_voxels: habitat: minimum voxels of a connected component.
        habitat_model: fitted habitat model JSON (required for ``units == "habitat"``).
        params: pyradiomics parameter file (None: the modality's default).
        weights: encoder weights file.
        random_weights: use a seeded random encoder.
        resample_mask: resample a mask on another grid onto the image grid.
        mask_label: tumour label of the mask (None: the mask must be 0/1).
        hu_window: CT window (HU) for encoder / habitat intensities.
        slice_tile: 2D encoders: tile side in voxels.
        batch_size: windows (3D) or tiles (2D) per forward pass.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        seed: seed of random encoder weights.
    """

    features: str = PYRADIOMICS
    units: str = "grid"
    spacing_mm: float = 1.0
    unit_size_mm: float = 8.0
    min_fraction: float = 0.5
    min_unit_voxels: int = 27
    habitat_model: str | None = None
    params: str | None = None
    weights: str | None = None
    random_weights: bool = False
    resample_mask: bool = False
    mask_label: int | None = None
    hu_window: tuple[float, float] = DEFAULT_HU_WINDOW
    slice_tile: int = 32
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.units not in UNIT_KINDS:
            raise ValueError(f"units must be one of {UNIT_KINDS}; got {self.units!r}")
        if self.spacing_mm <= 0 or self.unit_size_mm <= 0 or self.slice_tile <= 0:
            raise ValueError("spacing_mm, unit_size_mm and slice_tile must be > 0")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1]; got {self.min_fraction}")

    @property
    def feature_kind(self) -> str:
        """ "pyradiomics", "3d" or "2d"; the encoder registries (torch, timm) are imported to
        tell, so construction stays light and this is where an unknown name is an error.

        Raises:
            ValueError: ``features`` names no registered encoder.
        """
        if self.features == PYRADIOMICS:
            return PYRADIOMICS
        from radiograph.encoders import ENCODERS
        from radiograph.encoders.registry import TIMM_PREFIX
        from radiograph.encoders.vit3d import VOLUME_ENCODERS

        if self.features in VOLUME_ENCODERS:
            return "3d"
        if self.features in ENCODERS or self.features.startswith(TIMM_PREFIX):
            return "2d"
        raise ValueError(
            f"unknown features {self.features!r}: use 'pyradiomics', a 3D encoder "
            f"({', '.join(sorted(VOLUME_ENCODERS))}), a 2D encoder "
            f"({', '.join(sorted(ENCODERS))}) or 'timm:<model name>'"
        )
