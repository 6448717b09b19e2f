"""H&E slides -> patch features: slide reading, tissue mask, tiling, stain normalisation.

The names load on first use (:mod:`radiograph._lazy`).
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "config": ("ExtractionConfig", "TissueParams"),
        "extract": ("SlideJob", "extract_cohort", "extract_slide", "slide_jobs"),
        "slide": ("Resolution", "Slide", "SlideError", "write_pyramidal_tiff"),
        "stain": (
            "DEFAULT_TARGET",
            "MacenkoNormalizer",
            "StainError",
            "StainParams",
            "fit_macenko",
            "load_stain_target",
        ),
        "tiling": ("TileGrid", "read_plan", "read_tile", "save_thumbnail", "tile_grid"),
        "tissue": ("TissueMask", "compute_tissue_mask", "tissue_mask"),
    },
)
