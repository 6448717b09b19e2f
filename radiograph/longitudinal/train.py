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

Device and precision (:class:`TrainSettings`): the models train and predict on
``settings.device`` (``auto``: CUDA when present) with the forward pass under
:func:`radiograph.devices.autocast` (fp16 with loss scaling); the losses are computed in
float32 and the probabilities returned are float32 values on the host. On CUDA the host builds
the next batch (subset draws,
collate, flips, page-locked copy) in a background thread while the device runs the current
step, and batches are copied asynchronously; on the CPU both run in turn, so at fp32 the
arithmetic and the random draws are those of a CPU-only run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from radiograph.devices import (
    autocast,
    check_precision,
    device_problem,
    grad_scaler,
    resolve_device,
)
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
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: the forward pass's arithmetic, ``fp32``, ``bf16`` (CPU or CUDA) or
            ``fp16`` (CUDA only, with loss scaling); :func:`radiograph.devices.autocast`.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flip: bool = True
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        problem = device_problem(self.device)
        if problem:
            raise ValueError(f"device: {self.device!r}: {problem}")
        try:
            check_precision(self.precision, resolve_device(self.device))
        except ValueError as err:
            raise ValueError(f"precision: {err}") from None


def sample_subset(items: Sequence[Item], rng: np.random.Generator) -> tuple[Item, ...]:
    """A random non-empty subset of ``items`` (size uniform in 1..n, then uniform items), in
    their given order; empty for no items."""
    if not items:
        return ()
    k = int(rng.integers(1, len(items) + 1))
    keep = np.sort(rng.choice(len(items), size=k, replace=False))
    return tuple(items[i] for i in keep)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (where :func:`predict` runs it)."""
    return next(model.parameters()).device


def collate(
    selected: Sequence[Sequence[Item]],
    dims: int,
    *,
    flip_rng: np.random.Generator | None = None,
    pin: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad B patients' items into ``images`` (B, T, 1, *S), ``phase`` (B, T) long and
    ``mask`` (B, T) bool, T the largest item count (at least 1).

    Args:
        flip_rng: when given, each image is flipped along each spatial axis with probability
            1/2, from one draw of (B * T, dims) uniforms (absent slots included, row-major);
            the flip is done by the copy into the batch (a reversed view), so it costs no
            extra pass over the voxels (at 64^3 a separate flip took longer than the small
            encoder's CPU training step).
        pin: allocate the tensors in page-locked memory (asynchronous copies to CUDA).
    """
    b, t = len(selected), max(1, max((len(s) for s in selected), default=0))
    shape = next((item[1].shape for s in selected for item in s), (1,) * dims)
    images = torch.zeros(b, t, 1, *shape, pin_memory=pin)
    phase = torch.zeros(b, t, dtype=torch.long, pin_memory=pin)
    mask = torch.zeros(b, t, dtype=torch.bool, pin_memory=pin)
    flips = None if flip_rng is None else (flip_rng.random((b * t, dims)) < 0.5).reshape(b, t, -1)
    voxels = images.numpy()
    for i, items in enumerate(selected):
        for j, (k, array) in enumerate(items):
            if flips is not None:
                array = array[tuple(slice(None, None, -1 if f else 1) for f in flips[i, j])]
            voxels[i, j, 0] = array
            phase[i, j] = k
            mask[i, j] = True
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
        The trained model, in eval mode, on ``settings.device`` (:func:`predict` runs it
        there).
    """
    n = len(patients)
    if clinical.shape[0] != n or targets.shape[0] != n:
        raise ValueError(
            f"clinical, targets: need {n} rows, got {clinical.shape[0]} and {targets.shape[0]}"
        )
    device = resolve_device(settings.device)
    cuda = device.type == "cuda"
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = MRPModel(config).to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scaler = grad_scaler(device, settings.precision)
    batches = training_batches(config, patients, clinical, targets, settings, rng, pin=cuda)
    model.train()
    for batch in _ahead(batches) if cuda else batches:
        images, phase, mask, x, label, target = (
            None if t is None else t.to(device, non_blocking=cuda) for t in batch
        )
        with autocast(device, settings.precision):
            out = model(images, phase, mask, x)
        loss = model.loss(out, label, target)
        optimiser.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
    return model.eval()


#: A training batch on the host: images, phase, mask, clinical inputs (None without a
#: clinical input), labels and cross-modal targets of the batch's patients.
HostBatch = tuple[
    torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor
]


def training_batches(
    config: MRPConfig,
    patients: Sequence[PatientImages],
    clinical: np.ndarray,
    targets: np.ndarray,
    settings: TrainSettings,
    rng: np.random.Generator,
    *,
    pin: bool,
) -> Iterator[HostBatch]:
    """Every epoch's batches in training order (module docstring), built on the host.

    ``rng`` draws, in this order, each epoch's patient order, then per batch the patients'
    subsets and the flips: the only user of ``rng`` during training, so running this in a
    background thread (:func:`_ahead`) leaves the draws unchanged. ``pin``: page-locked
    tensors, for asynchronous copies to a CUDA device.
    """
    labels = torch.tensor([p.label for p in patients], dtype=torch.float32)
    clinical_t, targets_t = torch.from_numpy(clinical), torch.from_numpy(targets)
    n = len(patients)
    for _ in range(settings.epochs):
        order = rng.permutation(n)
        for start in range(0, n, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            selected = [sample_subset(patients[i].items(config.modality), rng) for i in batch]
            images, phase, mask = collate(
                selected, config.spatial_dims, flip_rng=rng if settings.flip else None, pin=pin
            )
            x = clinical_t[batch] if config.clinical_widths else None
            rows = (x, labels[batch], targets_t[batch])
            rows = tuple(t.pin_memory() if pin and t is not None else t for t in rows)
            yield images, phase, mask, *rows


def _ahead(items: Iterator[HostBatch]) -> Iterator[HostBatch]:
    """``items`` in order, each next one produced in a background thread while the caller
    works on the current one (one batch ahead; an error of ``items`` is raised here)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mrp-batches") as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


@torch.no_grad()
def predict(
    model: MRPModel,
    patients: Sequence[PatientImages],
    clinical: np.ndarray,
    *,
    upto: int | None = None,
    batch_size: int = 32,
    precision: str = "fp32",
) -> np.ndarray:
    """(n,) P(pCR) from every image of the model's modality at phase index <= ``upto``, the
    forward pass on the model's device at ``precision``, the probabilities computed in
    float32 and returned on the host.

    A patient without such an image gets NaN (the modality model does not apply; the fused
    system falls back on the other model or the clinical-only one).
    """
    model.eval()
    device = model_device(model)
    cuda = device.type == "cuda"
    modality = model.config.modality
    out = np.full(len(patients), np.nan)
    for start in range(0, len(patients), batch_size):
        chunk = range(start, min(start + batch_size, len(patients)))
        rows = [i for i in chunk if patients[i].items(modality, upto)]
        if not rows:
            continue
        batch = collate(
            [patients[i].items(modality, upto) for i in rows], model.config.spatial_dims, pin=cuda
        )
        if model.config.clinical_widths:
            x = torch.from_numpy(clinical[rows])
            batch += (x.pin_memory() if cuda else x,)
        images, phase, mask, *x = (t.to(device, non_blocking=cuda) for t in batch)
        with autocast(device, precision):
            logit = model(images, phase, mask, x[0] if x else None).logit
        out[rows] = torch.sigmoid(logit.float()).double().cpu().numpy()
    return out


def fit_clinical_net(
    clinical: np.ndarray, label: np.ndarray, widths: tuple[int, ...], settings: TrainSettings
) -> ClinicalNet:
    """Train the clinical-only comparator (BCE, full batches of ``settings.batch_size``) on
    ``settings.device`` at ``settings.precision``; the whole table goes to the device once
    (it is small) and each batch is indexed there."""
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = ClinicalNet(widths).to(device)
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scaler = grad_scaler(device, settings.precision)
    x = torch.from_numpy(clinical).to(device)
    y = torch.as_tensor(label, dtype=torch.float32).to(device)
    net.train()
    for _ in range(settings.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), settings.batch_size):
            batch = torch.from_numpy(order[start : start + settings.batch_size]).to(device)
            with autocast(device, settings.precision):
                logit = net(x[batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit.float(), y[batch])
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
    return net.eval()


@torch.no_grad()
def predict_clinical(net: ClinicalNet, clinical: np.ndarray, precision: str = "fp32") -> np.ndarray:
    """(n,) P(pCR) of the clinical-only model, on the net's device at ``precision``, the
    probabilities computed in float32 and returned on the host."""
    device = model_device(net)
    with autocast(device, precision):
        logit = net(torch.from_numpy(clinical).to(device))
    return torch.sigmoid(logit.float()).double().cpu().numpy()
