"""Synthetic fusion cohort, habitat features, MHA fusion and stacking: planted structure found,
absent modalities handled, bad input named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from radiograph.fusion.habitat_features import check_sequences, extract_habitat_features
from radiograph.fusion.mha import MHAClassifier, MHAConfig
from radiograph.fusion.stacking import StackingEnsemble
from radiograph.radiology.habitats import HabitatModel
from radiograph.synth.fusion_cohort import SEQUENCES, make_fusion_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    path = make_fusion_cohort(tmp_path_factory.mktemp("fusion"), seed=0, patients=160, size=16)
    return path.parent, pd.read_csv(path, keep_default_na=False)


def _load(root, row):
    image = np.stack([np.load(root / row[s]) for s in SEQUENCES]).astype(np.float64)
    mask = np.load(root / row["mask"])
    return image / np.median(image[:, ~mask], axis=1)[:, None, None, None], mask


def test_availability_pattern_and_true_k_found_on_training_centre(cohort):
    """Centres C/D have no slides, some patients lack MRI; K-means on centre A's tumours picks
    the planted k = 4 (measured: k = 4 for seeds 0-2 at 160 and 400 patients)."""
    root, table = cohort
    assert (table.loc[table.centre.isin(["C", "D"]), "patches"] == "").all()
    assert (table["T2"] == "").any() and (table["patches"] != "").any()
    train = table[(table.centre == "A") & (table["T2"] != "")]
    model = HabitatModel.fit(
        [_load(root, r) for _, r in train.iterrows()], voxels_per_subject=400, n_init=3
    )
    assert model.k == 4
    # planted: habitat with high DWI, low ADC has the largest share-label correlation
    rows = table[table["T2"] != ""]
    feats = extract_habitat_features(
        model,
        {r.subject_id: _load(root, r) for _, r in rows.iterrows()},
        SEQUENCES,
        (1, 1, 1),
        radiomics=False,
    )
    profile = model.centres  # standardised (K, C): habitat 3 of the truth = max DWI - ADC
    planted = int(np.argmax(profile[:, 2] - profile[:, 3])) + 1
    share = feats.values[:, feats.names.index(f"h{planted}_fraction")]
    assert roc_auc_score(rows["label"], share) > 0.65


def test_absent_habitat_gets_fill_and_is_recorded():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 8, 8, 8))
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    model = HabitatModel(
        centres=np.array([[-5.0, -5.0], [0.0, 0.0]]), mean=np.zeros(2), scale=np.ones(2)
    )
    feats = extract_habitat_features(
        model, {"s": (image, mask)}, ("a", "b"), (1, 1, 1), radiomics=False
    )
    assert ("s", 1) in feats.absent
    row = dict(zip(feats.names, feats.values[0]))
    assert row["h1_fraction"] == 0 and row["h1_mean_a"] == 0.0 and row["h2_fraction"] == 1


def test_habitat_radiomics_equal_pyradiomics_called_by_hand():
    """The first-order features per habitat x sequence equal pyradiomics' own extractor (with
    its diagnostics on, as a user would call it) on that habitat's mask, with the spacing
    given as (z, y, x); an absent habitat's radiomics are the fill value."""
    import logging

    import radiomics
    import SimpleITK as sitk
    from radiomics import featureextractor

    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 1.0, size=(2, 10, 9, 8))
    mask = np.zeros((10, 9, 8), bool)
    mask[2:8, 2:7, 1:7] = True
    image[0, :, :, :4] += 3.0  # two intensity habitats in channel 0
    model = HabitatModel(
        centres=np.array([[-1.0, 0.0], [1.0, 0.0], [40.0, 40.0]]),
        mean=np.array([image[0][mask].mean(), image[1][mask].mean()]),
        scale=np.array([image[0][mask].std(), 1e6]),
    )
    spacing = (2.0, 0.7, 0.5)
    feats = extract_habitat_features(model, {"s": (image, mask)}, ("a", "b"), spacing)
    row = dict(zip(feats.names, feats.values[0]))
    labels = model.transform(image, mask)
    radiomics.setVerbosity(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(binCount=16)
    extractor.disableAllFeatures()
    extractor.enableFeatureClassByName("firstorder")
    checked = 0
    for h in (1, 2):
        region = sitk.GetImageFromArray((labels == h).astype(np.uint8))
        region.SetSpacing(spacing[::-1])
        for c, seq in enumerate(("a", "b")):
            img = sitk.GetImageFromArray(image[c])
            img.SetSpacing(spacing[::-1])
            for key, value in extractor.execute(img, region).items():
                if key.startswith("original_firstorder_") and f"h{h}_{seq}_{key}" in row:
                    assert row[f"h{h}_{seq}_{key}"] == pytest.approx(float(value), rel=1e-9)
                    checked += 1
    assert checked >= 2 * 2 * 17
    assert ("s", 3) in feats.absent
    assert row["h3_a_original_firstorder_Mean"] == 0.0
    assert row["h1_a_original_firstorder_Mean"] < row["h2_a_original_firstorder_Mean"]


def test_missing_sequence_names_subject_and_file(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"")
    with pytest.raises(ValueError) as err:
        check_sequences(
            {
                "P1": {"T2": str(tmp_path / "x.npy"), "ADC": ""},
                "P2": {"T2": str(tmp_path / "gone.npy"), "ADC": str(tmp_path / "x.npy")},
            },
            ("T2", "ADC"),
        )
    assert "subject P1: sequence 'ADC' is missing" in str(err.value)
    assert f"subject P2: sequence 'T2' file {tmp_path / 'gone.npy'}" in str(err.value)


def _two_modalities(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * a + 1.5 * b)))).astype(int)
    xs = [
        np.column_stack([a + 0.3 * rng.normal(size=n), rng.normal(size=(n, 3))]),
        np.column_stack([b + 0.3 * rng.normal(size=n), rng.normal(size=(n, 3))]),
    ]
    present = np.ones((n, 2), bool)
    present[rng.random(n) < 0.2, 1] = False
    return xs, present, y


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model on shared cores: threads only contend
    yield
    torch.set_num_threads(before)


def test_mha_fusion_learns_and_predicts_with_a_missing_one(one_thread):
    """Held-out AUROC of MHA fusion (150 epochs) on two complementary modalities, subjects
    with both: measured over seeds 0-2 0.758, 0.831, 0.851, against the best single signal
    feature's 0.773, 0.806, 0.817: fusion is NOT reliably better at n = 200 training rows, so
    the test asserts learning (> 0.72, below the measured minimum) and the padding mask."""
    xs, present, y = _two_modalities(0)
    tr, te = slice(0, 200), slice(200, None)
    model = MHAClassifier(MHAConfig(epochs=150)).fit([x[tr] for x in xs], present[tr], y[tr])
    prob = model.predict_proba([x[te] for x in xs], present[te])
    assert np.isfinite(prob).all() and prob.shape == (100,)
    both = present[te].all(1)
    assert roc_auc_score(y[te][both], prob[both]) > 0.72
    assert roc_auc_score(y[te][~both], prob[~both]) > 0.6  # modality 1 alone still informs
    # the padding mask hides an absent modality: its values do not matter
    garbage = [xs[0][te], np.where(present[te, 1:2], xs[1][te], 1e6)]
    np.testing.assert_allclose(model.predict_proba(garbage, present[te]), prob, rtol=1e-5)
    with pytest.raises(ValueError, match="d_model"):
        MHAConfig(d_model=30, heads=4)


def test_stacking_meta_model_fitted_once_and_matches_sklearn_by_hand():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, size=(120, 2))
    y = (rng.random(120) < p.mean(1)).astype(int)
    ens = StackingEnsemble(C=1.0).fit(p, y)
    z = np.log(p / (1 - p))
    ref = LogisticRegression(C=1.0, max_iter=5000).fit((z - z.mean(0)) / z.std(0), y)
    np.testing.assert_allclose(
        ens.predict_proba(p), ref.predict_proba((z - z.mean(0)) / z.std(0))[:, 1], rtol=1e-4
    )
    with pytest.raises(ValueError, match="intersection"):
        ens.predict_proba(np.array([[0.2, np.nan]]))
