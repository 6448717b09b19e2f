"""Slides -> one h5 of patch features per slide (CLAM / TRIDENT layout), resumable.

Per slide: open it with a known resolution, mask tissue at low resolution, lay the patch grid
at the target resolution, save a QC thumbnail, optionally fit the slide's stains for Macenko
normalisation, then read tiles in DataLoader worker processes and encode them in batches
(inference mode; autocast on GPU). Outputs (written atomically)::

    <out>/features/pathology/<subject_id>/<slide_stem>.h5
    <out>/thumbnails/<subject_id>/<slide_stem>.png
    <out>/runs/extract-pathology.json        (run record: done / skipped / failed + reason)
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from radiograph.devices import resolve_device
from radiograph.encoders import PatchEncoder, build_encoder
from radiograph.io.features import FeatureSet, write_features
from radiograph.manifest import Manifest
from radiograph.pathology.slide import Slide, SlideError
from radiograph.pathology.stain import (
    MacenkoNormalizer,
    StainError,
    StainParams,
    fit_macenko,
    load_stain_target,
)
from radiograph.pathology.tiling import TileGrid, read_tile, save_thumbnail, tile_grid
from radiograph.pathology.tissue import TissueParams, compute_tissue_mask
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
class ExtractionConfig:
    """Everything that decides a slide's features (apart from the slide and its mpp).

    Attributes:
        encoder: registry name (see :func:`radiograph.encoders.available_encoders`).
        weights: local weights file; None uses the encoder's packaged weights, if any.
        random_weights: use a seeded random initialisation (recorded in the h5 attrs).
        target_mpp: microns per pixel of the patches (0.5 = 20x).
        patch_size: patch side in pixels at ``target_mpp`` (224, 256 or 512 typically).
        min_tissue: keep a patch when its tissue fraction is at least this.
        tissue: tissue-mask parameters.
        stain_norm: apply Macenko normalisation.
        stain_reference: image whose stains are the target (None: the built-in default).
        mpp: level-0 microns per pixel for every slide (a manifest row's mpp wins).
        batch_size: tiles per forward pass; None: 8 on CPU (larger batches were slower per
            patch on CPU in benchmarks/encoders.py), 64 on GPU.
        num_workers: DataLoader worker processes reading tiles (0: read in this process);
            None: :func:`default_num_workers` for the device.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
        seed: seed of the random encoder initialisation and of the stain-fit tile sample.
    """

    encoder: str = "efficientnet-lite0"
    weights: str | None = None
    random_weights: bool = False
    target_mpp: float = 0.5
    patch_size: int = 224
    min_tissue: float = 0.5
    tissue: TissueParams = field(default_factory=TissueParams)
    stain_norm: bool = False
    stain_reference: str | None = None
    mpp: float | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.patch_size <= 0 or self.target_mpp <= 0 or (self.batch_size or 1) <= 0:
            raise ValueError("patch_size, target_mpp and batch_size must be > 0")
        if (self.num_workers or 0) < 0:
            raise ValueError(f"num_workers must be >= 0; got {self.num_workers}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"min_tissue must be in [0, 1]; got {self.min_tissue}")


@dataclass(frozen=True)
class SlideJob:
    """One slide to extract: where it is, whose it is, where its outputs go."""

    subject_id: str
    slide: Path
    features_path: Path
    thumbnail_path: Path
    mpp: float | None = None

    @property
    def key(self) -> str:
        return f"{self.subject_id}/{self.slide.stem}"


def slide_jobs(manifest: Manifest, out_dir: str | os.PathLike, *,
               mpp: float | None = None) -> list[SlideJob]:
    """One job per slide of the manifest; ``mpp`` applies where a row has no mpp of its own.

    Raises:
        ValueError: two slides of one subject share a file stem (their outputs would clash).
    """
    out = Path(out_dir)
    jobs: list[SlideJob] = []
    for subject in manifest.subjects:
        stems: dict[str, Path] = {}
        for path in subject.slide_paths:
            if path.stem in stems:
                raise ValueError(f"subject {subject.subject_id}: slides {stems[path.stem]} and "
                                 f"{path} share the name {path.stem!r}; rename one")
            stems[path.stem] = path
            jobs.append(SlideJob(
                subject_id=subject.subject_id, slide=path,
                features_path=out / "features" / "pathology" / subject.subject_id / f"{path.stem}.h5",
                thumbnail_path=out / "thumbnails" / subject.subject_id / f"{path.stem}.png",
                mpp=subject.mpp if subject.mpp is not None else mpp,
            ))
    return jobs


class TileDataset(Dataset):
    """The kept tiles of one slide, read lazily (each worker process opens its own handle).

    Items are uint8 (patch_size, patch_size, 3) tensors, stain-normalised when a normaliser
    is given.
    """

    def __init__(self, slide_path: Path, mpp: float, grid: TileGrid,
                 normalizer: MacenkoNormalizer | None = None):
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


def extract_slide(job: SlideJob, config: ExtractionConfig, encoder: PatchEncoder | None = None,
                  *, progress: bool = True) -> Path:
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
    encoder = encoder if encoder is not None else cached_encoder(
        config.encoder, config.weights, config.random_weights, config.seed)
    device = resolve_device(config.device)
    with Slide(job.slide, mpp=job.mpp) as slide:
        patch_um = config.patch_size * config.target_mpp
        tissue = compute_tissue_mask(slide, mask_mpp=patch_um / MASK_PIXELS_PER_PATCH,
                                     params=config.tissue)
        grid = tile_grid(slide, tissue, target_mpp=config.target_mpp,
                         patch_size=config.patch_size, min_tissue=config.min_tissue)
        save_thumbnail(job.thumbnail_path, tissue, grid)
        if len(grid) == 0:
            raise SlideError(
                f"slide {job.slide}: no tissue found (no patch has a tissue fraction >= "
                f"{config.min_tissue:g}; saturation threshold {tissue.threshold:.3f}); check "
                f"the thumbnail {job.thumbnail_path}, or lower --min-tissue")
        normalizer = None
        if config.stain_norm:
            source = _fit_slide_stains(slide, grid, seed=config.seed)
            normalizer = MacenkoNormalizer(source, load_stain_target(config.stain_reference))
        resolution = slide.resolution
    features = encode_tiles(TileDataset(job.slide, resolution.mpp, grid, normalizer), encoder,
                            device=device,
                            batch_size=config.batch_size or (8 if device.type == "cpu" else 64),
                            num_workers=(default_num_workers(device) if config.num_workers is None
                                         else config.num_workers),
                            desc=job.key if progress else None)
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
    }
    return write_features(job.features_path, FeatureSet(features, grid.coords, attrs))


def encode_tiles(dataset: TileDataset, encoder: PatchEncoder, *, device: torch.device,
                 batch_size: int, num_workers: int, desc: str | None = None) -> np.ndarray:
    """Encode every tile of ``dataset``: float32 (N, encoder.dim), in dataset order.

    On CPU, torch uses at most (cores - num_workers) threads meanwhile: tile readers and
    OpenMP threads competing for cores make every parallel region wait for a descheduled
    thread, which slowed a 2-core machine down tenfold (see benchmarks/encoders.py).

    Raises:
        SlideError: a tile cannot be read (one line, from the worker's error).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - num_workers)))
    encoder = encoder.to(device)
    out = np.empty((len(dataset), encoder.dim), dtype=np.float32)
    autocast = (torch.autocast(device_type="cuda", dtype=torch.float16) if device.type == "cuda"
                else contextlib.nullcontext())
    start = 0
    bar = tqdm(total=len(dataset), desc=desc, unit="patch", leave=False,
               disable=terminal_only(desc is not None))
    try:
        with torch.inference_mode(), autocast:
            for tiles in loader:
                batch = encoder(encoder.preprocess(tiles.to(device, non_blocking=True)))
                out[start:start + len(tiles)] = batch.float().cpu().numpy()
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
    """Runner stage function: ``task.payload`` is ``(SlideJob, ExtractionConfig)``."""
    job, config = task.payload
    extract_slide(job, config)


def extract_cohort(manifest: Manifest, out_dir: str | os.PathLike, config: ExtractionConfig, *,
                   backend: Backend | None = None, overwrite: bool = False,
                   progress: bool = True) -> RunRecord:
    """Extract every slide of a cohort with resume and a failure report.

    Slides whose h5 and thumbnail exist are skipped unless ``overwrite``; a slide that fails
    is recorded (key ``subject/slide_stem``, one-line reason) and the others go on. The run
    record is ``<out_dir>/runs/extract-pathology.json``. By default slides run one after
    another in this process, which builds the encoder once.
    """
    jobs = slide_jobs(manifest, out_dir, mpp=config.mpp)
    tasks = [Task(job.key, (job.features_path, job.thumbnail_path), (job, config)) for job in jobs]
    return run_cohort(tasks, extract_slide_task, record_path=Path(out_dir) / "runs" / f"{STAGE}.json",
                      stage=STAGE, workers=1 if backend is None else None, backend=backend,
                      overwrite=overwrite, progress=progress)


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
        raise SlideError(f"slide {slide.path}: cannot estimate its stains for Macenko "
                         f"normalisation ({err}); run without --stain-norm") from err


def _stain_description(config: ExtractionConfig) -> str:
    if not config.stain_norm:
        return "none"
    if config.stain_reference is None:
        return "macenko (built-in target)"
    return f"macenko (target from {config.stain_reference})"
