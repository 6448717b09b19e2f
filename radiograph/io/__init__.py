"""Storage formats: atomic writes (``radiograph.io.atomic``), h5 feature files
(``radiograph.io.features``), graph files (``radiograph.io.graphs``, which needs torch), and
identifiers and paths that are safe to write to (``radiograph.io.paths``).

Import from the submodules; this package imports nothing heavy, so a worker process that only
writes files does not pay for importing torch.
"""
