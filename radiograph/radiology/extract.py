"""Volumes -> one h5 of unit features per subject (nodes with 3D positions), resumable.

Per subject: load and check the volume and mask, resample to isotropic spacing, normalise
(:mod:`~radiograph.radiology.volume`), cut the tumour into units (grid cubes or habitat
components, :mod:`~radiograph.radiology.units`), compute each unit's features (pyradiomics,
a 3D ViT, or a 2D encoder slice by slice) and write them. Outputs (written atomically)::

    <out>/features/radiology/<subject_id>.h5
    <out>/features/radiology/habitat_model.json   (--units habitat, unless --habitat-model)
    <out>/runs/extract-radiology.json              (run record: done / skipped / failed)

The h5 holds ``features`` (N, D) and ``coords`` (N, 3): the physical centroid (mm, x, y, z)
of each unit's voxels, plus ``unit_voxels`` (N,) and, for habitats, ``habitat`` (N,) and the
per-habitat summary ``habitat_mean_intensity`` (K, C), ``habitat_volume_mm3`` (K,),
``habitat_proportion`` (K,).

Each h5 has a provenance record ``<subject_id>.h5.prov.json`` (:mod:`radiograph.provenance`):
the fingerprints of the volume(s), the mask, the habitat model, the pyradiomics parameter file
and the encoder weights, and the digest of the settings that shape the features
(:func:`radiology_settings`). A rerun redoes exactly the subjects whose record differs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from radiograph.devices import resolve_device
from radiograph.encoders import ENCODERS, PatchEncoder, build_encoder
from radiograph.encoders.vit3d import VOLUME_ENCODERS, ViT3D, build_volume_encoder
from radiograph.io.atomic import atomic_path
from radiograph.io.features import FeatureSet, file_sha256, write_features
from radiograph.manifest import Manifest
from radiograph.provenance import (
    Provenance,
    begin_outputs,
    canonical,
    fingerprint_files,
    make_provenance,
    prepare_rerun,
    record_outputs,
)
from radiograph.radiology.config import DEFAULT_K_RANGE, PYRADIOMICS, RadiologyConfig
from radiograph.radiology.deep_features import encode_slices, encode_volume, unit_features
from radiograph.radiology.habitats import HabitatModel
from radiograph.radiology.radiomics_features import DEFAULT_PARAMS, RadiomicsExtractor
from radiograph.radiology.units import NoUnitsError, Units, grid_units, habitat_units
from radiograph.radiology.volume import Volume, VolumeError, load_volume
from radiograph.runner import Backend, RunRecord, Task, run_cohort, terminal_only

STAGE = "extract-radiology"


@dataclass(frozen=True)
class RadiologyJob:
    """One subject to extract."""

    subject_id: str
    volume_paths: tuple[Path, ...]
    mask_path: Path
    modality: str
    features_path: Path


def radiology_jobs(manifest: Manifest, out_dir: str | os.PathLike) -> list[RadiologyJob]:
    """One job per subject with radiology (``volume_paths`` and ``mask_path``)."""
    folder = features_dir(out_dir)
    return [
        RadiologyJob(
            s.subject_id,
            tuple(s.volume_paths),
            s.mask_path,
            s.radiology_modality,
            folder / f"{s.subject_id}.h5",
        )
        for s in manifest.subjects
        if s.has_radiology and s.mask_path is not None
    ]


def features_dir(out_dir: str | os.PathLike) -> Path:
    """``<out>/features/radiology``."""
    return Path(out_dir) / "features" / "radiology"


def load_job_volume(job: RadiologyJob, config: RadiologyConfig) -> Volume:
    """:func:`load_volume` with the job's files and the config's options."""
    return load_volume(
        job.subject_id,
        job.volume_paths,
        job.mask_path,
        modality=job.modality,
        spacing_mm=config.spacing_mm,
        resample_mask=config.resample_mask,
        mask_label=config.mask_label,
        hu_window=config.hu_window,
    )


def make_units(
    volume: Volume, config: RadiologyConfig, habitat_model: HabitatModel | None = None
) -> tuple[Units, dict[str, np.ndarray]]:
    """The volume's units and, for habitats, the per-habitat summary arrays.

    Raises:
        VolumeError: no unit fits (names subject and file), or habitats without a model.
    """
    where = f"subject {volume.subject_id!r}: {volume.sources[0]}"
    extras: dict[str, np.ndarray] = {}
    try:
        if config.units == "grid":
            units = grid_units(
                volume.mask,
                float(volume.spacing[0]),
                size_mm=config.unit_size_mm,
                min_fraction=config.min_fraction,
            )
        else:
            if habitat_model is None:
                raise VolumeError(f"{where}: habitat units need a fitted habitat model")
            labels = habitat_model.transform(volume.normalised, volume.mask)
            units = habitat_units(labels, min_voxels=config.min_unit_voxels)
            summary = habitat_model.summary(labels, volume.intensity, volume.spacing)
            extras = {
                "habitat": units.habitat,
                "habitat_mean_intensity": summary.mean_intensity,
                "habitat_volume_mm3": summary.volume_mm3,
                "habitat_proportion": summary.proportion,
            }
    except NoUnitsError as err:
        raise VolumeError(f"{where}: volume too small for any unit: {err}") from err
    return units, extras


def extract_subject(
    job: RadiologyJob,
    config: RadiologyConfig,
    *,
    habitat_model: HabitatModel | None = None,
    encoder: torch.nn.Module | None = None,
    progress: bool = False,
) -> Path:
    """Extract one subject's unit features and write ``job.features_path``.

    Args:
        job: the subject's files and output path.
        config: the extraction options.
        habitat_model: the fitted model (habitat units); None loads ``config.habitat_model``.
        encoder: a built encoder to reuse; None builds (and caches) the configured one.
        progress: show per-unit / per-batch progress bars.

    Raises:
        VolumeError: bad input (names subject and file); EncoderError, RadiomicsError.
    """
    kind = config.feature_kind
    if config.units == "habitat" and habitat_model is None:
        if config.habitat_model is None:
            raise VolumeError(f"subject {job.subject_id!r}: habitat units need --habitat-model")
        habitat_model = cached_habitat_model(config.habitat_model)
    volume = load_job_volume(job, config)
    units, extras = make_units(volume, config, habitat_model)
    attrs: dict[str, Any] = {
        "subject_id": job.subject_id,
        "modality": "radiology",
        "radiology_modality": volume.modality,
        "source": ";".join(str(p) for p in job.volume_paths),
        "mask": str(job.mask_path),
        "channels": volume.num_channels,
        "spacing": volume.spacing,
        "units": units.kind,
        "unit_size_mm": units.size_mm,
        "patch_size": int(round(units.size_mm / volume.spacing[0])) if units.kind == "grid" else 0,
        "coords_unit": "mm",
    }
    if volume.modality == "CT":
        attrs["hu_window"] = np.asarray(config.hu_window, dtype=np.float64)
    if units.kind == "habitat":
        assert habitat_model is not None
        attrs["n_habitats"] = habitat_model.k
        if config.habitat_model is not None:
            attrs["habitat_model_sha256"] = file_sha256(config.habitat_model)
    if kind == PYRADIOMICS:
        extractor = RadiomicsExtractor(config.params, modality=volume.modality)
        features, names = extractor.extract(volume, units, progress=progress)
        attrs.update(
            encoder=PYRADIOMICS,
            feature_names=names,
            weights_sha256="",
            random_weights=False,
            params=str(extractor.params_path),
            params_sha256=extractor.params_sha256,
        )
    else:
        device = resolve_device(config.device)
        model = (
            encoder
            if encoder is not None
            else cached_encoder(config.features, config.weights, config.random_weights, config.seed)
        )
        model = model.to(device)
        region = units.labels > 0
        if kind == "3d":
            assert isinstance(model, ViT3D)
            tokens = encode_volume(
                model,
                volume.normalised,
                region,
                batch_size=config.batch_size,
                device=device,
                progress=progress,
            )
            attrs["encoder_patch_size"] = np.asarray(model.patch_size, dtype=np.int64)
        else:
            assert isinstance(model, PatchEncoder)
            tokens = encode_slices(
                model,
                volume.normalised,
                region,
                modality=volume.modality,
                tile=config.slice_tile,
                batch_size=config.batch_size,
                device=device,
                progress=progress,
            )
            attrs["encoder_patch_size"] = np.asarray(
                [1, config.slice_tile, config.slice_tile], dtype=np.int64
            )
        features = unit_features(tokens, units)
        attrs.update(
            encoder=config.features,
            weights_sha256=model.weights_sha256,
            random_weights=model.random_weights,
            encoder_dim=model.dim,
        )
    coords = volume.index_to_physical(units.centroids)
    fs = FeatureSet(features, coords, attrs)
    return write_radiology_features(job.features_path, fs, {"unit_voxels": units.voxels, **extras})


def write_radiology_features(
    path: str | os.PathLike, fs: FeatureSet, extras: dict[str, np.ndarray]
) -> Path:
    """:func:`write_features` plus extra datasets beside ``features`` / ``coords``, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_features(tmp, fs)
        with h5py.File(tmp, "a") as h5:
            for name, values in extras.items():
                h5.create_dataset(name, data=np.asarray(values))
    return path


def fit_habitat_model(
    jobs: list[RadiologyJob],
    config: RadiologyConfig,
    *,
    k_range: Sequence[int] = DEFAULT_K_RANGE,
    voxels_per_subject: int = 2000,
    progress: bool = True,
) -> tuple[HabitatModel, list[tuple[str, str]]]:
    """Fit the cohort habitat model on ``jobs`` (the training subjects), seeded by ``config.seed``.

    K is the candidate of ``k_range`` with the highest Calinski-Harabasz score.

    A subject whose volume cannot be loaded is left out of the fit and reported.

    Returns:
        (model, failures): failures lists (subject_id, error message).

    Raises:
        HabitatModelError: no training subject could be loaded.
    """
    samples, ids, failures = [], [], []
    for job in tqdm(
        jobs, desc="habitat fit: loading", unit="subject", disable=terminal_only(progress)
    ):
        try:
            volume = load_job_volume(job, config)
        except VolumeError as err:
            failures.append((job.subject_id, str(err)))
            continue
        samples.append((volume.normalised, volume.mask))
        ids.append(job.subject_id)
    model = HabitatModel.fit(
        samples,
        k_range=k_range,
        voxels_per_subject=voxels_per_subject,
        seed=config.seed,
        subjects=ids,
    )
    return model, failures


def extract_radiology_task(task: Task) -> None:
    """Runner stage function: ``task.payload`` is ``(RadiologyJob, RadiologyConfig)``; writes
    the output's provenance record once it is complete."""
    job, config = task.payload
    begin_outputs(task.outputs, task.provenance)
    extract_subject(job, config)
    record_outputs(task.outputs, task.provenance)


#: RadiologyConfig fields that do not shape the features: speed only (batch size, device:
#: equal up to floating-point order) and paths whose content is an input (fingerprinted).
UNSHAPING_FIELDS = ("batch_size", "device", "habitat_model", "params", "weights")


def radiology_settings(config: RadiologyConfig) -> dict[str, Any]:
    """The settings that shape every subject's features (canonical form): ``config`` less
    :data:`UNSHAPING_FIELDS`, and ``seed`` only with random weights (the only use of it here;
    the habitat model's seed is in that file, an input)."""
    settings = canonical(config, exclude=UNSHAPING_FIELDS)
    if not config.random_weights:
        settings.pop("seed")
    return settings


def shared_inputs(config: RadiologyConfig) -> dict[str, str]:
    """Fingerprints of the files every subject's features depend on: the habitat model, a
    given pyradiomics parameter file, the encoder weights (given or packaged)."""
    files = {
        "habitat_model": config.habitat_model if config.units == "habitat" else None,
        "params": config.params if config.feature_kind == PYRADIOMICS else None,
        "weights": None,
    }
    if config.feature_kind != PYRADIOMICS and not config.random_weights:
        spec = ENCODERS.get(config.features)
        default = spec.default_weights() if spec is not None and spec.default_weights else None
        files["weights"] = config.weights or default
    return fingerprint_files({name: path for name, path in files.items() if path is not None})


def subject_provenance(
    job: RadiologyJob, config: RadiologyConfig, settings: dict[str, Any], shared: dict[str, str]
) -> Provenance:
    """What ``job``'s features are made from: its volume(s) and mask, the shared inputs, the
    settings and the subject's imaging modality (and the default pyradiomics parameter file of
    that modality when none is given)."""
    files: dict[str, Any] = {f"volume_{i}": p for i, p in enumerate(job.volume_paths)}
    files["mask"] = job.mask_path
    if config.feature_kind == PYRADIOMICS and config.params is None:
        files["params"] = DEFAULT_PARAMS.get(job.modality.upper(), "")
    return make_provenance({**settings, "modality": job.modality}, files=files, fingerprints=shared)


def extract_cohort(
    jobs: list[RadiologyJob],
    out_dir: str | os.PathLike,
    config: RadiologyConfig,
    *,
    backend: Backend | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunRecord:
    """Extract every job with resume and a failure report (``<out>/runs/extract-radiology.json``).

    Subjects whose h5 exists and was made from the same files and settings (its provenance
    record) are skipped unless ``overwrite``; the h5 of the others is removed first (so the
    folder never mixes two settings) and the number of changed subjects is printed. A failing
    subject is recorded and the others go on. Without a backend, subjects run one after
    another in this process (the encoder is built once).
    """
    settings = radiology_settings(config)
    shared = shared_inputs(config)
    tasks = [
        Task(
            job.subject_id,
            (job.features_path,),
            (job, config),
            provenance=subject_provenance(job, config, settings, shared),
        )
        for job in jobs
    ]
    changes = prepare_rerun(STAGE, tasks)
    if changes:
        print(changes, flush=True)
    return run_cohort(
        tasks,
        extract_radiology_task,
        record_path=Path(out_dir) / "runs" / f"{STAGE}.json",
        stage=STAGE,
        workers=1 if backend is None else None,
        backend=backend,
        overwrite=overwrite,
        progress=progress,
    )


@functools.lru_cache(maxsize=1)
def cached_encoder(
    name: str, weights: str | None, random_weights: bool, seed: int
) -> torch.nn.Module:
    """The configured encoder (3D registry or 2D registry), memoised per process."""
    if name in VOLUME_ENCODERS:
        return build_volume_encoder(name, weights=weights, random_weights=random_weights, seed=seed)
    return build_encoder(name, weights=weights, random_weights=random_weights, seed=seed)


@functools.lru_cache(maxsize=4)
def cached_habitat_model(path: str) -> HabitatModel:
    """:meth:`HabitatModel.load`, memoised per process."""
    return HabitatModel.load(path)
