"""Explanations of the MRP models (seeds/002, "feature importance analysis").

- :func:`image_attributions`: integrated gradients (Sundararajan et al. 2017, computed by
  ``captum.attr.IntegratedGradients``) of the response logit with respect to each of a
  patient's images, from an all-zero baseline (the z-scored volume's mean).
- :func:`permutation_importance`: the drop in AUROC when one clinical variable's encoded
  columns are permuted across patients (Breiman 2001), ``repeats`` permutations per variable
  (seeds/002: 10), seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from radiograph.longitudinal.train import PatientImages, collate, model_device
from radiograph.nn.longitudinal import MRPModel


def image_attributions(
    model: MRPModel,
    patient: PatientImages,
    clinical: np.ndarray,
    *,
    upto: int | None = None,
    steps: int = 32,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Integrated gradients of the response logit for one patient's images.

    Args:
        model: a trained modality model.
        patient: the patient; its images of the model's modality at phase index <= ``upto``
            are explained together (the other images stay in the input).
        clinical: (sum(clinical_widths),) the patient's encoded clinical attributes.
        steps: Riemann steps of the path integral (captum's ``n_steps``).

    Returns:
        One ``(phase index, image, attribution)`` per image, the arrays of the image's shape;
        empty when the patient has no such image. The attributions sum to about
        ``logit(x) - logit(baseline)`` (completeness).
    """
    from captum.attr import IntegratedGradients

    items = patient.items(model.config.modality, upto)
    if not items:
        return []
    device = model_device(model)
    images, phase, mask = (t.to(device) for t in collate([items], model.config.spatial_dims))
    x = (
        torch.from_numpy(np.asarray(clinical, np.float32))[None].to(device)
        if model.config.clinical_widths
        else None
    )
    model.eval()

    def logit(batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        return model(
            batch, phase.expand(n, -1), mask.expand(n, -1), None if x is None else x.expand(n, -1)
        ).logit

    attribution = IntegratedGradients(logit).attribute(
        images, torch.zeros_like(images), n_steps=steps
    )
    attribution = attribution.detach().cpu()
    return [(k, array, attribution[0, j, 0].numpy()) for j, (k, array) in enumerate(items)]


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    clinical: np.ndarray,
    label: np.ndarray,
    widths: Sequence[int],
    names: Sequence[str],
    *,
    repeats: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """AUROC drop when each clinical variable is permuted across patients.

    Args:
        predict: encoded clinical inputs (n, sum(widths)) -> (n,) P(pCR) (images fixed).
        clinical: (n, sum(widths)) encoded inputs; label: (n,) 0/1.
        widths: encoded columns per variable (in order); names: the variables' names.
        repeats: permutations per variable; seed: seeds them.

    Returns:
        Rows ``variable, importance`` (mean AUROC drop), ``sd`` (over repeats), ``repeats``,
        sorted by importance, largest first.
    """
    label = np.asarray(label, dtype=np.int64)
    if len(widths) != len(names) or sum(widths) != clinical.shape[1]:
        raise ValueError(
            f"widths, names: {len(widths)} widths summing to {sum(widths)} and "
            f"{len(names)} names for {clinical.shape[1]} columns"
        )
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    rng = np.random.default_rng(seed)
    base = roc_auc_score(label, predict(clinical))
    starts = np.concatenate([[0], np.cumsum(widths)])
    rows = []
    for v, name in enumerate(names):
        drops = []
        for _ in range(repeats):
            permuted = clinical.copy()
            cols = slice(starts[v], starts[v + 1])
            permuted[:, cols] = clinical[rng.permutation(len(label)), cols]
            drops.append(base - roc_auc_score(label, predict(permuted)))
        rows.append(
            {
                "variable": name,
                "importance": float(np.mean(drops)),
                "sd": float(np.std(drops, ddof=1)) if repeats > 1 else float("nan"),
                "repeats": repeats,
            }
        )
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)
