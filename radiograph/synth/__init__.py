"""Synthetic cohorts with a known, planted prognostic signal.

``make_cohort`` writes real files that every later stage reads like a real cohort: a manifest,
pyramidal Aperio-style TIFF slides (OpenSlide reads mpp and objective power), NIfTI CT volumes
with tumour masks, survival times from a known hazard, and the ground truth beside them (which
regions are prognostic, each subject's true log hazard). See :mod:`radiograph.synth.cohort`
for the model and ``data_manifests/synthetic.md`` for the files.

Modules: ``cohort`` (subjects, hazard, times, manifest, ground truth), ``slides`` (H&E slides),
``volumes`` (CT volumes), ``regions`` (random blobs and noise shared by both), ``commands``
(the ``radiograph synth`` command). ``planted_graphs`` makes graph-level planted cohorts
without images (imported on its own: it needs torch).

The names load on first use (:mod:`radiograph._lazy`).
"""

from radiograph._lazy import lazy_exports

SIGNALS = ("abundance", "focal")
"""What carries the pathology term of the hazard, in the image cohort (:mod:`.cohort`) and the
planted-graph cohort (:mod:`.planted_graphs`): how much of the tissue carries a pattern, or
what one small marked region looks like."""

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "cohort": ("SynthParams", "make_cohort", "plan_cohort", "true_log_hazard"),
    },
)
