"""The training loop and the outer cross-validation of ``radiograph train``.

Per fold k the outputs go to ``config.model_dir / f"fold_{k}"``:

- ``checkpoint.pt``: model weights and everything needed to rebuild the model
  (:func:`load_fold_model`);
- ``train_log.csv``: one row per epoch: ``run`` (``final``, or ``selection`` for the runs that
  choose between restarts), ``restart``, learning rate, mean total loss, task loss, auxiliary
  loss and each unweighted auxiliary term (SPARRA: ``kl``, ``mse``), batches, batches without
  an event (Cox: their loss is 0), seconds;
- ``predictions.csv``: every train and test subject: ``subject_id, patient_id, split, time,
  event`` and ``risk`` (survival) or ``label, logit_0..logit_{C-1}`` (classification);
- ``embeddings.npz``: ``subject_ids`` (n,), ``split`` (n,), ``x`` (n, D) subject vectors (the
  features of the downstream survival baselines);
- ``importance/<subject_id>.npz``: per modality m, ``<m>_importance`` (N_m,) node importance
  (sums to 1 per graph, 0 for nodes SPARRA's TopK dropped), ``<m>_pos`` (N_m, 2|3) node
  positions, ``<m>_patch_importance`` (P,) the importance of each patch's node and
  ``<m>_patch_coords`` (P, 2|3), each when the graph has ``pos``, ``node_of_patch`` and
  ``patch_coords``;
- ``summary.json`` (written last): metrics, sizes, seconds, a hash of the settings
  (:func:`settings_hash`) and the fold digest (:func:`fold_digest`: the settings hash, the
  fold's split, the manifest rows (targets) of its subjects and the fingerprints of their
  graph files). A fold whose summary holds the same digest is skipped on a rerun; one whose
  data changed (a graph rebuilt or added, a target corrected) is retrained, saying why; other
  training settings stop the run with an error rather than mixing results.

All files are written atomically. On CPU a fixed seed gives identical outputs twice.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import concordance_index_censored
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from radiograph.devices import autocast, grad_scaler, host_memory_reuse, resolve_device
from radiograph.io.atomic import atomic_open, atomic_path, read_json, write_json
from radiograph.manifest import Manifest, load_manifest
from radiograph.nn import (
    Aggregator,
    SubjectBatch,
    collate_subjects,
    cox_nll,
    cross_entropy_loss,
)
from radiograph.nn.registry import build_aggregator, option_names
from radiograph.provenance import digest_of, file_fingerprint
from radiograph.runner import terminal_only
from radiograph.train.config import TrainConfig
from radiograph.train.data import GraphCohort, SubjectRecord, load_graph_cohort, node_scaling
from radiograph.train.splits import load_or_create_splits, make_splits

HASH_EXCLUDED = ("run_folds", "device", "out_dir", "graphs_dir", "manifest", "splits")
"""Settings that do not change a fold's result (device: up to floating-point order), and the
paths of its data, whose content the fold digest covers instead (:func:`fold_inputs`), so a
moved study folder is not retrained."""

GraphFingerprints = Mapping[str, Mapping[str, str]]
"""modality -> subject id -> :func:`radiograph.provenance.file_fingerprint` of its graph file."""

T = TypeVar("T")

INNER_FOLDS = 5
"""Restarts are scored on one of this many patient-level folds of the training subjects."""


class FoldConflictError(RuntimeError):
    """A finished fold folder holds results of other settings."""


@dataclass(frozen=True)
class Targets:
    """Targets of a batch: (B,) time, (B,) event (0/1 float), (B,) label (long, or None)."""

    time: torch.Tensor
    event: torch.Tensor
    label: torch.Tensor | None

    def to(self, device: torch.device) -> Targets:
        label = None if self.label is None else self.label.to(device)
        return Targets(self.time.to(device), self.event.to(device), label)


@dataclass(frozen=True)
class FoldResult:
    """Outcome of one fold.

    Attributes:
        fold: fold index.
        fold_dir: the fold's output folder.
        n_train, n_test: subjects trained and tested on (those with graphs).
        metrics: survival: ``c_index_train``, ``c_index_test`` (Harrell); classification:
            ``accuracy_train``, ``accuracy_test``.
        seconds: wall time of training and prediction.
        skipped: True when the fold was already complete and not retrained.
        retrained: why a finished fold was trained again ("" when it was not).
    """

    fold: int
    fold_dir: Path
    n_train: int
    n_test: int
    metrics: dict[str, float]
    seconds: float
    skipped: bool = False
    retrained: str = ""


@dataclass
class Predictions:
    """Model outputs for n subjects, in input order.

    Attributes:
        prediction: (n,) risk or (n, C) logits.
        embedding: (n, D) subject vectors x.
        importance: per subject, modality -> (N_m,) node importance.
    """

    prediction: np.ndarray
    embedding: np.ndarray
    importance: list[dict[str, np.ndarray]]


def aggregator_options(config: TrainConfig) -> dict[str, Any]:
    """The aggregator's options: ``aggregator_options`` plus ``dropout`` where its config has
    that field (:func:`radiograph.nn.registry.option_names`)."""
    options = dict(config.aggregator_options)
    if "dropout" in option_names(config.aggregator):
        options["dropout"] = config.dropout
    return options


def settings_hash(config: TrainConfig) -> str:
    """SHA-256 (16 hex digits) of the settings that determine a fold's results."""
    settings = {k: v for k, v in config.to_dict().items() if k not in HASH_EXCLUDED}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def graph_fingerprints(
    graphs_dir: str | Path, modalities: Sequence[str], subject_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """:data:`GraphFingerprints` of the graph files that exist (a subject without a file for a
    modality is absent from that modality's mapping, so adding the file changes it)."""
    out: dict[str, dict[str, str]] = {}
    for modality in modalities:
        out[modality] = {}
        for subject_id in subject_ids:
            path = Path(graphs_dir) / modality / f"{subject_id}.pt"
            if path.is_file():
                out[modality][subject_id] = file_fingerprint(path)
    return out


def fold_inputs(
    cohort: GraphCohort, split: Mapping[str, Sequence[str]], graphs: GraphFingerprints
) -> dict[str, Any]:
    """The data one fold is trained and tested on, JSON-ready.

    Returns:
        ``split`` (train and test subject ids), ``targets`` (subject id -> [patient id, time,
        event, label index] of each fold subject the cohort holds: the manifest rows the fold
        uses), ``classes`` (classification) and ``graphs`` (modality -> subject id ->
        fingerprint of each fold subject's graph file).
    """
    subjects = [*split["train"], *split["test"]]
    records = cohort.records
    return {
        "split": {"train": list(split["train"]), "test": list(split["test"])},
        "targets": {
            s: [records[s].patient_id, records[s].time, records[s].event, records[s].label]
            for s in subjects
            if s in records
        },
        "classes": list(cohort.classes) if cohort.classes else None,
        "graphs": {
            m: {s: graphs[m][s] for s in subjects if s in graphs.get(m, {})}
            for m in cohort.modalities
        },
    }


def fold_digest(config: TrainConfig, inputs: Mapping[str, Any]) -> str:
    """Digest of everything a fold's results depend on: :func:`settings_hash` and
    :func:`fold_inputs` (BLAKE2b of their canonical JSON,
    :func:`radiograph.provenance.digest_of`)."""
    return digest_of({"settings_hash": settings_hash(config), "inputs": dict(inputs)})


def fold_status(config: TrainConfig, fold: int, inputs: Mapping[str, Any]) -> tuple[str, str]:
    """Whether fold ``fold`` must be (re)trained for ``inputs``, and why.

    Returns:
        ``("current", "")`` (finished with this digest), ``("new", "")`` (no summary), or
        ``("changed", reason)``: a finished fold of an older version (no digest), or one whose
        split, targets or graphs differ (reason names what, and up to three subjects).

    Raises:
        FoldConflictError: the fold folder holds a finished fold of other training settings.
    """
    summary_path = config.model_dir / f"fold_{fold}" / "summary.json"
    if not summary_path.exists():
        return "new", ""
    summary = read_json(summary_path)
    if "fold_digest" not in summary:
        return "changed", "no fold digest (trained by an older version of radiograph)"
    if summary.get("settings_hash") != settings_hash(config):
        raise FoldConflictError(
            f"{summary_path.parent} holds a finished fold trained with other settings "
            f"(hash {summary.get('settings_hash')} != {settings_hash(config)}); use another "
            "out_dir or delete the folder"
        )
    if summary["fold_digest"] == fold_digest(config, inputs):
        return "current", ""
    return "changed", _inputs_difference(summary.get("fold_inputs") or {}, inputs)


def _inputs_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Which parts of two :func:`fold_inputs` differ, naming up to three subjects."""
    reasons = []
    for part in ("split", "classes"):
        if old.get(part) != new.get(part):
            reasons.append(f"{part} changed")
    changed_targets = _changed_keys(old.get("targets") or {}, new["targets"])
    if changed_targets:
        reasons.append(f"targets of {_names(changed_targets)} changed")
    for modality, graphs in new["graphs"].items():
        changed = _changed_keys((old.get("graphs") or {}).get(modality) or {}, graphs)
        if changed:
            reasons.append(f"{modality} graphs of {_names(changed)} changed")
    return "; ".join(reasons) or "fold inputs changed"


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _names(keys: Sequence[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def collate_records(
    records: Sequence[SubjectRecord], modalities: Sequence[str]
) -> tuple[SubjectBatch, Targets]:
    """Batch subjects for an aggregator; see :func:`radiograph.nn.collate_subjects`."""
    return collate_subjects([r.graphs for r in records], modalities), targets_of(records)


def targets_of(records: Sequence[SubjectRecord]) -> Targets:
    """(B,) time, event and (classification) label tensors of ``records``."""
    labels = [r.label for r in records]
    return Targets(
        time=torch.tensor([r.time for r in records], dtype=torch.float64),
        event=torch.tensor([r.event for r in records], dtype=torch.float64),
        label=None if any(lab is None for lab in labels) else torch.tensor(labels),
    )


def task_loss(
    prediction: torch.Tensor,
    targets: Targets,
    task: str,
    ties: str = "efron",
    cox_mean: str = "events",
) -> torch.Tensor:
    """Cox negative partial log-likelihood (survival) or cross-entropy (classification).

    ``cox_mean``: the Cox sum over events divided by the number of events (``"events"``,
    :func:`~radiograph.nn.cox_nll`) or by the number of subjects of the batch (``"batch"``,
    the reference code's ``-mean((risk - log cumsum exp(risk)) * event)``; SPARRA's reference
    preset).
    """
    if task == "survival":
        loss = cox_nll(prediction, targets.time, targets.event, ties=ties)
        if cox_mean == "batch":
            return loss * targets.event.sum().to(loss.dtype) / targets.event.numel()
        if cox_mean != "events":
            raise ValueError(f"cox_mean must be 'events' or 'batch', got {cox_mean!r}")
        return loss
    if targets.label is None:
        raise ValueError("classification needs a label for every subject of the batch")
    return cross_entropy_loss(prediction, targets.label)


def _reusing_host_memory(func: Callable[..., T]) -> Callable[..., T]:
    """Run ``func`` inside :func:`radiograph.devices.host_memory_reuse`: the activations one
    batch frees are reused by the next instead of being returned to the OS and faulted in again."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with host_memory_reuse():
            return func(*args, **kwargs)

    return wrapper


@_reusing_host_memory
def fit(
    model: Aggregator,
    records: Sequence[SubjectRecord],
    config: TrainConfig,
    *,
    device: torch.device,
    generator: torch.Generator,
    progress: bool = True,
    desc: str = "training",
) -> list[dict[str, float]]:
    """Train ``model`` in place: Adam, cosine-annealed learning rate, batches of subjects.

    The loss of a batch is the task loss plus ``AggregatorOutput.aux_loss``. Batches are
    reshuffled every epoch with ``generator``; dropout and SPARRA's sampling draw from torch's
    global generator (seed it, e.g. inside ``torch.random.fork_rng``). With SPARRA's reference
    preset (``config.sparra_reference``) the Cox loss is the batch mean and the last
    incomplete batch is dropped (when a full batch remains). The forward pass runs at
    ``config.precision`` (:func:`radiograph.devices.autocast`; the losses in float32, fp16 with
    loss scaling); batches go to a CUDA device from pinned memory.

    Args:
        model: the aggregator, already on ``device``.
        records: training subjects.
        config: lr, weight_decay, epochs, batch_size, task, ties, precision.
        device: where to compute.
        generator: CPU generator of the batch order.
        progress: show a tqdm bar over the epochs.
        desc: label of the bar.

    Returns:
        One dict per epoch: ``epoch, lr, loss, task_loss, aux_loss``, each auxiliary term,
        ``batches, batches_no_event, seconds`` (losses are means over the batches).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    scaler = grad_scaler(device, config.precision)
    reference = config.sparra_reference  # docs/sparra.md, "Presets"
    loader = DataLoader(
        list(records),
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda rs: collate_records(rs, model.modalities),
        drop_last=reference and len(records) > config.batch_size,
        pin_memory=device.type == "cuda",
    )
    log: list[dict[str, float]] = []
    bar = tqdm(
        range(config.epochs), desc=desc, unit="epoch", disable=terminal_only(progress), leave=False
    )
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}
        batches = no_event = 0
        lr = optimizer.param_groups[0]["lr"]
        for batch, targets in loader:
            batch, targets = batch.to(device, non_blocking=True), targets.to(device)
            with autocast(device, config.precision):
                out = model(batch)
            prediction = out.prediction if config.precision == "fp32" else out.prediction.float()
            loss_task = task_loss(
                prediction, targets, config.task, config.ties, "batch" if reference else "events"
            )
            loss = loss_task + out.aux_loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            terms = {"loss": loss, "task_loss": loss_task, "aux_loss": out.aux_loss}
            terms.update(out.aux_terms)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            batches += 1
            no_event += int(config.task == "survival" and not bool(targets.event.any()))
        scheduler.step()
        row = {"epoch": epoch + 1, "lr": lr}
        row.update({name: total / batches for name, total in sums.items()})
        row.update(batches=batches, batches_no_event=no_event, seconds=time.perf_counter() - start)
        log.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    return log


@_reusing_host_memory
@torch.no_grad()
def predict(
    model: Aggregator,
    records: Sequence[SubjectRecord],
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
) -> Predictions:
    """Evaluation-mode outputs of ``model`` for ``records`` (in order), the forward pass at
    ``precision`` (:func:`radiograph.devices.autocast`)."""
    model.eval()
    predictions, embeddings = [], []
    importance: list[dict[str, np.ndarray]] = [{} for _ in records]
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        batch, _ = collate_records(chunk, model.modalities)
        with autocast(device, precision):
            out = model(batch.to(device))
        predictions.append(out.prediction.double().cpu())
        embeddings.append(out.embedding.double().cpu())
        for modality, values in out.importance.items():
            graphs = batch.graphs[modality]
            ptr = graphs.ptr.tolist()
            values = values.double().cpu().numpy()
            for g, subject in enumerate(batch.subject_of_graph[modality].tolist()):
                importance[start + subject][modality] = values[ptr[g] : ptr[g + 1]]
    return Predictions(
        prediction=torch.cat(predictions).numpy(),
        embedding=torch.cat(embeddings).numpy(),
        importance=importance,
    )


def _harrell(event: np.ndarray, time_: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C; NaN when no pair is comparable (no event, or no event before a later time)."""
    if not event.any():
        return float("nan")
    try:
        return float(concordance_index_censored(event.astype(bool), time_, risk)[0])
    except NoComparablePairException:
        return float("nan")


def _metrics(
    records: Sequence[SubjectRecord], preds: Predictions, is_test: np.ndarray, task: str
) -> dict[str, float]:
    metrics = {}
    for split, mask in (("train", ~is_test), ("test", is_test)):
        subset = [r for r, m in zip(records, mask) if m]
        if task == "survival":
            metrics[f"c_index_{split}"] = _harrell(
                np.array([r.event for r in subset]),
                np.array([r.time for r in subset]),
                preds.prediction[mask],
            )
        else:
            labels = np.array([r.label for r in subset])
            metrics[f"accuracy_{split}"] = float(
                np.mean(preds.prediction[mask].argmax(axis=1) == labels)
            )
    return metrics


def _write_log(path: Path, log: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(k for row in log for k in row))
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(log)


def _write_predictions(
    path: Path,
    records: Sequence[SubjectRecord],
    preds: Predictions,
    is_test: np.ndarray,
    task: str,
) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        head = ["subject_id", "patient_id", "split", "time", "event"]
        if task == "survival":
            writer.writerow(head + ["risk"])
        else:
            n_classes = preds.prediction.shape[1]
            writer.writerow(head + ["label"] + [f"logit_{c}" for c in range(n_classes)])
        for record, pred, test in zip(records, preds.prediction, is_test):
            row = [
                record.subject_id,
                record.patient_id,
                "test" if test else "train",
                repr(record.time),
                record.event,
            ]
            if task == "survival":
                row.append(repr(float(pred)))
            else:
                row += [record.label] + [repr(float(v)) for v in pred]
            writer.writerow(row)


def _write_importance(
    folder: Path, record: SubjectRecord, importance: dict[str, np.ndarray]
) -> None:
    arrays: dict[str, np.ndarray] = {}
    for modality, values in importance.items():
        graph = record.graphs[modality]
        arrays[f"{modality}_importance"] = values
        pos = getattr(graph, "pos", None)
        if pos is not None:
            arrays[f"{modality}_pos"] = pos.cpu().numpy()
        node_of_patch = getattr(graph, "node_of_patch", None)
        if node_of_patch is not None:
            arrays[f"{modality}_patch_importance"] = values[node_of_patch.cpu().numpy()]
        patch_coords = getattr(graph, "patch_coords", None)
        if patch_coords is not None:
            arrays[f"{modality}_patch_coords"] = patch_coords.cpu().numpy()
    with atomic_path(folder / f"{record.subject_id}.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def fold_seed(seed: int, fold: int, restart: int = 0) -> int:
    """Seed of restart ``restart`` of fold ``fold``: independent streams from one study seed."""
    entropy = [seed, fold] if restart == 0 else [seed, fold, restart]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def selection_loss(
    model: Aggregator, records: Sequence[SubjectRecord], config: TrainConfig, device: torch.device
) -> float:
    """Task loss of a trained model on all of ``records`` at once, in evaluation mode (the
    criterion that picks one of several restarts, on held-out training subjects)."""
    preds = predict(model, records, config.batch_size, device, config.precision)
    prediction = torch.from_numpy(preds.prediction)
    return float(task_loss(prediction, targets_of(records), config.task, config.ties))


def _train_model(
    config: TrainConfig,
    cohort: GraphCohort,
    records: Sequence[SubjectRecord],
    seed: int,
    device: torch.device,
    *,
    progress: bool,
    desc: str,
) -> tuple[Aggregator, list[dict[str, float]]]:
    """Build the configured aggregator from ``seed`` (initialisation, batch order, dropout) and
    fit it on ``records``, with node scaling from those records; returns it and its epoch log."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    num_classes = len(cohort.classes) if cohort.classes else 2
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_aggregator(
            config.aggregator,
            cohort.in_dims,
            config.task,
            num_classes,
            **aggregator_options(config),
        )
        if config.standardize:
            model.set_node_scaling(node_scaling(records, cohort.modalities))
        model = model.to(device)
        generator = torch.Generator().manual_seed(seed)
        rows = fit(
            model, records, config, device=device, generator=generator, progress=progress, desc=desc
        )
    return model, rows


def choose_restart(
    config: TrainConfig,
    cohort: GraphCohort,
    fold: int,
    train: Sequence[SubjectRecord],
    device: torch.device,
    *,
    progress: bool = True,
) -> tuple[int, list[dict[str, float]], list[dict[str, float]]]:
    """Pick one of ``config.restarts`` initialisations using the fold's training subjects only.

    One fifth of the training patients is held out (patient-level, stratified by event or
    label, seeded by the fold); each restart is trained on the other four fifths and scored by
    its task loss on the held-out fifth (:func:`selection_loss`). The test subjects play no
    part.

    Returns:
        The chosen restart, one summary row per restart (``restart``, ``seed``,
        ``inner_val_loss``) and the epoch log of the selection runs.

    Raises:
        ValueError: the training fold has too few patients to hold out a fifth.
    """
    ids = [r.subject_id for r in train]
    strata = [str(r.event) if config.task == "survival" else str(r.label) for r in train]
    try:
        inner = make_splits(
            ids,
            [r.patient_id for r in train],
            strata,
            n_folds=INNER_FOLDS,
            seed=fold_seed(config.seed, fold),
        )[0]
    except ValueError as err:
        raise ValueError(
            f"fold {fold}: restarts = {config.restarts} hold out a fifth of the "
            f"{len(train)} training subjects to choose between them: {err}"
        ) from err
    held_out = set(inner["test"])
    fit_on = [r for r in train if r.subject_id not in held_out]
    scored = [r for r in train if r.subject_id in held_out]
    summary: list[dict[str, float]] = []
    log: list[dict[str, float]] = []
    for restart in range(config.restarts):
        seed = fold_seed(config.seed, fold, restart)
        candidate, rows = _train_model(
            config,
            cohort,
            fit_on,
            seed,
            device,
            progress=progress,
            desc=f"{config.aggregator} fold {fold} restart {restart}",
        )
        loss = selection_loss(candidate, scored, config, device)
        summary.append({"restart": restart, "seed": seed, "inner_val_loss": loss})
        log += [{"run": "selection", "restart": restart, **row} for row in rows]
    losses = np.array([row["inner_val_loss"] for row in summary])
    chosen = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
    return chosen, summary, log


@dataclass
class FoldFit:
    """A fold's trained model and its outputs, before they are written (:func:`fit_fold`).

    Attributes:
        model: the trained aggregator (on ``device``).
        records: the fold's training subjects, then its test subjects.
        is_test: (n,) bool, True for the test subjects of ``records``.
        predictions: evaluation-mode outputs for ``records``.
        metrics: see :attr:`FoldResult.metrics`.
        log: epoch rows of the selection runs (``run="selection"``), then of the final run.
        restarts: one row per restart (``restart``, ``seed``, ``inner_val_loss``); empty with
            one restart.
        chosen: the restart trained on the whole training fold.
        device: where it was computed.
    """

    model: Aggregator
    records: list[SubjectRecord]
    is_test: np.ndarray
    predictions: Predictions
    metrics: dict[str, float]
    log: list[dict[str, float]]
    restarts: list[dict[str, float]]
    chosen: int
    device: torch.device

    @property
    def n_train(self) -> int:
        """Training subjects."""
        return int((~self.is_test).sum())

    @property
    def n_test(self) -> int:
        """Test subjects."""
        return int(self.is_test.sum())


def train_fold(
    config: TrainConfig,
    cohort: GraphCohort,
    fold: int,
    split: dict[str, Sequence[str]],
    *,
    graphs: GraphFingerprints | None = None,
    progress: bool = True,
) -> FoldResult:
    """Train and evaluate one fold and write its outputs (see the module docstring), unless it
    is finished with the same digest: :func:`current_fold`, :func:`fit_fold`,
    :func:`write_fold`.

    Args:
        config: the training settings.
        cohort: subjects with graphs.
        fold: fold index (names the folder ``fold_<fold>`` and seeds the fold).
        split: ``{"train": [...], "test": [...]}`` subject ids; subjects the cohort lacks
            (no graphs) are left out.
        graphs: fingerprints of the graph files (:func:`graph_fingerprints`); None: computed
            here for the fold's subjects.
        progress: show tqdm progress.

    Returns:
        The :class:`FoldResult` (``skipped=True`` when the fold was already complete with the
        same digest; ``retrained`` says why a finished fold was trained again).

    Raises:
        FoldConflictError: the fold folder holds a finished fold of other settings.
        ValueError: no training or no test subject has graphs.
    """
    if graphs is None:
        graphs = graph_fingerprints(
            config.graphs_dir, cohort.modalities, [*split["train"], *split["test"]]
        )
    inputs = fold_inputs(cohort, split, graphs)
    done, reason = current_fold(config, fold, inputs)
    if done is not None:
        return done
    start = time.perf_counter()
    result = fit_fold(config, cohort, fold, split, progress=progress)
    return write_fold(config, cohort, fold, result, inputs, start=start, retrained=reason)


def current_fold(
    config: TrainConfig, fold: int, inputs: Mapping[str, Any]
) -> tuple[FoldResult | None, str]:
    """The resume check: the fold's :class:`FoldResult` (``skipped=True``) when it is finished
    with the digest of ``inputs`` (:func:`fold_status`), else None and why it is retrained
    ("" for a new fold). A fold to retrain loses its ``summary.json`` here, so that a killed
    retraining does not leave stale results marked finished.

    Raises:
        FoldConflictError: the fold folder holds a finished fold of other settings.
    """
    fold_dir = config.model_dir / f"fold_{fold}"
    status, reason = fold_status(config, fold, inputs)
    if status == "current":
        summary = read_json(fold_dir / "summary.json")
        return FoldResult(
            fold,
            fold_dir,
            summary["n_train"],
            summary["n_test"],
            summary["metrics"],
            summary["seconds"],
            skipped=True,
        ), ""
    (fold_dir / "summary.json").unlink(missing_ok=True)
    return None, reason


def fit_fold(
    config: TrainConfig,
    cohort: GraphCohort,
    fold: int,
    split: Mapping[str, Sequence[str]],
    *,
    progress: bool = True,
) -> FoldFit:
    """Train the fold's model on its training subjects (choosing between ``config.restarts``
    initialisations first, :func:`choose_restart`) and predict every fold subject; writes
    nothing. Warns when the training or test subjects hold no event (survival).

    Raises:
        ValueError: no training or no test subject has graphs.
    """
    train = cohort.select(split["train"])
    test = cohort.select(split["test"])
    if not train or not test:
        raise ValueError(
            f"fold {fold}: {len(train)} training and {len(test)} test subjects have "
            "graphs; both must be non-empty"
        )
    if config.task == "survival":
        for name, subset in (("training", train), ("test", test)):
            if not any(r.event for r in subset):
                warnings.warn(
                    f"fold {fold}: no event among its {len(subset)} {name} subjects; "
                    + (
                        "the Cox loss is 0 and the model stays at its initialisation"
                        if name == "training"
                        else "its C-index is undefined (NaN)"
                    ),
                    stacklevel=3,
                )
    device = resolve_device(config.device)
    restarts: list[dict[str, float]] = []
    log: list[dict[str, float]] = []
    chosen = 0
    if config.restarts > 1:
        chosen, restarts, log = choose_restart(
            config, cohort, fold, train, device, progress=progress
        )
    model, rows = _train_model(
        config,
        cohort,
        train,
        fold_seed(config.seed, fold, chosen),
        device,
        progress=progress,
        desc=f"{config.aggregator} fold {fold}",
    )
    log += [{"run": "final", "restart": chosen, **row} for row in rows]
    records = train + test
    preds = predict(model, records, config.batch_size, device, config.precision)
    is_test = np.array([False] * len(train) + [True] * len(test))
    metrics = _metrics(records, preds, is_test, config.task)
    return FoldFit(model, records, is_test, preds, metrics, log, restarts, chosen, device)


def write_fold(
    config: TrainConfig,
    cohort: GraphCohort,
    fold: int,
    result: FoldFit,
    inputs: Mapping[str, Any],
    *,
    start: float,
    retrained: str = "",
) -> FoldResult:
    """Write a fitted fold's files (module docstring), ``summary.json`` last, each atomically.

    Args:
        config, cohort, fold: as in :func:`train_fold`.
        result: the fitted fold (:func:`fit_fold`).
        inputs: its :func:`fold_inputs`, recorded with their digest in ``summary.json``.
        start: ``time.perf_counter()`` when the fold began; ``seconds`` runs to the last file
            before the summary.
        retrained: why a finished fold was trained again ("" when it was not).
    """
    fold_dir = config.model_dir / f"fold_{fold}"
    records, is_test, preds = result.records, result.is_test, result.predictions
    with atomic_path(fold_dir / "checkpoint.pt") as tmp:
        torch.save(
            {
                "state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()},
                "aggregator": config.aggregator,
                "options": aggregator_options(config),
                "in_dims": cohort.in_dims,
                "task": config.task,
                "num_classes": len(cohort.classes) if cohort.classes else 2,
                "classes": cohort.classes,
                "fold": fold,
                "config": config.to_dict(),
            },
            tmp,
        )
    _write_log(fold_dir / "train_log.csv", result.log)
    _write_predictions(fold_dir / "predictions.csv", records, preds, is_test, config.task)
    with atomic_path(fold_dir / "embeddings.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                subject_ids=np.array([r.subject_id for r in records]),
                split=np.where(is_test, "test", "train"),
                x=preds.embedding,
            )
    for record, importance in zip(records, preds.importance):
        _write_importance(fold_dir / "importance", record, importance)
    seconds = time.perf_counter() - start
    write_json(
        fold_dir / "summary.json",
        {
            "fold": fold,
            "settings_hash": settings_hash(config),
            "fold_digest": fold_digest(config, inputs),
            "n_train": result.n_train,
            "n_test": result.n_test,
            "metrics": result.metrics,
            "seconds": seconds,
            "device": str(result.device),
            "restarts": result.restarts,
            "chosen_restart": result.chosen,
            "config": config.to_dict(),
            "fold_inputs": inputs,
        },
    )
    return FoldResult(
        fold, fold_dir, result.n_train, result.n_test, result.metrics, seconds, retrained=retrained
    )


def load_fold_model(checkpoint: str | Path, device: str = "cpu") -> Aggregator:
    """Rebuild the trained aggregator of a fold from its ``checkpoint.pt`` (evaluation mode)."""
    state = torch.load(checkpoint, map_location=device, weights_only=False)
    model = build_aggregator(
        state["aggregator"],
        state["in_dims"],
        state["task"],
        state["num_classes"],
        **state["options"],
    )
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


def strata_of(manifest: Manifest, task: str) -> list[str]:
    """Stratification labels of the manifest subjects: event (survival) or label."""
    if task == "survival":
        return [str(s.event) for s in manifest.subjects]
    return [str(s.label) for s in manifest.subjects]


@dataclass(frozen=True)
class TrainingData:
    """What every model trained on one modality set reads: the manifest, its graphs and their
    fingerprints (:func:`load_training_data`). A study loads it once per modality set and
    shares it between its aggregators and seeds; training only reads it.

    Attributes:
        graphs_dir: the graph folder it was read from.
        manifest: the cohort manifest.
        cohort: the subjects with graphs for ``cohort.modalities``.
        graphs: fingerprints of the graph files, taken before they were read.
        task: the task the targets were read for.
    """

    graphs_dir: Path
    manifest: Manifest
    cohort: GraphCohort
    graphs: GraphFingerprints
    task: str

    def check_matches(self, config: TrainConfig) -> None:
        """Raise ValueError (naming the field) unless ``config`` reads these data."""
        wanted = {
            "graphs_dir": (Path(config.graphs_dir), self.graphs_dir),
            "manifest": (Path(config.manifest), self.manifest.path),
            "modalities": (tuple(config.modalities), self.cohort.modalities),
            "task": (config.task, self.task),
        }
        for name, (expected, held) in wanted.items():
            if expected != held:
                raise ValueError(f"data: loaded for {name} {held!r}, the config has {expected!r}")


def load_training_data(config: TrainConfig, *, progress: bool = True) -> TrainingData:
    """Read ``config``'s manifest and graphs (``graphs_dir``, ``modalities``, ``task``).

    The graph files are fingerprinted before they are read, so a graph rewritten meanwhile
    makes the next run retrain the folds that use it.

    Raises:
        ValueError: a survival task whose subjects with graphs hold no event, or as
            :func:`radiograph.train.data.load_graph_cohort`.
    """
    manifest = load_manifest(config.manifest, check_files=False)
    graphs = graph_fingerprints(
        config.graphs_dir, config.modalities, [s.subject_id for s in manifest.subjects]
    )
    cohort = load_graph_cohort(
        config.graphs_dir, manifest, config.modalities, config.task, progress=progress
    )
    if config.task == "survival" and not any(r.event for r in cohort.records.values()):
        raise ValueError(
            f"{manifest.path}: column 'event' is 0 for all {len(cohort.records)} subjects with "
            "graphs; a survival model needs at least one observed event"
        )
    return TrainingData(Path(config.graphs_dir), manifest, cohort, graphs, config.task)


def run_cross_validation(
    config: TrainConfig, *, data: TrainingData | None = None, progress: bool = True
) -> list[FoldResult]:
    """Train and evaluate the configured model on the outer folds (``radiograph train``).

    Loads the manifest and graphs (unless ``data`` holds them), reads or creates the shared
    splits file (patient-level, stratified by event or label, over every manifest subject),
    then runs :func:`train_fold` on each fold of ``config.fold_indices``. Finished folds with
    the same digest are skipped; the folds whose data changed (:func:`fold_status`) are
    retrained, and how many is printed first. Only the folds of ``config.run_folds`` are
    checked and retrained, by design: a subset run after a data change leaves the other
    folds as they were (stale until they are run; each fold's digest says which data it saw).

    Args:
        config: the training settings.
        data: the manifest and graphs, already loaded (:func:`load_training_data`) for this
            config's ``graphs_dir``, ``manifest``, ``modalities`` and ``task``.
        progress: show progress bars (on a terminal).

    Returns:
        One :class:`FoldResult` per fold run.

    Raises:
        ValueError: ``data`` was loaded for other graphs, manifest, modalities or task.
    """
    if data is None:
        data = load_training_data(config, progress=progress)
    data.check_matches(config)
    manifest, cohort, graphs = data.manifest, data.cohort, data.graphs
    folds = load_or_create_splits(
        config.splits_path,
        [s.subject_id for s in manifest.subjects],
        [s.patient_id for s in manifest.subjects],
        strata_of(manifest, config.task),
        config.folds,
        config.seed,
    )
    changed = []
    for k in config.fold_indices:
        status, reason = fold_status(config, k, fold_inputs(cohort, folds[k], graphs))
        if status == "changed":
            changed.append((k, reason))
    if changed:
        print(
            f"{config.aggregator} on {'+'.join(config.modalities)}: {len(changed)} of "
            f"{len(config.fold_indices)} folds changed since the last run (settings or inputs): "
            f"retraining them; fold {changed[0][0]}: {changed[0][1]}",
            flush=True,
        )
    return [
        train_fold(config, cohort, k, folds[k], graphs=graphs, progress=progress)
        for k in config.fold_indices
    ]


def format_results(results: Sequence[FoldResult]) -> str:
    """A plain-text table of the folds and the mean of each metric."""
    if not results:
        return "no folds run"
    names = list(results[0].metrics)
    lines = ["fold  n_train  n_test  " + "  ".join(f"{n:>14}" for n in names) + "  seconds"]
    for r in results:
        values = "  ".join(f"{r.metrics[n]:>14.4f}" for n in names)
        note = " (done before)" if r.skipped else " (retrained)" if r.retrained else ""
        lines.append(
            f"{r.fold:>4}  {r.n_train:>7}  {r.n_test:>6}  {values}  {r.seconds:>7.1f}{note}"
        )
    means = "  ".join(f"{np.nanmean([r.metrics[n] for r in results]):>14.4f}" for n in names)
    lines.append(f"mean  {'':>7}  {'':>6}  {means}")
    return "\n".join(lines)
