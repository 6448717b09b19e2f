"""Slides -> one h5 of patch features per slide (CLAM / TRIDENT layout), resumable.

Per slide: open it with a known resolution, mask tissue at low resolution, lay the patch grid
at the target resolution, save a QC thumbnail, optionally fit the slide's stains for Macenko
normalisation, then read tiles in DataLoader worker processes and encode them in batches
(inference mode; float16 autocast on CUDA, float32 elsewhere: the h5 records which, as its
``device`` and ``precision`` attributes). Outputs (written atomically)::

    <out>/features/pathology/<subject_id>/<slide_stem>.h5
    <out>/thumbnails/<subject_id>/<slide_stem>.png
    <out>/runs/extract-pathology.json        (run record: done / skipped / failed + reason)

Each h5 and thumbnail has a provenance record ``<file>.prov.json`` (:mod:`radiograph.provenance`):
the slide's and the encoder weights' fingerprints and the digest of the settings that shape
the features (:func:`extraction_settings`). A rerun redoes exactly the slides whose record
differs, e.g. every slide after a change of ``target_mpp``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from radiograph.devices import resolve_device
from radiograph.encoders import ENCODERS, PatchEncoder, build_encoder
from radiograph.io.features import FeatureSet, write_features
from radiograph.manifest import Manifest
from radiograph.pathology.config import ExtractionConfig
from radiograph.pathology.roi import check_inside, read_roi, restrict_to_roi, roi_for_slide
from radiograph.pathology.slide import Slide, SlideError
from radiograph.pathology.stain import (
    MacenkoNormalizer,
    StainError,
    StainParams,
    fit_macenko,
    load_stain_target,
)
from radiograph.pathology.tiling import TileGrid, read_tile, save_thumbnail, tile_grid
from radiograph.pathology.tissue import compute_tissue_mask
from radiograph.provenance import (
    Provenance,
    begin_outputs,
    canonical,
    fingerprint_files,
    make_provenance,
    prepare_rerun,
    record_outputs,
)
from radiograph.runner import Backend, RunRecord, Task, run_cohort, terminal_only

STAGE = "extract-pathology"
#: Mask pixels per patch side: the mask resolution is the patch's side in microns / 16.
MASK_PIXELS_PER_PATCH = 16
#: Tiles sampled (seeded) from a slide to fit its stains for Macenko normalisation.
STAIN_FIT_TILES = 32


def default_num_workers(device: torch.device) -> int:
    """Tile-reading worker processes when the config leaves it open.

    On a GPU the encoder outruns one reader, so min(8, cores - 1). On a CPU with at most 4
    cores, 0: reading a tile in-process costs ~1.3 ms (benchmarks/encoders.py, 2 cores) while
    the fastest CPU encoder here needs ~6 ms, and a reader process takes a core from the
    encoder's threads (end to end with efficientnet-lite0: 119 patches/s with 0 workers, 50
    with 1). Larger CPUs get min(4, cores // 8) readers (not measured here).
    """
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cores - 1)
    return 0 if cores <= 4 else min(4, cores // 8)


@dataclass(frozen=True)
class SlideJob:
    """One slide to extract: where it is, whose it is, where its outputs go."""

    subject_id: str
    slide: Path
    features_path: Path
    thumbnail_path: Path
    mpp: float | None = None
    roi: Path | None = None  # QuPath GeoJSON restricting the tiles (None: tissue mask only)

    @property
    def key(self) -> str:
        return f"{self.subject_id}/{self.slide.stem}"


def slide_jobs(
    manifest: Manifest,
    out_dir: str | os.PathLike,
    *,
    mpp: float | None = None,
    roi_dir: str | os.PathLike | None = None,
) -> list[SlideJob]:
    """One job per slide of the manifest; ``mpp`` applies where a row has no mpp of its own.
    A slide's ROI is its ``roi_paths`` entry, else ``roi_dir/<slide stem>.geojson`` if present.

    Raises:
        ValueError: two slides of one subject share a file stem (their outputs would clash).
    """
    out = Path(out_dir)
    jobs: list[SlideJob] = []
    for subject in manifest.subjects:
        stems: dict[str, Path] = {}
        rois = subject.roi_paths or (None,) * len(subject.slide_paths)
        for path, roi in zip(subject.slide_paths, rois):
            if path.stem in stems:
                raise ValueError(
                    f"subject {subject.subject_id}: slides {stems[path.stem]} and "
                    f"{path} share the name {path.stem!r}; rename one"
                )
            stems[path.stem] = path
            jobs.append(
                SlideJob(
                    subject_id=subject.subject_id,
                    slide=path,
                    features_path=out
                    / "features"
                    / "pathology"
                    / subject.subject_id
                    / f"{path.stem}.h5",
                    thumbnail_path=out / "thumbnails" / subject.subject_id / f"{path.stem}.png",
                    mpp=subject.mpp if subject.mpp is not None else mpp,
                    roi=roi if roi is not None else roi_for_slide(path, roi_dir),
                )
            )
    return jobs


class TileDataset(Dataset):
    """The kept tiles of one slide, read lazily (each worker process opens its own handle).

    Items are uint8 (patch_size, patch_size, 3) tensors, stain-normalised when a normaliser
    is given.
    """

    def __init__(
        self,
        slide_path: Path,
        mpp: float,
        grid: TileGrid,
        normalizer: MacenkoNormalizer | None = None,
    ):
        self.slide_path = slide_path
        self.mpp = mpp
        self.grid = grid
        self.normalizer = normalizer
        self._slide: Slide | None = None

    def __len__(self) -> int:
        return len(self.grid)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._slide is None:
            self._slide = Slide(self.slide_path, mpp=self.mpp)
        tile = read_tile(self._slide, self.grid, index)
        if self.normalizer is not None:
            tile = self.normalizer(tile)
        return torch.from_numpy(np.ascontiguousarray(tile))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_slide": None}

    def close(self) -> None:
        if self._slide is not None:
            self._slide.close()
            self._slide = None


def extract_slide(
    job: SlideJob,
    config: ExtractionConfig,
    encoder: PatchEncoder | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Extract one slide's features and thumbnail; returns the h5 path.

    Args:
        job: the slide and its outputs.
        config: extraction settings.
        encoder: a built encoder (None: built from ``config``, once per process).
        progress: show a per-slide progress bar.

    Raises:
        SlideError: unreadable / truncated slide, missing resolution, no tissue (one line,
            naming the slide and the fix).
    """
    encoder = (
        encoder
        if encoder is not None
        else cached_encoder(config.encoder, config.weights, config.random_weights, config.seed)
    )
    device = resolve_device(config.device)
    with Slide(job.slide, mpp=job.mpp) as slide:
        patch_um = config.patch_size * config.target_mpp
        tissue = compute_tissue_mask(
            slide, mask_mpp=patch_um / MASK_PIXELS_PER_PATCH, params=config.tissue
        )
        roi = read_roi(job.roi) if job.roi is not None else None
        if roi is not None:
            check_inside(roi, *slide.dimensions, job.slide)
        grid = tile_grid(
            slide,
            tissue if roi is None else restrict_to_roi(tissue, roi),
            target_mpp=config.target_mpp,
            patch_size=config.patch_size,
            min_tissue=config.min_tissue,
        )
        save_thumbnail(job.thumbnail_path, tissue, grid, outlines=roi.rings() if roi else ())
        if len(grid) == 0:
            raise SlideError(
                f"slide {job.slide}: no tissue found (no patch has a tissue fraction >= "
                f"{config.min_tissue:g}; saturation threshold {tissue.threshold:.3f}); check "
                f"the thumbnail {job.thumbnail_path}, or lower --min-tissue"
            )
        normalizer = None
        if config.stain_norm:
            source = _fit_slide_stains(slide, grid, seed=config.seed)
            normalizer = MacenkoNormalizer(source, load_stain_target(config.stain_reference))
        resolution = slide.resolution
    features = encode_tiles(
        TileDataset(job.slide, resolution.mpp, grid, normalizer),
        encoder,
        device=device,
        batch_size=config.batch_size or (8 if device.type == "cpu" else 64),
        num_workers=(
            default_num_workers(device) if config.num_workers is None else config.num_workers
        ),
        desc=job.key if progress else None,
    )
    attrs = {
        "subject_id": job.subject_id,
        "modality": "pathology",
        "source": str(job.slide),
        "encoder": encoder.name,
        "weights_sha256": encoder.weights_sha256,
        "random_weights": encoder.random_weights,
        "patch_size": config.patch_size,
        "level": grid.level,
        "read_size": grid.read_size,
        "mpp": config.target_mpp,
        "level0_mpp": resolution.mpp,
        "mpp_source": resolution.source,
        "patch_size_level0": grid.size_level0,
        "min_tissue": config.min_tissue,
        "stain_norm": _stain_description(config),
        "roi": str(job.roi) if job.roi is not None else "",
        "tile_region": "roi" if job.roi is not None else "tissue mask (no ROI)",
        "device": device.type,
        "precision": encoder_precision(device),
    }
    return write_features(job.features_path, FeatureSet(features, grid.coords, attrs))


def encoder_precision(device: torch.device) -> str:
    """The arithmetic of patch encoding on ``device``: ``"fp16"`` (float16 autocast) on CUDA,
    ``"fp32"`` elsewhere. Features of the two differ by float16 rounding (11 significant bits;
    the CUDA test allows 2% of the largest feature), more than a change of summation order, so
    each h5 records it; it is not part of the provenance settings, so a
    cohort resumed on another device keeps its finished slides (their h5 says how each was
    made)."""
    return "fp16" if device.type == "cuda" else "fp32"


def encode_tiles(
    dataset: TileDataset,
    encoder: PatchEncoder,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    desc: str | None = None,
) -> np.ndarray:
    """Encode every tile of ``dataset``: float32 (N, encoder.dim), in dataset order.

    On CPU, torch uses at most (cores - num_workers) threads meanwhile: tile readers and
    OpenMP threads competing for cores make every parallel region wait for a descheduled
    thread, which slowed a 2-core machine down tenfold (see benchmarks/encoders.py).

    Raises:
        SlideError: a tile cannot be read (one line, from the worker's error).
    """
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - num_workers)))
    encoder = encoder.to(device)
    out = np.empty((len(dataset), encoder.dim), dtype=np.float32)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if encoder_precision(device) == "fp16"
        else contextlib.nullcontext()
    )
    start = 0
    bar = tqdm(
        total=len(dataset),
        desc=desc,
        unit="patch",
        leave=False,
        disable=terminal_only(desc is not None),
    )
    try:
        with torch.inference_mode(), autocast:
            for tiles in loader:
                batch = encoder(encoder.preprocess(tiles.to(device, non_blocking=True)))
                out[start : start + len(tiles)] = batch.float().cpu().numpy()
                start += len(tiles)
                bar.update(len(tiles))
    except SlideError as err:  # from a worker, the message carries the worker's traceback
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        if len(lines) <= 1:
            raise
        raise SlideError(lines[-1].split("SlideError: ", 1)[-1]) from err
    finally:
        torch.set_num_threads(threads)
        bar.close()
        dataset.close()
    return out


def extract_slide_task(task: Task) -> None:
    """Runner stage function: ``task.payload`` is ``(SlideJob, ExtractionConfig)``; writes the
    outputs' provenance records once both outputs are complete."""
    job, config = task.payload
    begin_outputs(task.outputs, task.provenance)
    extract_slide(job, config)
    record_outputs(task.outputs, task.provenance)


#: ExtractionConfig fields that do not shape the features: speed only (batch size, tile
#: readers; device: float16 autocast on CUDA, recorded in each h5, see
#: :func:`encoder_precision`), paths whose content is an input
#: (weights, stain reference: fingerprinted), and ``mpp`` (a slide's own setting, per job).
UNSHAPING_FIELDS = ("batch_size", "num_workers", "device", "weights", "stain_reference", "mpp")


def extraction_settings(config: ExtractionConfig) -> dict[str, Any]:
    """The settings that shape every slide's features and thumbnail (canonical form).

    ``config`` less :data:`UNSHAPING_FIELDS`; ``seed`` only where it is used (random weights,
    stain normalisation's tile sample), so changing an unused seed redoes nothing.
    """
    settings = canonical(config, exclude=UNSHAPING_FIELDS)
    if not (config.random_weights or config.stain_norm):
        settings.pop("seed")
    return settings


def encoder_weights_file(config: ExtractionConfig) -> str | None:
    """The weights file the encoder is built from: ``weights``, else the encoder's packaged
    default (None for random weights, or when there is none)."""
    if config.random_weights:
        return None
    if config.weights is not None:
        return config.weights
    spec = ENCODERS.get(config.encoder)
    default = spec.default_weights() if spec is not None and spec.default_weights else None
    return None if default is None else str(default)


def slide_provenance(job: SlideJob, settings: dict[str, Any], shared: dict[str, str]) -> Provenance:
    """What ``job``'s outputs are made from: the slide's fingerprint, the fingerprints of the
    files every slide shares (``shared``: weights, stain reference), ``settings``
    (:func:`extraction_settings`) and the slide's level-0 ``mpp`` override."""
    files = {"slide": job.slide, **({"roi": job.roi} if job.roi is not None else {})}
    return make_provenance({**settings, "mpp": job.mpp}, files=files, fingerprints=shared)


def extract_cohort(
    manifest: Manifest,
    out_dir: str | os.PathLike,
    config: ExtractionConfig,
    *,
    backend: Backend | None = None,
    overwrite: bool = False,
    progress: bool = True,
    roi_dir: str | os.PathLike | None = None,
) -> RunRecord:
    """Extract every slide of a cohort with resume and a failure report.

    Slides whose h5 and thumbnail exist and were made from the same slide file, weights and
    settings (their provenance records) are skipped unless ``overwrite``; the outputs of the
    others are removed first (so the folder never mixes two settings) and the number of
    changed slides is printed. A slide that fails is recorded (key ``subject/slide_stem``,
    one-line reason) and the others go on. The run record is
    ``<out_dir>/runs/extract-pathology.json``. By default slides run one after another in
    this process, which builds the encoder once.
    """
    jobs = slide_jobs(manifest, out_dir, mpp=config.mpp, roi_dir=roi_dir)
    settings = extraction_settings(config)
    shared = fingerprint_files(
        {
            name: path
            for name, path in (
                ("weights", encoder_weights_file(config)),
                ("stain_reference", config.stain_reference),
            )
            if path is not None
        }
    )
    tasks = [
        Task(
            job.key,
            (job.features_path, job.thumbnail_path),
            (job, config),
            provenance=slide_provenance(job, settings, shared),
        )
        for job in jobs
    ]
    changes = prepare_rerun(STAGE, tasks, noun="slides")
    if changes:
        print(changes, flush=True)
    return run_cohort(
        tasks,
        extract_slide_task,
        record_path=Path(out_dir) / "runs" / f"{STAGE}.json",
        stage=STAGE,
        workers=1 if backend is None else None,
        backend=backend,
        overwrite=overwrite,
        progress=progress,
    )


@functools.lru_cache(maxsize=1)
def cached_encoder(name: str, weights: str | None, random_weights: bool, seed: int) -> PatchEncoder:
    """:func:`build_encoder`, memoised per process so a cohort builds its encoder once."""
    return build_encoder(name, weights=weights, random_weights=random_weights, seed=seed)


def _fit_slide_stains(slide: Slide, grid: TileGrid, *, seed: int) -> StainParams:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(grid), size=min(STAIN_FIT_TILES, len(grid)), replace=False)
    tiles = np.stack([read_tile(slide, grid, int(i)) for i in np.sort(picks)])
    try:
        return fit_macenko(tiles)
    except StainError as err:
        raise SlideError(
            f"slide {slide.path}: cannot estimate its stains for Macenko "
            f"normalisation ({err}); run without --stain-norm"
        ) from err


def _stain_description(config: ExtractionConfig) -> str:
    if not config.stain_norm:
        return "none"
    if config.stain_reference is None:
        return "macenko (built-in target)"
    return f"macenko (target from {config.stain_reference})"
