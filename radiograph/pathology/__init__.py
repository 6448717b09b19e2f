"""H&E slides -> patch features: slide reading, tissue mask, tiling, stain normalisation."""

from radiograph.pathology.extract import (
    ExtractionConfig,
    SlideJob,
    extract_cohort,
    extract_slide,
    slide_jobs,
)
from radiograph.pathology.slide import Resolution, Slide, SlideError, write_pyramidal_tiff
from radiograph.pathology.stain import (
    DEFAULT_TARGET,
    MacenkoNormalizer,
    StainError,
    StainParams,
    fit_macenko,
    load_stain_target,
)
from radiograph.pathology.tiling import TileGrid, read_plan, read_tile, save_thumbnail, tile_grid
from radiograph.pathology.tissue import TissueMask, TissueParams, compute_tissue_mask, tissue_mask

__all__ = [
    "DEFAULT_TARGET",
    "ExtractionConfig",
    "MacenkoNormalizer",
    "Resolution",
    "Slide",
    "SlideError",
    "SlideJob",
    "StainError",
    "StainParams",
    "TileGrid",
    "TissueMask",
    "TissueParams",
    "compute_tissue_mask",
    "extract_cohort",
    "extract_slide",
    "fit_macenko",
    "load_stain_target",
    "read_plan",
    "read_tile",
    "save_thumbnail",
    "slide_jobs",
    "tile_grid",
    "tissue_mask",
    "write_pyramidal_tiff",
]
