"""Public cohorts' downloads -> a radiograph manifest (``data_manifests/README.md``).

* :mod:`radiograph.cohorts.gdc`: GDC clinical files (TSV or JSON) -> one record per case, and
  overall survival from ``vital_status``, ``days_to_death`` and ``days_to_last_follow_up``.
* :mod:`radiograph.cohorts.tcga`: TCGA slides (GDC) and CT with tumour masks (TCIA) matched to
  those cases by their barcodes; writes the manifest and a per-case report
  (``radiograph tcga-manifest``).

Standard library only (no torch): the command answers in a fraction of a second.
"""
