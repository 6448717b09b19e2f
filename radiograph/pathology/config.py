"""The settings of pathology feature extraction: plain dataclasses with no heavy imports, so
that a study config is checked (:mod:`radiograph.study_config`) without importing torch.

:class:`ExtractionConfig` decides a slide's features; :class:`TissueParams` its tissue mask
(:func:`radiograph.pathology.tissue.tissue_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TissueParams:
    """Parameters of :func:`radiograph.pathology.tissue.tissue_mask`.

    Attributes:
        min_saturation: floor on the saturation threshold, in [0, 1] (background and glass
            sit near 0; eosin-stained tissue near 0.2-0.5); the threshold when the whole view
            is stained.
        median_size: side in mask pixels of the median filter applied to the saturation.
        close_iterations: iterations of the 3x3 binary closing that joins nearby fragments.
        min_region_um2: connected tissue regions smaller than this area (um^2) are dropped.
        max_hole_um2: holes inside tissue smaller than this area (um^2) are filled.
    """

    min_saturation: float = 0.05
    median_size: int = 5
    close_iterations: int = 2
    min_region_um2: float = 10_000.0
    max_hole_um2: float = 2_000.0


@dataclass(frozen=True)
class ExtractionConfig:
    """Everything that decides a slide's features (apart from the slide and its mpp).

    Attributes:
        encoder: registry name (see :func:`radiograph.encoders.available_encoders`).
        weights: local weights file; None uses the encoder's packaged weights, if any.
        random_weights: use a seeded random initialisation (recorded in the h5 attrs).
        target_mpp: microns per pixel of the patches (0.5 = 20x).
        patch_size: patch side in pixels at ``target_mpp`` (224, 256 or 512 typically).
        min_tissue: keep a patch when its tissue fraction is at least this.
        tissue: tissue-mask parameters.
        stain_norm: apply Macenko normalisation.
        stain_reference: image whose stains are the target (None: the built-in default).
        mpp: level-0 microns per pixel for every slide (a manifest row's mpp wins).
        batch_size: tiles per forward pass; None: 8 on CPU (larger batches were slower per
            patch on CPU in benchmarks/encoders.py), 64 on GPU.
        num_workers: DataLoader worker processes reading tiles (0: read in this process);
            None: :func:`radiograph.pathology.extract.default_num_workers` for the device.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
        seed: seed of the random encoder initialisation and of the stain-fit tile sample.
    """

    encoder: str = "efficientnet-lite0"
    weights: str | None = None
    random_weights: bool = False
    target_mpp: float = 0.5
    patch_size: int = 224
    min_tissue: float = 0.5
    tissue: TissueParams = field(default_factory=TissueParams)
    stain_norm: bool = False
    stain_reference: str | None = None
    mpp: float | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch_size <= 0 or self.target_mpp <= 0 or (self.batch_size or 1) <= 0:
            raise ValueError("patch_size, target_mpp and batch_size must be > 0")
        if (self.num_workers or 0) < 0:
            raise ValueError(f"num_workers must be >= 0; got {self.num_workers}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"min_tissue must be in [0, 1]; got {self.min_tissue}")
