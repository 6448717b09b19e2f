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
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from radiograph.devices import resolve_device
from radiograph.encoders import ENCODERS, PatchEncoder, build_encoder
from radiograph.encoders.registry import TIMM_PREFIX
from radiograph.encoders.vit3d import VOLUME_ENCODERS, ViT3D, build_volume_encoder
from radiograph.io.atomic import atomic_path
from radiograph.io.features import FeatureSet, file_sha256, write_features
from radiograph.manifest import Manifest
from radiograph.radiology.deep_features import encode_slices, encode_volume, unit_features
from radiograph.radiology.habitats import DEFAULT_K_RANGE, HabitatModel
from radiograph.radiology.radiomics_features import RadiomicsExtractor
from radiograph.radiology.units import NoUnitsError, Units, grid_units, habitat_units
from radiograph.radiology.volume import DEFAULT_HU_WINDOW, Volume, VolumeError, load_volume
from radiograph.runner import Backend, RunRecord, Task, run_cohort

STAGE = "extract-radiology"
PYRADIOMICS = "pyradiomics"
UNIT_KINDS = ("grid", "habitat")


@dataclass(frozen=True)
class RadiologyConfig:
    """Everything that decides a subject's radiology features (apart from its files).

    Attributes:
        features: "pyradiomics", a 3D encoder name (``segvol-vit``, ``vit3d-tiny``) or any 2D
            encoder name of :func:`radiograph.encoders.build_encoder` (slice by slice).
        units: "grid" or "habitat".
        spacing_mm: isotropic resampling spacing in mm.
        unit_size_mm: grid cube side in mm.
        min_fraction: grid: minimum tumour fraction of a cube.
        min_unit_voxels: habitat: minimum voxels of a connected component.
        habitat_model: fitted habitat model JSON (required for ``units == "habitat"``).
        params: pyradiomics parameter file (None: the modality's default).
        weights: encoder weights file.
        random_weights: use a seeded random encoder.
        resample_mask: resample a mask on another grid onto the image grid.
        mask_label: tumour label of the mask (None: the mask must be 0/1).
        hu_window: CT window (HU) for encoder / habitat intensities.
        slice_tile: 2D encoders: tile side in voxels.
        batch_size: windows (3D) or tiles (2D) per forward pass.
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        seed: seed of random encoder weights.
    """

    features: str = PYRADIOMICS
    units: str = "grid"
    spacing_mm: float = 1.0
    unit_size_mm: float = 8.0
    min_fraction: float = 0.5
    min_unit_voxels: int = 27
    habitat_model: str | None = None
    params: str | None = None
    weights: str | None = None
    random_weights: bool = False
    resample_mask: bool = False
    mask_label: int | None = None
    hu_window: tuple[float, float] = DEFAULT_HU_WINDOW
    slice_tile: int = 32
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.units not in UNIT_KINDS:
            raise ValueError(f"units must be one of {UNIT_KINDS}; got {self.units!r}")
        if self.spacing_mm <= 0 or self.unit_size_mm <= 0 or self.slice_tile <= 0:
            raise ValueError("spacing_mm, unit_size_mm and slice_tile must be > 0")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1]; got {self.min_fraction}")
        self.feature_kind  # noqa: B018 - raises on an unknown feature name

    @property
    def feature_kind(self) -> str:
        """"pyradiomics", "3d" or "2d"."""
        if self.features == PYRADIOMICS:
            return PYRADIOMICS
        if self.features in VOLUME_ENCODERS:
            return "3d"
        if self.features in ENCODERS or self.features.startswith(TIMM_PREFIX):
            return "2d"
        raise ValueError(f"unknown features {self.features!r}: use 'pyradiomics', a 3D encoder "
                         f"({', '.join(sorted(VOLUME_ENCODERS))}), a 2D encoder "
                         f"({', '.join(sorted(ENCODERS))}) or 'timm:<model name>'")


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
    return [RadiologyJob(s.subject_id, tuple(s.volume_paths), s.mask_path, s.radiology_modality,
                         folder / f"{s.subject_id}.h5")
            for s in manifest.subjects if s.has_radiology and s.mask_path is not None]


def features_dir(out_dir: str | os.PathLike) -> Path:
    """``<out>/features/radiology``."""
    return Path(out_dir) / "features" / "radiology"


def load_job_volume(job: RadiologyJob, config: RadiologyConfig) -> Volume:
    """:func:`load_volume` with the job's files and the config's options."""
    return load_volume(job.subject_id, job.volume_paths, job.mask_path, modality=job.modality,
                       spacing_mm=config.spacing_mm, resample_mask=config.resample_mask,
                       mask_label=config.mask_label, hu_window=config.hu_window)


def make_units(volume: Volume, config: RadiologyConfig,
               habitat_model: HabitatModel | None = None) -> tuple[Units, dict[str, np.ndarray]]:
    """The volume's units and, for habitats, the per-habitat summary arrays.

    Raises:
        VolumeError: no unit fits (names subject and file), or habitats without a model.
    """
    where = f"subject {volume.subject_id!r}: {volume.sources[0]}"
    extras: dict[str, np.ndarray] = {}
    try:
        if config.units == "grid":
            units = grid_units(volume.mask, float(volume.spacing[0]), size_mm=config.unit_size_mm,
                               min_fraction=config.min_fraction)
        else:
            if habitat_model is None:
                raise VolumeError(f"{where}: habitat units need a fitted habitat model")
            labels = habitat_model.transform(volume.normalised, volume.mask)
            units = habitat_units(labels, min_voxels=config.min_unit_voxels)
            summary = habitat_model.summary(labels, volume.intensity, volume.spacing)
            extras = {"habitat": units.habitat,
                      "habitat_mean_intensity": summary.mean_intensity,
                      "habitat_volume_mm3": summary.volume_mm3,
                      "habitat_proportion": summary.proportion}
    except NoUnitsError as err:
        raise VolumeError(f"{where}: volume too small for any unit: {err}") from err
    return units, extras


def extract_subject(job: RadiologyJob, config: RadiologyConfig, *,
                    habitat_model: HabitatModel | None = None,
                    encoder: torch.nn.Module | None = None, progress: bool = False) -> Path:
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
        attrs.update(encoder=PYRADIOMICS, feature_names=names, weights_sha256="",
                     random_weights=False, params=str(extractor.params_path),
                     params_sha256=extractor.params_sha256)
    else:
        device = resolve_device(config.device)
        model = encoder if encoder is not None else cached_encoder(
            config.features, config.weights, config.random_weights, config.seed)
        model = model.to(device)
        region = units.labels > 0
        if kind == "3d":
            assert isinstance(model, ViT3D)
            tokens = encode_volume(model, volume.normalised, region, batch_size=config.batch_size,
                                   device=device, progress=progress)
            attrs["encoder_patch_size"] = np.asarray(model.patch_size, dtype=np.int64)
        else:
            assert isinstance(model, PatchEncoder)
            tokens = encode_slices(model, volume.normalised, region, modality=volume.modality,
                                   tile=config.slice_tile, batch_size=config.batch_size,
                                   device=device, progress=progress)
            attrs["encoder_patch_size"] = np.asarray([1, config.slice_tile, config.slice_tile],
                                                     dtype=np.int64)
        features = unit_features(tokens, units)
        attrs.update(encoder=config.features, weights_sha256=model.weights_sha256,
                     random_weights=model.random_weights, encoder_dim=model.dim)
    coords = volume.index_to_physical(units.centroids)
    fs = FeatureSet(features, coords, attrs)
    return write_radiology_features(job.features_path, fs,
                                    {"unit_voxels": units.voxels, **extras})


def write_radiology_features(path: str | os.PathLike, fs: FeatureSet,
                             extras: dict[str, np.ndarray]) -> Path:
    """:func:`write_features` plus extra datasets beside ``features`` / ``coords``, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_features(tmp, fs)
        with h5py.File(tmp, "a") as h5:
            for name, values in extras.items():
                h5.create_dataset(name, data=np.asarray(values))
    return path


def fit_habitat_model(jobs: list[RadiologyJob], config: RadiologyConfig, *,
                      k_range: Sequence[int] = DEFAULT_K_RANGE, voxels_per_subject: int = 2000,
                      progress: bool = True) -> tuple[HabitatModel, list[tuple[str, str]]]:
    """Fit the cohort habitat model on ``jobs`` (the training subjects), seeded by ``config.seed``.

    K is the candidate of ``k_range`` with the highest Calinski-Harabasz score.

    A subject whose volume cannot be loaded is left out of the fit and reported.

    Returns:
        (model, failures): failures lists (subject_id, error message).

    Raises:
        HabitatModelError: no training subject could be loaded.
    """
    samples, ids, failures = [], [], []
    for job in tqdm(jobs, desc="habitat fit: loading", unit="subject", disable=not progress):
        try:
            volume = load_job_volume(job, config)
        except VolumeError as err:
            failures.append((job.subject_id, str(err)))
            continue
        samples.append((volume.normalised, volume.mask))
        ids.append(job.subject_id)
    model = HabitatModel.fit(samples, k_range=k_range, voxels_per_subject=voxels_per_subject,
                             seed=config.seed, subjects=ids)
    return model, failures


def extract_radiology_task(task: Task) -> None:
    """Runner stage function: ``task.payload`` is ``(RadiologyJob, RadiologyConfig)``."""
    job, config = task.payload
    extract_subject(job, config)


def extract_cohort(jobs: list[RadiologyJob], out_dir: str | os.PathLike,
                   config: RadiologyConfig, *, backend: Backend | None = None,
                   overwrite: bool = False, progress: bool = True) -> RunRecord:
    """Extract every job with resume and a failure report (``<out>/runs/extract-radiology.json``).

    Subjects whose h5 exists are skipped unless ``overwrite``; a failing subject is recorded
    and the others go on. Without a backend, subjects run one after another in this process
    (the encoder is built once).
    """
    tasks = [Task(job.subject_id, (job.features_path,), (job, config)) for job in jobs]
    return run_cohort(tasks, extract_radiology_task,
                      record_path=Path(out_dir) / "runs" / f"{STAGE}.json", stage=STAGE,
                      workers=1 if backend is None else None, backend=backend,
                      overwrite=overwrite, progress=progress)


@functools.lru_cache(maxsize=1)
def cached_encoder(name: str, weights: str | None, random_weights: bool,
                   seed: int) -> torch.nn.Module:
    """The configured encoder (3D registry or 2D registry), memoised per process."""
    if name in VOLUME_ENCODERS:
        return build_volume_encoder(name, weights=weights, random_weights=random_weights, seed=seed)
    return build_encoder(name, weights=weights, random_weights=random_weights, seed=seed)


@functools.lru_cache(maxsize=4)
def cached_habitat_model(path: str) -> HabitatModel:
    """:meth:`HabitatModel.load`, memoised per process."""
    return HabitatModel.load(path)
