"""Settings of the habitat-fusion study (``kind: habitat-fusion``,
``experiments/configs/habitat_fusion.yaml``), read and checked in full before any work with the
machinery of :mod:`radiograph.study_config` (typed dataclasses, every problem collected into
one :class:`~radiograph.study_config.ConfigError` naming its key path, did-you-mean for
unknown keys).

The cohort table (``cohort``) is described in :mod:`radiograph.fusion.study`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from radiograph.classify.baselines import CLASSIFIERS, make_classifier
from radiograph.fusion.clinical import ClinicalVariable
from radiograph.fusion.designs import CentreDesign
from radiograph.fusion.mha import MHAConfig
from radiograph.study_config import (  # the shared typed reader
    ConfigError,
    _coerce,
    _TypeProblem,
    did_you_mean,
    read_yaml,
)

KIND = "habitat-fusion"
MODALITY_LETTERS = {"C": "clinic", "H": "habitat", "P": "pathology"}
STACKS = ("CH", "CP", "HP", "CHP")


@dataclass(frozen=True)
class HabitatSettings:
    """Habitat K-means and features (:mod:`radiograph.fusion.habitat_features`).

    Attributes:
        k_min, k_max: candidate numbers of habitats (Calinski-Harabasz picks one; seeds/000:
            2..10).
        voxels_per_subject: tumour voxels sampled per training subject for K-means.
        n_init: K-means restarts per k.
        selection_voxels: k is chosen by Calinski-Harabasz on a seeded subsample of this many
            pooled voxels and only the chosen k is fitted on all of them
            (:meth:`radiograph.radiology.habitats.HabitatModel.fit`); null scores every k on
            all pooled voxels.
        radiomics: add pyradiomics first-order features per habitat x sequence.
        spacing_mm: voxel spacing (z, y, x) of the volumes.
        normalise: ``background_median`` divides each sequence by the median of its
            non-tumour voxels (removes a per-scanner intensity scale); ``none`` keeps raw values.
    """

    k_min: int = 2
    k_max: int = 10
    voxels_per_subject: int = 2000
    n_init: int = 4
    selection_voxels: int | None = 100_000
    radiomics: bool = True
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    normalise: Literal["background_median", "none"] = "background_median"

    def __post_init__(self) -> None:
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(
                f"k_min, k_max: need 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}"
            )
        if self.voxels_per_subject < 10 or self.n_init < 1:
            raise ValueError("voxels_per_subject, n_init: need >= 10 and >= 1")
        if self.selection_voxels is not None and self.selection_voxels < 10 * self.k_max:
            raise ValueError(
                f"selection_voxels: need null or >= 10 x k_max ({10 * self.k_max}), "
                f"got {self.selection_voxels}"
            )


@dataclass(frozen=True)
class SelectionSettings:
    """The selection chain (:func:`radiograph.fusion.selection.make_selection_chain`)."""

    k: int = 20
    alpha: float = 0.05
    threshold: float = 0.9

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 < self.alpha < 1 or not 0 < self.threshold <= 1:
            raise ValueError(
                f"k >= 1, alpha in (0, 1), threshold in (0, 1] needed; got "
                f"{self.k}, {self.alpha}, {self.threshold}"
            )


@dataclass(frozen=True)
class FusionStudyConfig:
    """The whole study (defaults as documented in ``experiments/configs/habitat_fusion.yaml``).

    Attributes:
        cohort: cohort CSV (format: :mod:`radiograph.fusion.study`); file columns are relative
            to its folder.
        out_dir: output folder.
        clinical: the declared clinical variables.
        design: training centre(s), internal split fraction, external centres, split seed.
        leave_one_centre_out: also run one design per centre trained on all the others.
        sequences: MRI sequence columns, in channel order.
        habitat, selection: see their classes.
        classifiers: the bank each feature modality picks its model from (inner CV).
        classifier_params: classifier -> constructor arguments replacing the bank's
            (:func:`radiograph.classify.baselines.make_classifier`), e.g. ``{rf:
            {n_estimators: 100}}``; checked against the model when the config is read.
        outer_folds: folds of the training-data CV that gives out-of-fold probabilities
            (model choice, stacking inputs, training-cohort metrics, thresholds).
        inner_folds: folds of the classifiers' grid search and the LASSO penalty.
        clinical_p_enter: univariable p threshold of the clinical model.
        stacking: ensembles to fit (subsets of C, H, P).
        stacking_C: inverse L2 penalty of the meta-model.
        patch_C: inverse L2 penalty of the patch classifier.
        mha: MHA fusion sizes and training.
        n_boot: bootstrap resamples of the decision-curve bands (0: none).
        seed: seed of folds, classifiers and the patch subsample.
    """

    cohort: Path
    out_dir: Path
    clinical: tuple[ClinicalVariable, ...]
    design: CentreDesign
    leave_one_centre_out: bool = True
    sequences: tuple[str, ...] = ("T2", "CE_T1", "DWI", "ADC")
    habitat: HabitatSettings = field(default_factory=HabitatSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    classifiers: tuple[str, ...] = CLASSIFIERS
    classifier_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    outer_folds: int = 5
    inner_folds: int = 5
    clinical_p_enter: float = 0.05
    stacking: tuple[str, ...] = STACKS
    stacking_C: float = 1.0
    patch_C: float = 0.1
    mha: MHAConfig = field(default_factory=MHAConfig)
    n_boot: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.clinical:
            raise ValueError("clinical: declare at least one variable")
        unknown = [c for c in self.classifiers if c not in CLASSIFIERS]
        if unknown or not self.classifiers:
            hint = did_you_mean(unknown[0], CLASSIFIERS) if unknown else ""
            raise ValueError(f"classifiers: unknown {unknown}{hint}; known: {list(CLASSIFIERS)}")
        for name, params in self.classifier_params.items():
            if name not in self.classifiers:
                raise ValueError(
                    f"classifier_params: {name!r} is not among classifiers "
                    f"{list(self.classifiers)}{did_you_mean(name, self.classifiers)}"
                )
            try:
                make_classifier(name, model_params=params)
            except ValueError as err:
                raise ValueError(f"classifier_params.{name}: {err}") from None
        bad = [s for s in self.stacking if s not in STACKS]
        if bad:
            raise ValueError(f"stacking: {bad} not among {list(STACKS)}")
        if self.outer_folds < 2 or self.inner_folds < 2:
            raise ValueError("outer_folds, inner_folds: need >= 2")
        if not self.sequences or len(set(self.sequences)) != len(self.sequences):
            raise ValueError(f"sequences: need distinct names, got {list(self.sequences)}")


def load_fusion_config(
    path: str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> FusionStudyConfig:
    """Read and check a habitat-fusion study config; ``cohort`` and ``out_dir`` are relative
    to the file's folder, ``out_dir`` (argument) to the working directory.

    Raises:
        ConfigError: every problem, each naming its key path.
    """
    path = Path(path)
    raw = read_yaml(path)
    problems: list[str] = []
    kind = raw.pop("kind", KIND)
    if kind != KIND:
        problems.append(f"key 'kind': this reader takes {KIND!r}, got {kind!r}")
    hints = typing.get_type_hints(FusionStudyConfig)
    names = [f.name for f in dataclasses.fields(FusionStudyConfig)]
    required = [
        f.name
        for f in dataclasses.fields(FusionStudyConfig)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            problems.append(f"key {key!r}: unknown key{did_you_mean(key, names)}")
            continue
        try:
            values[key] = _coerce(value, hints[key], key)
        except _TypeProblem as err:
            problems.append(f"key {err.key!r}: {err.message}")
    if out_dir is not None:
        values["out_dir"] = Path(out_dir).resolve()
    for key in ("cohort", "out_dir"):
        if key in values and not values[key].is_absolute():
            values[key] = (path.parent / values[key]).resolve()
    problems += [f"key {k!r}: required" for k in required if k not in values and k not in raw]
    if not problems:
        try:
            return FusionStudyConfig(**values)
        except ValueError as err:
            problems.append(str(err))
    raise ConfigError(f"{path}:\n  " + "\n  ".join(problems))
