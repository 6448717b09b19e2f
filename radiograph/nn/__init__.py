"""Aggregators (SPARRA, ABMIL, Mean pooling) and losses for subject-level learning on graphs."""

from radiograph.nn.abmil import Abmil, AbmilConfig
from radiograph.nn.base import Aggregator, AggregatorOutput, build_aggregator
from radiograph.nn.batch import SubjectBatch, collate_subjects
from radiograph.nn.losses import (
    cox_nll,
    cross_entropy_loss,
    gamma_posterior,
    reconstruction_mse,
    sparsity_kl,
)
from radiograph.nn.mean import MeanConfig, MeanPool
from radiograph.nn.sparra import Sparra, SparraConfig

__all__ = [
    "Abmil",
    "AbmilConfig",
    "Aggregator",
    "AggregatorOutput",
    "MeanConfig",
    "MeanPool",
    "Sparra",
    "SparraConfig",
    "SubjectBatch",
    "build_aggregator",
    "collate_subjects",
    "cox_nll",
    "cross_entropy_loss",
    "gamma_posterior",
    "reconstruction_mse",
    "sparsity_kl",
]
