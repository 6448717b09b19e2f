"""Multi-sequence MRI habitat features (seeds/000): K-means habitats on the co-registered
sequences (k in 2..10 by Calinski-Harabasz, :class:`radiograph.radiology.habitats.HabitatModel`)
fitted on the training centre's subjects only and applied unchanged to all others; per subject
and habitat: volume fraction, volume (mm^3), mean intensity per sequence, and pyradiomics
first-order features per habitat x sequence.

An absent habitat (no voxel of the tumour assigned to it) gets :data:`ABSENT_FILL` for every
feature except its fraction and volume (0), and is listed in :attr:`HabitatFeatures.absent`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from radiograph.radiology.habitats import HabitatModel

ABSENT_FILL = 0.0
"""Value of the intensity and radiomics features of a habitat absent from a tumour."""


@dataclass(frozen=True)
class HabitatFeatures:
    """Features of every subject.

    Attributes:
        ids: subject ids, row order.
        names: feature names (``h<k>_fraction``, ``h<k>_volume_mm3``, ``h<k>_mean_<seq>``,
            ``h<k>_<seq>_<pyradiomics name>``).
        values: float64 (n, F).
        absent: (subject, habitat) pairs filled with :data:`ABSENT_FILL`.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray
    absent: tuple[tuple[str, int], ...]


def check_sequences(paths: Mapping[str, Mapping[str, str]], sequences: Sequence[str]) -> None:
    """Every subject with MRI has every sequence: one error naming each subject, sequence and
    file (or 'missing').

    Args:
        paths: subject -> sequence -> file path ("" or absent key: missing).
        sequences: required sequence names, e.g. ``("T2", "CE_T1", "DWI", "ADC")``.
    """
    from pathlib import Path

    problems = []
    for sid, given in paths.items():
        for seq in sequences:
            path = given.get(seq, "")
            if not path:
                problems.append(f"subject {sid}: sequence {seq!r} is missing")
            elif not Path(path).is_file():
                problems.append(f"subject {sid}: sequence {seq!r} file {path} does not exist")
    if problems:
        raise ValueError("MRI sequences:\n  " + "\n  ".join(problems[:20]))


def _firstorder_extractor():  # pyradiomics is slow to import: only when radiomics are wanted
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    # additionalInfo=False: no diagnostics (image and mask hashes, versions), which took half
    # of each call's time; the feature values are the same
    extractor = featureextractor.RadiomicsFeatureExtractor(binCount=16, additionalInfo=False)
    extractor.disableAllFeatures()
    extractor.enableFeatureClassByName("firstorder")
    return extractor


def extract_habitat_features(
    model: HabitatModel,
    volumes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    sequences: Sequence[str],
    spacing_mm: Sequence[float],
    *,
    radiomics: bool = True,
) -> HabitatFeatures:
    """Apply a fitted habitat model to every subject and describe each habitat.

    Args:
        model: fitted on the training subjects only.
        volumes: subject -> (image float (C, D, H, W) in the order of ``sequences``,
            mask bool (D, H, W)).
        sequences: channel names (C of them).
        spacing_mm: voxel spacing (3,).
        radiomics: add pyradiomics first-order features per habitat x sequence.
    """
    import SimpleITK as sitk

    extractor = _firstorder_extractor() if radiomics else None
    spacing = [float(s) for s in spacing_mm[::-1]]
    ids, rows, absent, names = [], [], [], None
    for sid, (image, mask) in volumes.items():
        if image.shape[0] != len(sequences):
            raise ValueError(
                f"subject {sid}: {image.shape[0]} channels for sequences {list(sequences)}"
            )
        labels = model.transform(image, mask)
        summary = model.summary(labels, image, spacing_mm)
        row: dict[str, float] = {}
        channel_images: dict[int, object] = {}  # each sequence as a SimpleITK image, made once
        for h in range(model.k):
            present = summary.proportion[h] > 0
            if not present:
                absent.append((sid, h + 1))
            row[f"h{h + 1}_fraction"] = float(summary.proportion[h])
            row[f"h{h + 1}_volume_mm3"] = float(summary.volume_mm3[h])
            for c, seq in enumerate(sequences):
                row[f"h{h + 1}_mean_{seq}"] = (
                    float(summary.mean_intensity[h, c]) if present else ABSENT_FILL
                )
            if extractor is None:
                continue
            region = sitk.GetImageFromArray((labels == h + 1).astype(np.uint8))
            region.SetSpacing(spacing)
            for c, seq in enumerate(sequences):
                values = {}
                if int((labels == h + 1).sum()) > 1:
                    if c not in channel_images:
                        img = sitk.GetImageFromArray(np.ascontiguousarray(image[c], np.float64))
                        img.SetSpacing(spacing)
                        channel_images[c] = img
                    values = {
                        k: float(v)
                        for k, v in extractor.execute(channel_images[c], region).items()
                        if not k.startswith("diagnostics_")
                    }
                for key in _firstorder_names():
                    row[f"h{h + 1}_{seq}_{key}"] = values.get(key, ABSENT_FILL)
        names = names or tuple(row)
        ids.append(sid)
        rows.append([row[n] for n in names])
    values = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=ABSENT_FILL)
    return HabitatFeatures(tuple(ids), names or (), values, tuple(absent))


@functools.cache
def _firstorder_names() -> tuple[str, ...]:
    """pyradiomics' non-deprecated first-order feature keys, in a fixed order."""
    from radiomics import firstorder

    names = firstorder.RadiomicsFirstOrder.getFeatureNames()
    return tuple(f"original_firstorder_{n}" for n in sorted(names) if not names[n])
