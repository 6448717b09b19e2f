"""Checks a study makes before any long work, so that it fails in seconds and not hours.

:func:`preflight` runs every check and lists every problem found (not only the first):

- **output**: ``out_dir`` exists or can be created, and a file can be written in it;
- **cohort**: the manifest is valid (:func:`radiograph.manifest.validate_manifest`, files
  included), and each modality the study uses has subjects with its files;
- **devices**: every ``device`` setting (``pathology``, ``radiology``, ``training``) names a
  device this machine has (``cuda`` without CUDA is a problem; ``auto`` never is), and
  ``training.precision`` runs on the training device (fp16 needs CUDA);
- **encoders**: each encoder name is registered, its weights file exists and loads into the
  architecture, every key and shape matching (:func:`radiograph.encoders.build_encoder`,
  :func:`radiograph.encoders.vit3d.build_volume_encoder`); the other files the extraction
  reads (stain reference, pyradiomics parameters, habitat model) exist;
- **models**: the aggregators' options are fields of their configs and build a model; the
  downstream models are registered and take the ``model_params`` and ``grids`` given;
- **disk**: the expected size of the feature files (:func:`feature_bytes`) against the free
  space of ``out_dir``'s file system (not for a synthetic cohort the study has not written).

It needs torch (and timm, scikit-learn) for the encoder, model and device checks, so it takes
seconds where :func:`radiograph.study_config.load_study_config` takes milliseconds; building an
encoder to load its weights costs its memory for a moment (UNI, ViT-L: about 1.2 GB).

The other study kinds' preflights (``signature``, ``habitat-fusion``, ``longitudinal``: a
``preflight`` function beside each kind's study) share :func:`kind_preflight` (timing and the
output check), :func:`list_problems` and :func:`check_outcomes` from here.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radiograph.devices import device_problem
from radiograph.manifest import Manifest, validate_manifest
from radiograph.study_config import StudyConfig, did_you_mean

#: Manifest problems quoted before "... and N more".
MAX_LISTED = 20
#: Slides (and masks) read to measure the tissue fraction (tumour volume) for the estimate.
DISK_SAMPLE = 8
#: Features per unit of pyradiomics with the packaged CT parameters (benchmarks/radiology.py).
PYRADIOMICS_FEATURES = 107
#: Bytes per row besides the features: float64 coordinates, 2D (pathology) or 3D (radiology).
COORD_BYTES = {"pathology": 16, "radiology": 24}


@dataclass(frozen=True)
class PreflightReport:
    """What :func:`preflight` found.

    Attributes:
        problems: each problem, naming the key or file (empty: ready to run).
        notes: what was checked and measured (device, encoders, disk estimate).
        seconds: wall time of the checks.
    """

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        """The notes, then ``N problem(s)`` and one line per problem (or ``ready``)."""
        lines = [f"  {note}" for note in self.notes]
        if self.problems:
            lines.append(
                f"preflight: {len(self.problems)} problem(s), found in {self.seconds:.1f} s:"
            )
            lines += [f"  {problem}" for problem in self.problems]
        else:
            lines.append(f"preflight: ready ({self.seconds:.1f} s)")
        return "\n".join(lines)


class _Findings:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []


def preflight(config: StudyConfig) -> PreflightReport:
    """Run every check of the module docstring on ``config``; never raises for a problem of
    the study (it is listed instead)."""
    start = time.perf_counter()
    found = _Findings()
    check_output(config.out_dir, found)
    manifest = check_cohort(config, found)
    for key, name in device_settings(config):
        problem = device_problem(name)
        if problem:
            found.problems.append(f"key {key!r}: device {name!r}: {problem}")
        elif key == "training.device":
            check_precision(str(config.training.get("precision", "fp32")), name, found)
    dims = check_encoders(config, found)
    check_aggregators(config, found)
    check_baselines(config, found)
    if manifest is not None:
        check_disk(config, manifest, dims, found)
    return PreflightReport(tuple(found.problems), tuple(found.notes), time.perf_counter() - start)


def kind_preflight(out_dir: Path, checks: Callable[[_Findings], None]) -> PreflightReport:
    """The report of a study kind's preflight: :func:`check_output` on ``out_dir``, then
    ``checks(found)`` (which lists problems and notes in ``found``), timed."""
    start = time.perf_counter()
    found = _Findings()
    check_output(out_dir, found)
    checks(found)
    return PreflightReport(tuple(found.problems), tuple(found.notes), time.perf_counter() - start)


def list_problems(
    problems: Sequence[str], found: _Findings, *, prefix: str = "", more: str = ""
) -> None:
    """Add ``problems`` (each after ``prefix``) to ``found``, the first :data:`MAX_LISTED`
    of them and then one line counting the rest (``more``: where to see them all)."""
    for problem in problems[:MAX_LISTED]:
        found.problems.append(f"{prefix}{problem}")
    if len(problems) > MAX_LISTED:
        where = f" ({more})" if more else ""
        found.problems.append(f"{prefix}... and {len(problems) - MAX_LISTED} more{where}")


def error_lines(err: Exception) -> list[str]:
    """The problems of a reader's one-message error: a header line ``<file>:`` or
    ``<file>: N problem(s) ...:`` followed by one indented problem per line becomes one
    ``<file>: <problem>`` per line; a one-line message stays one problem."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    if len(lines) < 2:
        return lines
    head = lines[0].rstrip(":")
    source = head.split(": ")[0] if ": " in head else head
    return [f"{source}: {line.strip()}" for line in lines[1:]]


def check_outcomes(
    found: _Findings, what: str, events: Sequence[int], *, folds: int | None = None
) -> None:
    """Notes (never problems: the kind's run decides) about the outcome ``events`` (0/1 per
    subject) of cohort ``what``: every subject of one class (all censored, for survival),
    or fewer subjects of the smaller class than ``folds`` (some folds then hold none)."""
    n = len(events)
    positives = int(sum(int(e) for e in events))
    if n == 0:
        found.notes.append(f"{what}: no subject")
        return
    if positives in (0, n):
        found.notes.append(
            f"warning: {what}: all {n} subjects have outcome {int(positives == n)} "
            "(one class only, or all censored): no model or statistic can be estimated"
        )
        return
    smaller = min(positives, n - positives)
    if folds is not None and smaller < folds:
        found.notes.append(
            f"warning: {what}: {smaller} subject(s) in the smaller outcome class, "
            f"fewer than the {folds} folds"
        )
    found.notes.append(f"{what}: {n} subjects, {positives} with outcome 1")


def check_output(out_dir: Path, found: _Findings) -> None:
    """``out_dir`` (or the closest existing folder above it, where it would be created) is a
    folder in which a file can be created."""
    folder = out_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        found.problems.append(f"out_dir {out_dir}: cannot be created, {folder} is not a folder")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".radiograph-preflight-"):
            pass
    except OSError as err:
        found.problems.append(
            f"out_dir {out_dir}: cannot write in {folder} ({err.strerror or err})"
        )


def check_cohort(config: StudyConfig, found: _Findings) -> Manifest | None:
    """The validated manifest (None when it is not written yet or has problems, which are
    listed), and a problem for each modality in use that no subject has."""
    path = config.manifest_path
    if "synthetic" in config.cohort and not path.exists():
        found.notes.append(f"cohort: synthetic, written by the study to {path}")
        return None
    manifest, problems = validate_manifest(path, check_files=True)
    key = "cohort.manifest" if "manifest" in config.cohort else "cohort.synthetic"
    list_problems(
        [f"{path}: {problem}" for problem in problems],
        found,
        prefix=f"key {key!r}: ",
        more=f"radiograph validate {path} lists them all",
    )
    if manifest is None or problems:
        return None
    for modality in config.modalities_in_use():
        has = [
            s
            for s in manifest.subjects
            if (s.has_pathology if modality == "pathology" else s.has_radiology)
        ]
        if not has:
            column = "slide_paths" if modality == "pathology" else "volume_paths and mask_path"
            found.problems.append(
                f"key 'modality_sets': {modality} is used but no subject of {path} has {column}"
            )
    found.notes.append(f"cohort: {path}, {len(manifest.subjects)} subjects")
    return manifest


def device_settings(config: StudyConfig) -> list[tuple[str, str]]:
    """(key path, device name) of every device setting of the stages the study runs."""
    settings = [("training.device", str(config.training.get("device", "auto")))]
    for section in ("pathology", "radiology"):
        options = getattr(config, section)
        if options is not None and section in config.modalities_in_use():
            settings.append((f"{section}.device", str(options.get("device", "auto"))))
    return settings


def check_precision(precision: str, device: str, found: _Findings) -> None:
    """``training.precision`` runs on the training device (fp16 needs CUDA)."""
    if precision == "fp32":
        return
    from radiograph.devices import check_precision as runs_on
    from radiograph.devices import resolve_device

    try:
        runs_on(precision, resolve_device(device))
    except ValueError as err:
        found.problems.append(f"key 'training.precision': {err}")


def check_encoders(config: StudyConfig, found: _Findings) -> dict[str, int]:
    """Each extraction section's encoder: a registered name, a weights file that exists and
    loads with every key and shape matching; the other files it reads exist.

    Returns:
        modality -> feature dimension, for the modalities whose encoder was built (or
        pyradiomics).
    """
    dims: dict[str, int] = {}
    used = config.modalities_in_use()
    if config.pathology is not None and "pathology" in used:
        options = config.pathology
        _files_exist("pathology", options, ("stain_reference",), found)
        dim = _build_encoder(
            "pathology",
            options.get("encoder", "efficientnet-lite0"),
            options,
            patch=True,
            found=found,
        )
        if dim is not None:
            dims["pathology"] = dim
    if config.radiology is not None and "radiology" in used:
        options = config.radiology
        _files_exist("radiology", options, ("params", "habitat_model"), found)
        features = options.get("features", "pyradiomics")
        if features == "pyradiomics":
            dims["radiology"] = PYRADIOMICS_FEATURES
        else:
            dim = _build_encoder("radiology", features, options, patch=False, found=found)
            if dim is not None:
                dims["radiology"] = dim
    return dims


def _files_exist(
    section: str, options: dict[str, Any], keys: Sequence[str], found: _Findings
) -> None:
    for key in keys:
        if options.get(key) and not Path(options[key]).is_file():
            found.problems.append(f"key '{section}.{key}': file not found: {options[key]}")


def _build_encoder(
    section: str, name: str, options: dict[str, Any], *, patch: bool, found: _Findings
) -> int | None:
    """Build ``name`` with its weights (the shape check); its feature dimension, or None with
    the problem recorded. ``patch``: a 2D encoder only (pathology); else a 3D encoder or a 2D
    one applied slice by slice (radiology)."""
    from radiograph.encoders import EncoderError, RandomWeightsWarning, available_encoders
    from radiograph.encoders.registry import TIMM_PREFIX
    from radiograph.encoders.vit3d import available_volume_encoders, build_volume_encoder

    key = f"{section}.encoder" if patch else f"{section}.features"
    volume = [] if patch else available_volume_encoders()
    names = [*(["pyradiomics"] if not patch else []), *volume, *available_encoders()]
    if name not in names and not name.startswith(TIMM_PREFIX):
        found.problems.append(
            f"key {key!r}: unknown encoder {name!r}{did_you_mean(name, names)}"
            f"; known: {', '.join(names)} or timm:<model name>"
        )
        return None
    weights = options.get("weights")
    if weights and not Path(weights).is_file():
        found.problems.append(f"key '{section}.weights': weights file not found: {weights}")
        return None
    build: Callable[..., Any] = build_volume_encoder if name in volume else _patch_encoder
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            encoder = build(
                name,
                weights=weights,
                random_weights=bool(options.get("random_weights", False)),
                seed=int(options.get("seed", 0)),
            )
    except EncoderError as err:
        found.problems.append(f"key {key!r}: {err}")
        return None
    dim = int(encoder.dim)
    source = "random weights" if options.get("random_weights") else (weights or "packaged weights")
    found.notes.append(
        f"{section} encoder {name}: {dim}-d, {source} load ({time.perf_counter() - start:.1f} s)"
    )
    return dim


def _patch_encoder(name: str, **kwargs: Any) -> Any:
    from radiograph.encoders import build_encoder

    return build_encoder(name, **kwargs)


def check_aggregators(config: StudyConfig, found: _Findings) -> None:
    """Each aggregator's options are fields of its config and build a model (on every modality
    set it is trained on, as the trainer builds it)."""
    from radiograph.nn.registry import build_aggregator, option_names
    from radiograph.train.trainer import aggregator_options

    for aggregator in config.aggregators:
        key = f"aggregator_options.{aggregator}"
        fields = list(option_names(aggregator))
        options = config.aggregator_options.get(aggregator, {})
        unknown = [k for k in options if k not in fields]
        for name in unknown:
            found.problems.append(
                f"unknown key '{key}.{name}'{did_you_mean(name, fields)}; "
                f"allowed under {key!r}: {', '.join(fields)}"
            )
        if unknown:
            continue
        for modalities in config.modality_sets:
            train = config.train_config(aggregator, modalities, config.seeds[0])
            try:
                build_aggregator(
                    aggregator, {m: 8 for m in modalities}, train.task, **aggregator_options(train)
                )
            except (ValueError, TypeError) as err:
                found.problems.append(f"key {key!r}: {err}")
                break


def check_baselines(config: StudyConfig, found: _Findings) -> None:
    """The downstream models are registered, take their ``model_params`` and their ``grids``'
    parameters; ``report.km_model`` is one of them."""
    options = dict(config.baselines)
    names = options.pop("models", None)
    grids = options.pop("grids", {})
    model_params = options.pop("model_params", {})
    if config.task == "classification":
        from radiograph.classify import CLASSIFIERS, make_classifier

        registered = CLASSIFIERS

        def make(name: str) -> Any:
            model = make_classifier(
                name, grids=grids.get(name), model_params=model_params.get(name), **options
            )
            return getattr(model, "estimator", model)
    else:
        from radiograph.survival import BASELINES, make_baseline

        registered = BASELINES

        def make(name: str) -> Any:
            return make_baseline(
                name, grids=grids.get(name), model_params=model_params.get(name), **options
            ).pipeline

    names = tuple(names) if names else tuple(registered)
    for name in names:
        if name not in registered:
            found.problems.append(
                f"key 'baselines.models': unknown model {name!r}"
                f"{did_you_mean(name, registered)}; known: "
                f"{', '.join(registered)}"
            )
            continue
        try:
            pipeline = make(name)
        except ValueError as err:
            found.problems.append(
                f"key 'baselines.model_params.{name}': {str(err).splitlines()[0]}"
            )
            continue
        accepted = [
            k.removeprefix("model__") for k in pipeline.get_params() if k.startswith("model__")
        ]
        for param in grids.get(name, {}):
            if param not in accepted and not (name == "coxnet" and param == "alpha"):
                found.problems.append(
                    f"key 'baselines.grids.{name}.{param}': {name} has no "
                    f"parameter {param!r}{did_you_mean(param, accepted)}"
                )
    km_model = config.report.get("km_model")
    if km_model is not None and km_model not in names:
        found.problems.append(
            f"key 'report.km_model': {km_model!r} is not among the baselines "
            f"({', '.join(names)}){did_you_mean(km_model, names)}"
        )


def check_disk(
    config: StudyConfig, manifest: Manifest, dims: dict[str, int], found: _Findings
) -> None:
    """A problem when the feature files still to write need more than the free space of
    ``out_dir``'s file system; the estimate is a note either way."""
    expected = 0.0
    for modality, dim in dims.items():
        expected += feature_bytes(config, manifest, modality, dim)
    written = (
        sum(f.stat().st_size for f in config.features_dir.rglob("*.h5") if f.is_file())
        if config.features_dir.is_dir()
        else 0
    )
    needed = max(0.0, expected - written)
    folder = config.out_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    found.notes.append(
        f"disk: features about {_size(expected)} ({_size(written)} written), "
        f"{_size(free)} free on {folder}"
    )
    if needed > free:
        found.problems.append(
            f"out_dir {config.out_dir}: the feature files need about "
            f"{_size(needed)} more but only {_size(free)} is free"
        )


def feature_bytes(config: StudyConfig, manifest: Manifest, modality: str, dim: int) -> float:
    """Expected bytes of a modality's feature files (float32 features and float64 coordinates
    per patch or unit).

    Pathology: the patches of each slide's full grid (level-0 size over the patch side in
    level-0 pixels) times the mean tissue fraction of up to :data:`DISK_SAMPLE` slides (their
    tissue mask at 4 mask pixels per patch side). Radiology: the mean tumour volume of up to
    :data:`DISK_SAMPLE` masks over the grid cube's volume, per subject with a CT (habitat
    units are fewer: an upper bound for them).
    """
    row = 4 * dim + COORD_BYTES[modality]
    if modality == "pathology":
        return row * _expected_patches(config, manifest)
    return row * _expected_units(config, manifest)


def _expected_patches(config: StudyConfig, manifest: Manifest) -> float:
    from radiograph.pathology.config import ExtractionConfig
    from radiograph.pathology.slide import Slide, SlideError
    from radiograph.pathology.tissue import compute_tissue_mask

    extraction = ExtractionConfig(**(config.pathology or {}))
    patch_um = extraction.patch_size * extraction.target_mpp
    grid, fractions = 0, []
    for subject in manifest.subjects:
        for path in subject.slide_paths:
            try:
                with Slide(path, mpp=subject.mpp or extraction.mpp) as slide:
                    side = patch_um / slide.mpp
                    width, height = slide.dimensions
                    grid += math.floor(width / side) * math.floor(height / side)
                    if len(fractions) < DISK_SAMPLE:
                        mask = compute_tissue_mask(
                            slide, mask_mpp=patch_um / 4, params=extraction.tissue
                        )
                        fractions.append(float(mask.mask.mean()))
            except (SlideError, OSError, ValueError):
                continue  # extraction reports it; the estimate leaves the slide out
    return grid * (sum(fractions) / len(fractions) if fractions else 1.0)


def _expected_units(config: StudyConfig, manifest: Manifest) -> float:
    import numpy as np
    import SimpleITK as sitk

    unit_mm = float((config.radiology or {}).get("unit_size_mm", 8.0))
    masks = [s.mask_path for s in manifest.subjects if s.has_radiology and s.mask_path]
    volumes = []
    for path in masks[:DISK_SAMPLE]:
        try:
            image = sitk.ReadImage(os.fspath(path))
        except RuntimeError:
            continue
        voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(image)))
        volumes.append(voxels * float(np.prod(image.GetSpacing())))
    mean_volume = sum(volumes) / len(volumes) if volumes else 0.0
    return len(masks) * mean_volume / unit_mm**3


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TB"
