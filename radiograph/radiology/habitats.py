r"""MRI / CT habitats: K-means sub-regions of the tumour fitted across a training cohort.

As in the habitat study (seeds/000): every tumour voxel is a point whose coordinates are its
intensities in all channels (e.g. T2, CE-T1, DWI, ADC); K-means with the squared Euclidean
distance clusters the voxels of the whole training cohort at once ("cohort-level"
clustering), the number of clusters K is the one in 2..10 with the highest Calinski-Harabasz
score, and each subject's tumour is then partitioned by assigning every voxel to the nearest
centre. :func:`radiograph.radiology.units.habitat_units` splits each habitat into connected
components, the units.

With a single channel (CT), the Calinski-Harabasz score of Gaussian-like intensity clusters
keeps rising with K (splitting a 1-D Gaussian removes its variance faster than the score's
(n - K) / (K - 1) factor penalises it), so the largest candidate tends to win; the criterion
is meant for multi-parametric MRI as in seeds/000. Narrow the candidates (``k_range``,
``--habitat-k``) for single-channel volumes.

Channels are standardised with the mean and standard deviation of the pooled training sample
before clustering, so each channel weighs the same whatever its unit.

Choosing K on a subsample (``selection_voxels``): the score of a K-means partition is
:math:`CH(K) = \frac{B_K / (K - 1)}{W_K / (n - K)}` (between- and within-cluster dispersion).
For :math:`n \gg K` the factor :math:`(n - K)` is the same for every candidate up to
:math:`K/n`, and :math:`B_K / W_K` is a ratio of means over voxels that a seeded random
subsample of the pooled voxels estimates consistently; so the K that maximises
CH on 10^5 voxels is the K that maximises it on 10^6 unless two candidates score within the
subsample's sampling error. With ``selection_voxels`` set and the pool larger, K is chosen on
such a subsample and only the chosen K is then fitted (``n_init`` restarts) on all pooled
voxels: 9 candidates x ``n_init`` full K-means fits become 1 x ``n_init``
(``benchmarks/fusion.py``: 10^6 voxels, the same K). The default (None) scores every K on
all pooled voxels.

Leakage: the model is fitted on the subjects it is given. For a leak-free cross-validated
estimate, fit one model per training fold (``HabitatModel.fit`` on that fold's subjects, or
``radiograph extract-radiology --habitat-fit-subjects``) and extract the test fold's habitats
with it (``--habitat-model PATH``). Fitting once on the whole cohort, the command's default,
lets the unsupervised clustering see the test subjects' intensities (no outcome is used).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score
from threadpoolctl import threadpool_limits

from radiograph.io.atomic import read_json, write_json
from radiograph.radiology.config import DEFAULT_K_RANGE

FORMAT = "radiograph-habitat-model"


class HabitatModelError(ValueError):
    """A habitat model cannot be fitted, read or applied."""


@dataclass(frozen=True)
class HabitatSummary:
    """Per-habitat description of one tumour (seeds/000: mean signal, volume, proportion).

    Attributes:
        mean_intensity: float64 (K, C) mean intensity of each habitat in each channel
            (NaN for a habitat absent from this tumour).
        volume_mm3: float64 (K,) volume of each habitat in mm^3.
        proportion: float64 (K,) fraction of the tumour's voxels in each habitat.
    """

    mean_intensity: np.ndarray
    volume_mm3: np.ndarray
    proportion: np.ndarray


@dataclass
class HabitatModel:
    """K-means habitat model over standardised voxel intensities.

    Attributes:
        centres: float64 (K, C) cluster centres in standardised units, sorted by their first
            channel (habitat 1 is the darkest in channel 0).
        mean: float64 (C,) per-channel mean used for standardisation.
        scale: float64 (C,) per-channel standard deviation used for standardisation.
        calinski_harabasz: K -> Calinski-Harabasz score of the K-means fit with K clusters.
        seed: seed of the voxel sample and of K-means.
        n_fit_voxels: voxels in the pooled fitting sample.
        subjects: subject ids the model was fitted on.
        n_selection_voxels: voxels the Calinski-Harabasz scores were computed on (equal to
            ``n_fit_voxels`` unless K was chosen on a subsample).
    """

    centres: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    calinski_harabasz: dict[int, float] = field(default_factory=dict)
    seed: int = 0
    n_fit_voxels: int = 0
    subjects: tuple[str, ...] = ()
    n_selection_voxels: int = 0

    @property
    def k(self) -> int:
        """Number of habitats."""
        return int(self.centres.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.centres.shape[1])

    @classmethod
    def fit(
        cls,
        samples: Sequence[tuple[np.ndarray, np.ndarray]],
        *,
        k_range: Sequence[int] = DEFAULT_K_RANGE,
        voxels_per_subject: int = 2000,
        seed: int = 0,
        n_init: int = 10,
        subjects: Sequence[str] = (),
        threads: int | None = 1,
        selection_voxels: int | None = None,
    ) -> HabitatModel:
        """Fit on the tumour voxels of training subjects; choose K by Calinski-Harabasz.

        Args:
            samples: one (image, mask) pair per training subject: image float (C, D, H, W)
                (the volumes' ``normalised`` arrays), mask bool (D, H, W).
            k_range: candidate numbers of clusters.
            voxels_per_subject: tumour voxels sampled (without replacement, seeded) from each
                subject; all of them when the tumour is smaller.
            seed: seed of the sample and of K-means.
            n_init: K-means restarts per K.
            subjects: subject ids, recorded in the model.
            threads: OpenMP threads for K-means; 1 (default) avoids oversubscribing the cores
                when several processes run, None uses every core.
            selection_voxels: when the pooled sample is larger, K is chosen on a seeded random
                subsample of this many voxels and only the chosen K is fitted on all of them
                (module docstring); None (default) scores every K on all pooled voxels.

        Raises:
            HabitatModelError: no samples, channel counts differ, or too few voxels for the
                largest K.
            ValueError: ``selection_voxels`` is not None and smaller than 10 x the largest K.
        """
        if not samples:
            raise HabitatModelError("no training subjects to fit habitats on")
        channels = {image.shape[0] for image, _ in samples}
        if len(channels) != 1:
            raise HabitatModelError(f"training subjects have different channel counts {channels}")
        rng = np.random.default_rng(seed)
        pooled = []
        for image, mask in samples:
            voxels = image[:, mask].T.astype(np.float64)
            if len(voxels) > voxels_per_subject:
                voxels = voxels[np.sort(rng.choice(len(voxels), voxels_per_subject, replace=False))]
            pooled.append(voxels)
        x = np.concatenate(pooled)
        k_range = sorted(int(k) for k in k_range)
        if not k_range or k_range[0] < 2:
            raise HabitatModelError(f"candidate K must be >= 2; got {k_range}")
        if len(x) <= k_range[-1]:
            raise HabitatModelError(
                f"{len(x)} tumour voxels cannot be split into {k_range[-1]} clusters"
            )
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        if selection_voxels is not None and selection_voxels < 10 * k_range[-1]:
            raise ValueError(
                f"selection_voxels: need >= 10 x the largest K ({10 * k_range[-1]}); "
                f"got {selection_voxels}"
            )
        subsample = selection_voxels is not None and len(z) > selection_voxels
        z_select = (
            z[np.sort(rng.choice(len(z), selection_voxels, replace=False))] if subsample else z
        )
        scores: dict[int, float] = {}
        fits: dict[int, np.ndarray] = {}
        with threadpool_limits(limits=threads):
            for k in k_range:
                km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z_select)
                if len(np.unique(km.labels_)) < 2:
                    continue
                scores[k] = float(calinski_harabasz_score(z_select, km.labels_))
                fits[k] = km.cluster_centers_
            if not scores:
                raise HabitatModelError(
                    "K-means found a single cluster for every K (constant intensities?)"
                )
            best = max(scores, key=lambda k: scores[k])
            if subsample:
                fits[best] = (
                    KMeans(n_clusters=best, n_init=n_init, random_state=seed)
                    .fit(z)
                    .cluster_centers_
                )
        centres = fits[best]
        centres = centres[np.lexsort(centres.T[::-1])]
        return cls(
            centres=centres,
            mean=mean,
            scale=scale,
            calinski_harabasz=scores,
            seed=seed,
            n_fit_voxels=len(x),
            subjects=tuple(subjects),
            n_selection_voxels=len(z_select),
        )

    def transform(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Habitat of every tumour voxel.

        Args:
            image: float (C, D, H, W), the same kind of array the model was fitted on.
            mask: bool (D, H, W).

        Returns:
            int16 (D, H, W): 0 outside the mask, 1..K the nearest centre's habitat.
        """
        if image.shape[0] != self.num_channels:
            raise HabitatModelError(
                f"image has {image.shape[0]} channel(s); the habitat model "
                f"was fitted on {self.num_channels}"
            )
        z = (image[:, mask].T.astype(np.float64) - self.mean) / self.scale
        # squared distance to each centre, less the |z|^2 term that all centres share
        d2 = (self.centres**2).sum(axis=1)[None, :] - 2.0 * z @ self.centres.T
        labels = np.zeros(mask.shape, dtype=np.int16)
        labels[mask] = np.argmin(d2, axis=1) + 1
        return labels

    def summary(
        self, labels: np.ndarray, intensity: np.ndarray, spacing_mm: Sequence[float]
    ) -> HabitatSummary:
        """Mean intensity, volume (mm^3) and proportion of each habitat in one tumour.

        Args:
            labels: int (D, H, W) from :meth:`transform`.
            intensity: float (C, D, H, W) intensities to average (e.g. the volume's
                ``intensity``: HU for CT, z-scores for MR).
            spacing_mm: voxel spacing (3,) in mm.
        """
        inside = labels > 0
        ids = labels[inside].astype(np.int64)
        counts = np.bincount(ids, minlength=self.k + 1)[1:].astype(np.float64)
        sums = np.stack(
            [
                np.bincount(ids, weights=channel[inside], minlength=self.k + 1)[1:]
                for channel in intensity
            ],
            axis=1,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / counts[:, None]
        return HabitatSummary(
            mean_intensity=mean,
            volume_mm3=counts * float(np.prod(spacing_mm)),
            proportion=counts / max(1.0, counts.sum()),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as JSON (atomically)."""
        write_json(
            path,
            {
                "format": FORMAT,
                "version": 1,
                "k": self.k,
                "channels": self.num_channels,
                "centres": self.centres.tolist(),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "calinski_harabasz": {str(k): v for k, v in self.calinski_harabasz.items()},
                "seed": self.seed,
                "n_fit_voxels": self.n_fit_voxels,
                "n_selection_voxels": self.n_selection_voxels,
                "subjects": list(self.subjects),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> HabitatModel:
        """Read a model written by :meth:`save`.

        Raises:
            HabitatModelError: the file is missing or not a habitat model.
        """
        try:
            data = read_json(path)
        except (OSError, ValueError) as err:
            raise HabitatModelError(f"habitat model {path}: cannot read it ({err})") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise HabitatModelError(f"habitat model {path}: not a {FORMAT} file")
        centres = np.asarray(data["centres"], dtype=np.float64)
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        if centres.ndim != 2 or mean.shape != (centres.shape[1],) or scale.shape != mean.shape:
            raise HabitatModelError(f"habitat model {path}: inconsistent array shapes")
        return cls(
            centres=centres,
            mean=mean,
            scale=scale,
            calinski_harabasz={
                int(k): float(v) for k, v in data.get("calinski_harabasz", {}).items()
            },
            seed=int(data.get("seed", 0)),
            n_fit_voxels=int(data.get("n_fit_voxels", 0)),
            subjects=tuple(data.get("subjects", ())),
            n_selection_voxels=int(data.get("n_selection_voxels", data.get("n_fit_voxels", 0))),
        )
