"""Aggregators (SPARRA, ABMIL, Mean pooling) and losses for subject-level learning on graphs.

The aggregators are declared once, in :mod:`radiograph.nn.registry`
(:func:`build_aggregator` builds one by name). The names load on first use
(:mod:`radiograph._lazy`): importing the package, or its registry, imports no torch.
"""

from radiograph._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "abmil": ("Abmil", "AbmilConfig"),
        "base": ("Aggregator", "AggregatorOutput"),
        "batch": ("SubjectBatch", "collate_subjects"),
        "losses": (
            "cox_nll",
            "cross_entropy_loss",
            "gamma_posterior",
            "reconstruction_mse",
            "sparsity_kl",
        ),
        "mean": ("MeanConfig", "MeanPool"),
        "registry": ("AGGREGATORS", "build_aggregator"),
        "sparra": ("Sparra", "SparraConfig"),
    },
)
