"""Cohort habitat clustering recovers planted intensity sub-regions and their number."""

from __future__ import annotations

import numpy as np
import pytest
from radiology_synth import planted_habitats
from sklearn.metrics import adjusted_rand_score

from radiograph.radiology.habitats import HabitatModel, HabitatModelError


@pytest.mark.parametrize("k", [3, 4])
def test_habitats_recover_planted_subregions_and_their_number(k):
    train = [planted_habitats(k=k, seed=s)[:2] for s in range(3)]
    model = HabitatModel.fit(train, voxels_per_subject=1500, seed=0, subjects=["a", "b", "c"])
    assert model.k == k, model.calinski_harabasz
    assert max(model.calinski_harabasz, key=model.calinski_harabasz.get) == k
    assert sorted(model.calinski_harabasz) == list(range(2, 11))

    image, mask, truth = planted_habitats(k=k, seed=99)  # a subject not seen in the fit
    labels = model.transform(image, mask)
    assert np.all((labels > 0) == mask)
    ari = adjusted_rand_score(truth[mask], labels[mask])
    assert ari >= 0.9, ari


@pytest.mark.parametrize("k", [3, 4])
def test_k_chosen_on_a_subsample_matches_every_k_on_all_voxels(k, tmp_path):
    """``selection_voxels``: Calinski-Harabasz on a seeded subsample picks the k that scoring on
    all pooled voxels picks, and the chosen k's fit on all voxels labels a new tumour as the
    full fit does."""
    train = [planted_habitats(k=k, seed=s)[:2] for s in range(4)]
    full = HabitatModel.fit(train, voxels_per_subject=5000, seed=0)
    sub = HabitatModel.fit(train, voxels_per_subject=5000, seed=0, selection_voxels=2000)
    assert full.n_fit_voxels == sub.n_fit_voxels == 20_000
    assert (full.n_selection_voxels, sub.n_selection_voxels) == (20_000, 2000)
    assert sub.k == full.k == k, (sub.calinski_harabasz, full.calinski_harabasz)
    # CH scales with n: the subsample's scores are about n_sub / n of the full ones
    ratio = sub.calinski_harabasz[k] / full.calinski_harabasz[k]
    assert ratio == pytest.approx(2000 / 20_000, rel=0.1)
    image, mask, truth = planted_habitats(k=k, seed=99)
    assert (
        adjusted_rand_score(full.transform(image, mask)[mask], sub.transform(image, mask)[mask])
        > 0.99
    )
    sub.save(tmp_path / "m.json")
    assert HabitatModel.load(tmp_path / "m.json").n_selection_voxels == 2000
    with pytest.raises(ValueError, match="selection_voxels"):
        HabitatModel.fit(train, voxels_per_subject=5000, selection_voxels=50)


def test_saved_model_assigns_the_same_habitats(tmp_path):
    train = [planted_habitats(seed=s)[:2] for s in range(2)]
    model = HabitatModel.fit(train, voxels_per_subject=800, seed=3, k_range=range(2, 6))
    model.save(tmp_path / "habitats.json")
    loaded = HabitatModel.load(tmp_path / "habitats.json")
    image, mask, _ = planted_habitats(seed=5)
    np.testing.assert_array_equal(loaded.transform(image, mask), model.transform(image, mask))
    assert loaded.calinski_harabasz == pytest.approx(model.calinski_harabasz)


def test_habitat_summary_matches_hand_computation():
    image, mask, truth = planted_habitats(seed=1)
    model = HabitatModel.fit([(image, mask)], voxels_per_subject=3000, seed=0, k_range=[3])
    labels = model.transform(image, mask)
    summary = model.summary(labels, image, (0.8, 0.8, 2.0))
    for h in range(1, 4):
        inside = labels == h
        assert summary.volume_mm3[h - 1] == pytest.approx(inside.sum() * 0.8 * 0.8 * 2.0)
        assert summary.proportion[h - 1] == pytest.approx(inside.sum() / mask.sum())
        np.testing.assert_allclose(
            summary.mean_intensity[h - 1],
            image[:, inside].astype(np.float64).mean(axis=1),
            rtol=1e-6,
        )
    # habitats are ordered by their channel-0 centre: habitat 1 is the darkest
    assert np.all(np.diff(summary.mean_intensity[:, 0]) > 0)


def test_model_rejects_images_with_other_channels(tmp_path):
    image, mask, _ = planted_habitats(channels=2)
    model = HabitatModel.fit([(image, mask)], voxels_per_subject=500, k_range=[2, 3])
    with pytest.raises(HabitatModelError, match="channel"):
        model.transform(image[:1], mask)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(HabitatModelError, match="not a radiograph-habitat-model"):
        HabitatModel.load(tmp_path / "bad.json")
