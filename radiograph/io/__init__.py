"""Storage formats: atomic writes (``radiograph.io.atomic``), h5 feature files
(``radiograph.io.features``) and graph files (``radiograph.io.graphs``, which needs torch).

Import from the submodules; this package imports nothing heavy, so a worker process that only
writes files does not pay for importing torch.
"""
