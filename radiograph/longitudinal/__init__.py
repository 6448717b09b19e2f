"""Longitudinal, missing-modality-robust response prediction (seeds/002, "MRP").

A patient is seen at several declared time points (``phase``: e.g. pre, mid, post treatment);
at each there may be a 3D DCE subtraction MRI (given, or made from pre- and post-contrast
volumes), 2D mammogram views, and the patient has baseline clinical attributes.

Modules: ``cohort`` (the manifest: reading, validation, availability, patient-level folds),
``images`` (volume and 2D image loading, subtraction). The synthetic stand-in is
:mod:`radiograph.synth.longitudinal_cohort`.

The names load on first use (:mod:`radiograph._lazy`).
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "cohort": (
            "LongitudinalCohort",
            "Patient",
            "Visit",
            "patient_folds",
            "read_longitudinal_manifest",
        ),
        "images": ("load_image", "load_volume", "make_subtraction", "visit_volume"),
    },
)
