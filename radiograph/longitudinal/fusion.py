"""The MRP system: two modality models late-fused (seeds/002, Methods, "ensemble").

``y = w F_mammo + (1 - w) F_mri`` (the paper's ``W1 F1 + W2 F2`` with ``W1 + W2 = 1``). The
weight is chosen on validation data only: the training patients are split (stratified, seeded)
into an inner training part, on which the clinical encoding and all models are fitted, and a
validation part, on which ``w`` maximises the AUROC of the fused prediction over a grid (ties:
the weight closest to 1/2). The fitted system is then applied unchanged to test and external
patients. Equal weights (``w = 1/2``) are the ablation. A patient with only one modality gets
that model's prediction; one with neither gets the clinical-only model's.

Two clinical-only comparators, both on the same encoded attributes of the inner training
patients: the network of the paper's uni-modal framework (``clinical``, also the fallback of
the fusion) and an L2 logistic regression with its penalty chosen by inner cross-validation
(``clinical_logistic``, :func:`fit_clinical_logistic`): the conventional clinical predictor the
paper measured its network against ("similar performance to a previously published clinical
predictor"), and the fairer reference when a small cohort lets the network overfit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split

from radiograph.classify.baselines import make_classifier, positive_probability
from radiograph.fusion.clinical import ClinicalVariable
from radiograph.longitudinal.train import (
    ClinicalFeatures,
    PatientImages,
    TrainSettings,
    fit_clinical_net,
    fit_model,
    predict,
    predict_clinical,
)
from radiograph.nn.longitudinal import ClinicalNet, MRPConfig, MRPModel

#: Candidate mammography weights of the late fusion.
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 10)

#: Inverse L2 penalties the logistic comparator chooses from (log-spaced, 1e-4..1e4).
LOGISTIC_CS = np.logspace(-4, 4, 17)


def fit_clinical_logistic(x: np.ndarray, label: np.ndarray, seed: int) -> GridSearchCV:
    """The logistic clinical-only comparator: the classifier bank's ``logistic``
    (:func:`radiograph.classify.baselines.make_classifier`: scaler and L2 logistic regression)
    on the encoded attributes ``x`` (n, width), ``C`` from :data:`LOGISTIC_CS` maximising the
    AUROC of a stratified, seeded inner cross-validation (5 folds, fewer when the rarer class
    has fewer patients; ties: the smallest ``C``), then refitted on all of ``x``.

    Raises:
        ValueError: fewer than 2 patients of either class.
    """
    counts = np.bincount(np.asarray(label, dtype=int), minlength=2)
    if counts.min() < 2:
        raise ValueError(
            f"clinical logistic model: need at least 2 patients of each class, got "
            f"{int(counts[0])} without and {int(counts[1])} with pCR"
        )
    model = make_classifier(
        "logistic", seed=seed, inner_folds=int(min(5, counts.min())), grids={"C": LOGISTIC_CS}
    )
    return model.fit(np.asarray(x, dtype=np.float64), label)


def fuse(
    p_mammo: np.ndarray, p_mri: np.ndarray, p_clinical: np.ndarray, weight: float
) -> np.ndarray:
    """(n,) fused P(pCR): ``weight p_mammo + (1 - weight) p_mri`` where both exist (not NaN),
    the one that exists otherwise, ``p_clinical`` where neither does."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight: must lie in [0, 1], got {weight}")
    both = weight * p_mammo + (1.0 - weight) * p_mri
    out = np.where(np.isnan(p_mammo), p_mri, np.where(np.isnan(p_mri), p_mammo, both))
    return np.where(np.isnan(out), p_clinical, out)


def choose_weight(
    label: np.ndarray,
    p_mammo: np.ndarray,
    p_mri: np.ndarray,
    p_clinical: np.ndarray,
    grid: np.ndarray = WEIGHT_GRID,
) -> float:
    """The grid weight maximising the validation AUROC of :func:`fuse` (ties: closest to 1/2;
    1/2 when the validation patients hold a single class)."""
    label = np.asarray(label, dtype=np.int64)
    if label.min() == label.max():
        return 0.5
    auc = np.array([roc_auc_score(label, fuse(p_mammo, p_mri, p_clinical, float(w))) for w in grid])
    best = np.flatnonzero(np.isclose(auc, auc.max(), rtol=0, atol=1e-12))
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])


@dataclass
class MRPSystem:
    """A fitted MRP system: clinical encoding, models and the late-fusion weight.

    Attributes:
        clinical: the training-fitted :class:`~radiograph.longitudinal.train.ClinicalFeatures`.
        models: name -> trained modality model (``mammo``, ``mri`` and ablations).
        clinical_net: the clinical-only network (the fusion's fallback).
        clinical_logistic: the logistic clinical-only comparator (:func:`fit_clinical_logistic`).
        weight: the validation-chosen mammography weight.
        validation_ids: the inner-validation patients the weight was chosen on.
        precision: arithmetic of the models' forward passes in :meth:`predictions` (the
            training precision); the models run on the device they were trained on.
    """

    clinical: ClinicalFeatures
    models: dict[str, MRPModel]
    clinical_net: ClinicalNet
    clinical_logistic: GridSearchCV
    weight: float
    validation_ids: tuple[str, ...]
    precision: str = "fp32"

    def predictions(
        self, patients: Sequence[PatientImages], table: pd.DataFrame, *, upto: int | None = None
    ) -> pd.DataFrame:
        """P(pCR) of every model and fused variant, one row per patient (index patient_id).

        Columns: ``clinical``, ``clinical_logistic``, each model name, ``mrp`` (validation
        weight), ``mrp_equal`` (w = 1/2), and ``mrp_<ablation>`` for each ablated
        ``mri_<ablation>`` model fused with ``mammo_<ablation>`` (or the full ``mammo`` when
        that ablation leaves it unchanged) with the same weight.

        Args:
            patients: the patients' images; table: their raw clinical cells (same order).
            upto: use images at phase indices <= upto (None: all).
        """
        return self.predictions_encoded(patients, self.clinical.inputs(table), upto=upto)

    def predictions_encoded(
        self, patients: Sequence[PatientImages], x: np.ndarray, *, upto: int | None = None
    ) -> pd.DataFrame:
        """:meth:`predictions` from already encoded clinical inputs ``x`` (n, width)."""
        frame = pd.DataFrame(
            {
                "clinical": predict_clinical(self.clinical_net, x, self.precision),
                "clinical_logistic": positive_probability(
                    self.clinical_logistic, np.asarray(x, dtype=np.float64)
                ),
            },
            index=pd.Index([p.patient_id for p in patients], name="patient_id"),
        )
        for name, model in self.models.items():
            frame[name] = predict(model, patients, x, upto=upto, precision=self.precision)
        base = frame["clinical"].to_numpy()
        frame["mrp"] = fuse(frame["mammo"].to_numpy(), frame["mri"].to_numpy(), base, self.weight)
        frame["mrp_equal"] = fuse(frame["mammo"].to_numpy(), frame["mri"].to_numpy(), base, 0.5)
        for name in self.models:
            if name.startswith("mri_"):
                tag = name[len("mri_") :]
                mammo = frame.get(f"mammo_{tag}", frame["mammo"]).to_numpy()
                frame[f"mrp_{tag}"] = fuse(mammo, frame[name].to_numpy(), base, self.weight)
        return frame


#: Ablations: name -> MRPConfig changes (applied to both modality models).
ABLATIONS = {"no_phase": {"phase_embedding": False}, "no_crossmodal": {"cross_modal": False}}


def fit_system(
    patients: Sequence[PatientImages],
    table: pd.DataFrame,
    variables: Sequence[ClinicalVariable],
    configs: dict[str, MRPConfig],
    settings: TrainSettings,
    *,
    validation_fraction: float = 0.25,
    ablations: Sequence[str] = tuple(ABLATIONS),
) -> MRPSystem:
    """Fit the whole system on training patients only (module docstring).

    Args:
        patients: training patients' images.
        table: their raw clinical cells, same order (one column per variable).
        variables: the declared clinical variables.
        configs: ``{"mammo": MRPConfig, "mri": MRPConfig}``; their clinical widths and
            auxiliary classes are filled in from the fitted encoding.
        settings: optimisation settings (the seed also seeds the inner split).
        validation_fraction: share of the training patients held out to choose the weight.
        ablations: names of :data:`ABLATIONS` to fit as well (``mri_<name>``, and
            ``mammo_<name>`` when the change affects a single-phase mammography model).
    """
    if set(configs) != {"mammo", "mri"}:
        raise ValueError(f"configs: need exactly 'mammo' and 'mri', got {sorted(configs)}")
    unknown = sorted(set(ablations) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"ablations: unknown {unknown}; known: {sorted(ABLATIONS)}")
    if len(patients) != len(table):
        raise ValueError(f"table: {len(table)} rows for {len(patients)} patients")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction: must lie in (0, 1), got {validation_fraction}")
    labels = np.array([p.label for p in patients])
    inner, val = train_test_split(
        np.arange(len(patients)),
        test_size=validation_fraction,
        stratify=labels,
        random_state=settings.seed,
    )
    inner_p, inner_t = [patients[i] for i in inner], table.iloc[inner]
    clinical = ClinicalFeatures(variables).fit(inner_t)
    x, targets = clinical.inputs(inner_t), clinical.targets(inner_t)
    specs = {}
    for name, cfg in configs.items():
        cfg = replace(cfg, clinical_widths=clinical.widths_, aux_classes=clinical.aux_classes_)
        specs[name] = cfg
        for tag in ablations:
            change = ABLATIONS[tag]
            if name == "mammo" and "phase_embedding" in change:
                continue  # one phase: the mammography model is unchanged by this ablation
            specs[f"{name}_{tag}"] = replace(cfg, **change)
    models = {}
    for name, cfg in specs.items():
        with_images = [i for i, p in enumerate(inner_p) if p.items(cfg.modality)]
        models[name] = fit_model(
            cfg, [inner_p[i] for i in with_images], x[with_images], targets[with_images], settings
        )
    net = fit_clinical_net(x, labels[inner], clinical.widths_, settings)
    system = MRPSystem(
        clinical,
        models,
        net,
        fit_clinical_logistic(x, labels[inner], settings.seed),
        0.5,
        tuple(patients[i].patient_id for i in val),
        settings.precision,
    )
    val_frame = system.predictions([patients[i] for i in val], table.iloc[val])
    system.weight = choose_weight(
        labels[val],
        val_frame["mammo"].to_numpy(),
        val_frame["mri"].to_numpy(),
        val_frame["clinical"].to_numpy(),
    )
    return system
