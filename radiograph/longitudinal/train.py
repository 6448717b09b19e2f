"""Training the MRP modality models robustly to missing data (seeds/002, "Training details").

A patient's images are loaded once (:func:`load_patients`) and kept in memory (the study's
volumes are small). Each epoch, for each patient, the loader draws a random non-empty subset
of the patient's available images of the model's modality (any phases, any views: first a
size k uniformly in 1..n, then k distinct images), so the model learns from every availability
pattern it will meet; a patient without an image of that modality is trained on its clinical
attributes alone. Inference (:func:`predict`) takes whatever the patient has up to a given
phase.

The clinical attributes are encoded by :class:`ClinicalFeatures`, fitted on training rows
only (:class:`~radiograph.fusion.clinical.ClinicalEncoder`, then standardised with training
means and deviations); the same object gives the cross-modal branch's targets (a level index
for categorical and ordinal attributes, blank or ``Unknown`` masked as NaN; a standardised
number for continuous ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from radiograph.fusion.clinical import UNKNOWN, ClinicalEncoder, ClinicalVariable
from radiograph.nn.longitudinal import ClinicalNet, MRPConfig, MRPModel

#: Item of :attr:`PatientImages.mri` / ``mammo``: (phase index, float32 image array).
Item = tuple[int, np.ndarray]


@dataclass(frozen=True)
class PatientImages:
    """One patient's images in memory.

    Attributes:
        patient_id: identifier.
        label: 1 pCR, 0 non-pCR.
        mri: (phase index, (D, H, W) float32 subtraction volume) per MRI visit.
        mammo: (phase index, (H, W) float32 view) per mammogram view.
    """

    patient_id: str
    label: int
    mri: tuple[Item, ...] = ()
    mammo: tuple[Item, ...] = ()

    def items(self, modality: str, upto: int | None = None) -> tuple[Item, ...]:
        """The patient's images of ``modality`` at phase indices <= ``upto`` (None: all)."""
        items = self.mri if modality == "mri" else self.mammo
        return items if upto is None else tuple(i for i in items if i[0] <= upto)


def load_patients(
    cohort, volume_shape: tuple[int, int, int], image_shape: tuple[int, int]
) -> list[PatientImages]:
    """Load every patient's volumes and views once (cohort order).

    Args:
        cohort: a :class:`~radiograph.longitudinal.cohort.LongitudinalCohort`.
        volume_shape: (D, H, W) voxels of every volume.
        image_shape: (H, W) pixels of every mammogram view.
    """
    from radiograph.longitudinal.images import load_image, visit_volume

    phase_index = {p: i for i, p in enumerate(cohort.phases)}
    out = []
    for patient in cohort.patients:
        mri, mammo = [], []
        for visit in patient.visits:
            k = phase_index[visit.phase]
            volume = visit_volume(visit, tuple(volume_shape))
            if volume is not None:
                mri.append((k, volume.astype(np.float32)))
            mammo += [
                (k, load_image(path, tuple(image_shape)).astype(np.float32))
                for path in visit.images
            ]
        out.append(PatientImages(patient.patient_id, patient.label, tuple(mri), tuple(mammo)))
    return out


@dataclass
class ClinicalFeatures:
    """Clinical inputs and cross-modal targets, fitted on training rows (module docstring).

    Attributes (after :meth:`fit`):
        widths_: encoded columns per used variable (a categorical variable whose training
            rows show only its reference level has none and is left out of the input).
        aux_classes_: per variable, levels (categorical, ordinal) or 0 (continuous).
    """

    variables: Sequence[ClinicalVariable]
    encoder_: ClinicalEncoder | None = field(default=None, init=False)
    mean_: np.ndarray | None = field(default=None, init=False)
    scale_: np.ndarray | None = field(default=None, init=False)
    widths_: tuple[int, ...] = field(default=(), init=False)
    aux_classes_: tuple[int, ...] = field(default=(), init=False)
    target_stats_: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)

    def fit(self, table: pd.DataFrame) -> ClinicalFeatures:
        """Learn the encoding from training rows ``table`` (one column per variable)."""
        self.encoder_ = ClinicalEncoder(self.variables).fit(table)
        encoded = self.encoder_.transform(table).to_numpy(np.float64)
        self.mean_ = encoded.mean(axis=0)
        scale = encoded.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        columns = self.encoder_.columns_
        widths = []
        for var in self.variables:
            width = sum(
                1
                for c in columns
                if c == var.name or c.startswith(f"{var.name}[") or c == f"{var.name}__missing"
            )
            if width:
                widths.append(width)
        self.widths_ = tuple(widths)
        self.aux_classes_ = tuple(
            0 if v.kind == "continuous" else len(v.levels) for v in self.variables
        )
        for var in self.variables:
            if var.kind == "continuous":
                cells = table[var.name].astype(str).str.strip()
                values = pd.to_numeric(cells.where(cells != ""), errors="coerce")
                sd = float(values.std())
                self.target_stats_[var.name] = (float(values.mean()), sd if sd > 0 else 1.0)
        return self

    def inputs(self, table: pd.DataFrame) -> np.ndarray:
        """(n, sum(widths_)) float32 standardised encoded attributes, columns grouped by
        variable in declared order."""
        if self.encoder_ is None:
            raise ValueError("ClinicalFeatures: call fit before inputs")
        encoded = self.encoder_.transform(table).to_numpy(np.float64)
        return ((encoded - self.mean_) / self.scale_).astype(np.float32)

    def targets(self, table: pd.DataFrame) -> np.ndarray:
        """(n, n_variables) float32 cross-modal targets, NaN where missing."""
        if self.encoder_ is None:
            raise ValueError("ClinicalFeatures: call fit before targets")
        out = np.full((len(table), len(self.variables)), np.nan, dtype=np.float32)
        for a, var in enumerate(self.variables):
            cells = table[var.name].astype(str).str.strip()
            if var.kind == "continuous":
                mean, sd = self.target_stats_[var.name]
                values = pd.to_numeric(cells.where(cells != ""), errors="coerce")
                out[:, a] = ((values - mean) / sd).to_numpy(np.float32)
            else:
                index = {level: float(i) for i, level in enumerate(var.levels)}
                out[:, a] = [
                    index.get(c, np.nan) if c not in ("", UNKNOWN) else np.nan for c in cells
                ]
        return out


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one model.

    Attributes:
        epochs: passes over the training patients.
        batch_size: patients per step.
        lr: AdamW learning rate; weight_decay: its decoupled weight decay.
        seed: seeds the initialisation, the subset draws, the flips and the batch order.
        flip: augment each drawn image by a random flip along each spatial axis (p = 1/2).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flip: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")


def sample_subset(items: Sequence[Item], rng: np.random.Generator) -> tuple[Item, ...]:
    """A random non-empty subset of ``items`` (size uniform in 1..n, then uniform items), in
    their given order; empty for no items."""
    if not items:
        return ()
    k = int(rng.integers(1, len(items) + 1))
    keep = np.sort(rng.choice(len(items), size=k, replace=False))
    return tuple(items[i] for i in keep)


def collate(
    selected: Sequence[Sequence[Item]], dims: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad B patients' items into ``images`` (B, T, 1, *S), ``phase`` (B, T) long and
    ``mask`` (B, T) bool, T the largest item count (at least 1)."""
    t = max(1, max((len(s) for s in selected), default=0))
    shape = next((item[1].shape for s in selected for item in s), (1,) * dims)
    images = torch.zeros(len(selected), t, 1, *shape)
    phase = torch.zeros(len(selected), t, dtype=torch.long)
    mask = torch.zeros(len(selected), t, dtype=torch.bool)
    for b, items in enumerate(selected):
        for j, (k, array) in enumerate(items):
            images[b, j, 0] = torch.from_numpy(array)
            phase[b, j] = k
            mask[b, j] = True
    return images, phase, mask


def fit_model(
    config: MRPConfig,
    patients: Sequence[PatientImages],
    clinical: np.ndarray,
    targets: np.ndarray,
    settings: TrainSettings,
) -> MRPModel:
    """Train one modality model with per-epoch random subsets (module docstring).

    Args:
        config: the model (its ``modality`` picks the images).
        patients: training patients.
        clinical: (n, sum(clinical_widths)) inputs of those patients (:class:`ClinicalFeatures`).
        targets: (n, A) cross-modal targets, NaN where missing.
        settings: optimisation and seed.

    Returns:
        The trained model, in eval mode.
    """
    n = len(patients)
    if clinical.shape[0] != n or targets.shape[0] != n:
        raise ValueError(
            f"clinical, targets: need {n} rows, got {clinical.shape[0]} and {targets.shape[0]}"
        )
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = MRPModel(config)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    labels = torch.tensor([p.label for p in patients], dtype=torch.float32)
    clinical_t, targets_t = torch.from_numpy(clinical), torch.from_numpy(targets)
    model.train()
    for _ in range(settings.epochs):
        order = rng.permutation(n)
        for start in range(0, n, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            selected = [sample_subset(patients[i].items(config.modality), rng) for i in batch]
            images, phase, mask = collate(selected, config.spatial_dims)
            if settings.flip:
                images = _flip(images, config.spatial_dims, rng)
            out = model(images, phase, mask, clinical_t[batch] if config.clinical_widths else None)
            loss = model.loss(out, labels[batch], targets_t[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def _flip(images: torch.Tensor, dims: int, rng: np.random.Generator) -> torch.Tensor:
    """Flip each image of (B, T, 1, *S) along each spatial axis with probability 1/2."""
    b, t = images.shape[:2]
    flat = images.reshape(b * t, *images.shape[2:])
    draws = rng.random((b * t, dims)) < 0.5
    out = torch.stack(
        [
            x.flip([1 + a for a in range(dims) if d[a]]) if d.any() else x
            for x, d in zip(flat, draws)
        ]
    )
    return out.reshape(images.shape)


@torch.no_grad()
def predict(
    model: MRPModel,
    patients: Sequence[PatientImages],
    clinical: np.ndarray,
    *,
    upto: int | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """(n,) P(pCR) from every image of the model's modality at phase index <= ``upto``.

    A patient without such an image gets NaN (the modality model does not apply; the fused
    system falls back on the other model or the clinical-only one).
    """
    model.eval()
    modality = model.config.modality
    out = np.full(len(patients), np.nan)
    for start in range(0, len(patients), batch_size):
        chunk = range(start, min(start + batch_size, len(patients)))
        rows = [i for i in chunk if patients[i].items(modality, upto)]
        if not rows:
            continue
        images, phase, mask = collate(
            [patients[i].items(modality, upto) for i in rows], model.config.spatial_dims
        )
        x = torch.from_numpy(clinical[rows]) if model.config.clinical_widths else None
        out[rows] = torch.sigmoid(model(images, phase, mask, x).logit).double().numpy()
    return out


def fit_clinical_net(
    clinical: np.ndarray, label: np.ndarray, widths: tuple[int, ...], settings: TrainSettings
) -> ClinicalNet:
    """Train the clinical-only comparator (BCE, full batches of ``settings.batch_size``)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = ClinicalNet(widths)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    x, y = torch.from_numpy(clinical), torch.as_tensor(label, dtype=torch.float32)
    net.train()
    for _ in range(settings.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


@torch.no_grad()
def predict_clinical(net: ClinicalNet, clinical: np.ndarray) -> np.ndarray:
    """(n,) P(pCR) of the clinical-only model."""
    return torch.sigmoid(net(torch.from_numpy(clinical))).double().numpy()
