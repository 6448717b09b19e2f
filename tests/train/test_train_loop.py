"""Cross-validated training end to end on a tiny two-modality cohort: outputs, determinism,
resume, missing modalities, checkpoints, classification."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sksurv.metrics import concordance_index_censored

from radiograph.io.atomic import partial_files, read_json
from radiograph.nn import build_aggregator
from radiograph.train.config import TrainConfig
from radiograph.train.data import SubjectRecord, load_graph_cohort, node_scaling
from radiograph.train.trainer import (
    FoldConflictError,
    fit,
    fold_seed,
    load_fold_model,
    predict,
    run_cross_validation,
)

MODALITIES = ("radiology", "pathology")


def _config(tiny, out, **overrides) -> TrainConfig:
    settings = dict(
        graphs_dir=tiny.graphs_dir,
        manifest=tiny.manifest,
        out_dir=out,
        modalities=MODALITIES,
        aggregator="sparra",
        epochs=2,
        batch_size=8,
        folds=3,
        run_folds=(0,),
        seed=7,
        aggregator_options={"n_e": 16, "n_h": 8, "attention_dim": 8},
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def _run(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_cross_validation(config, progress=False)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    config = _config(tiny, tmp_path_factory.mktemp("run"))
    return config, _run(config)


def test_subject_without_graphs_is_dropped_with_a_warning(tiny):
    with pytest.warns(UserWarning, match=rf"1 of 30 subjects dropped .*{tiny.no_graph}"):
        cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, MODALITIES)
    assert tiny.no_graph not in cohort.records
    assert cohort.in_dims == {"radiology": 32, "pathology": 32}
    for sid in tiny.no_radiology:
        assert set(cohort.records[sid].graphs) == {"pathology"}


def test_fold_outputs(trained, tiny):
    config, results = trained
    (result,) = results
    fold_dir = config.model_dir / "fold_0"
    assert fold_dir == config.out_dir / "sparra" / "radiology+pathology" / "fold_0"
    splits = read_json(config.out_dir / "splits.json")["folds"][0]
    expected_test = [s for s in splits["test"] if s != tiny.no_graph]
    expected_train = [s for s in splits["train"] if s != tiny.no_graph]
    assert (result.n_train, result.n_test) == (len(expected_train), len(expected_test))

    table = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    assert list(table.columns) == ["subject_id", "patient_id", "split", "time", "event", "risk"]
    assert table.loc[table.split == "test", "subject_id"].tolist() == expected_test
    assert table.loc[table.split == "train", "subject_id"].tolist() == expected_train
    index = {s: i for i, s in enumerate(tiny.cohort.subject_ids)}
    rows = [index[s] for s in table.subject_id]
    np.testing.assert_allclose(table.time, tiny.cohort.time[rows])
    np.testing.assert_array_equal(table.event, tiny.cohort.event[rows])

    test = table[table.split == "test"]
    c_index = concordance_index_censored(test.event.astype(bool), test.time, test.risk)[0]
    assert result.metrics["c_index_test"] == pytest.approx(c_index)

    embeddings = np.load(fold_dir / "embeddings.npz")
    assert embeddings["subject_ids"].tolist() == table.subject_id.tolist()
    assert embeddings["x"].shape == (len(table), 2 * 8)
    # A subject without radiology has a zero radiology block (the first n_h entries).
    for sid in tiny.no_radiology:
        row = table.subject_id.tolist().index(sid)
        assert np.all(embeddings["x"][row, :8] == 0) and np.any(embeddings["x"][row, 8:] != 0)

    log = pd.read_csv(fold_dir / "train_log.csv")
    assert log.epoch.tolist() == [1, 2]
    for column in (
        "lr",
        "loss",
        "task_loss",
        "aux_loss",
        "kl",
        "mse",
        "batches",
        "batches_no_event",
        "seconds",
    ):
        assert column in log
    np.testing.assert_allclose(log.loss, log.task_loss + log.aux_loss, rtol=1e-6)
    assert log.lr.iloc[0] == pytest.approx(config.lr)
    assert log.lr.iloc[1] == pytest.approx(config.lr * (1 + math.cos(math.pi / 2)) / 2)
    assert (log.batches == math.ceil(result.n_train / 8)).all()
    summary = read_json(fold_dir / "summary.json")
    assert summary["metrics"] == result.metrics
    assert partial_files(config.out_dir) == []


def _kept(n: int, ratio: float = 0.2) -> int:
    """Nodes TopKPooling keeps after two layers: ceil(ratio * ceil(ratio * n))."""
    return math.ceil(ratio * math.ceil(ratio * n))


def test_importance_files(trained, tiny):
    config, _ = trained
    fold_dir = config.model_dir / "fold_0"
    index = {s: i for i, s in enumerate(tiny.cohort.subject_ids)}
    table = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    for sid in table.subject_id:
        arrays = np.load(fold_dir / "importance" / f"{sid}.npz")
        for modality in MODALITIES:
            graph = tiny.cohort.graphs[modality][index[sid]]
            if graph is None:
                assert f"{modality}_importance" not in arrays.files
                continue
            imp = arrays[f"{modality}_importance"]
            assert imp.shape == (graph.num_nodes,)
            assert imp.sum() == pytest.approx(1.0)  # weight_norm "modality": 1 per graph
            assert (imp >= 0).all() and np.count_nonzero(imp) == _kept(graph.num_nodes)
            np.testing.assert_array_equal(arrays[f"{modality}_pos"], graph.pos.numpy())
            np.testing.assert_array_equal(
                arrays[f"{modality}_patch_importance"], imp[graph.node_of_patch.numpy()]
            )
    two = np.load(fold_dir / "importance" / f"{tiny.two_patches_per_node}.npz")
    np.testing.assert_array_equal(
        two["pathology_patch_importance"], np.repeat(two["pathology_importance"], 2)
    )
    np.testing.assert_array_equal(
        two["pathology_patch_coords"], np.repeat(two["pathology_pos"], 2, axis=0)
    )


def test_same_seed_same_result_on_cpu(trained, tiny, tmp_path):
    config, _ = trained
    other = _config(tiny, tmp_path)
    _run(other)
    for name in ("predictions.csv",):
        assert (config.model_dir / "fold_0" / name).read_bytes() == (
            other.model_dir / "fold_0" / name
        ).read_bytes()
    a = np.load(config.model_dir / "fold_0" / "embeddings.npz")["x"]
    b = np.load(other.model_dir / "fold_0" / "embeddings.npz")["x"]
    np.testing.assert_array_equal(a, b)
    log_a = pd.read_csv(config.model_dir / "fold_0" / "train_log.csv").drop(columns="seconds")
    log_b = pd.read_csv(other.model_dir / "fold_0" / "train_log.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(log_a, log_b)


def test_finished_fold_is_skipped_and_other_settings_are_refused(trained, tiny):
    config, (first,) = trained
    summary = config.model_dir / "fold_0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    (again,) = _run(config)
    assert again.skipped and again.metrics == first.metrics
    assert summary.stat().st_mtime_ns == stamp
    changed = _config(tiny, config.out_dir, lr=1e-2)
    with pytest.raises(FoldConflictError, match="other settings"):
        _run(changed)


@pytest.mark.filterwarnings("ignore:.*subjects dropped")
def test_checkpoint_rebuilds_the_model(trained, tiny):
    config, _ = trained
    fold_dir = config.model_dir / "fold_0"
    model = load_fold_model(fold_dir / "checkpoint.pt")
    cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, MODALITIES)
    table = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    preds = predict(model, cohort.select(table.subject_id.tolist()), 5, torch.device("cpu"))
    np.testing.assert_allclose(preds.prediction, table.risk, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore:.*subjects dropped")
def test_node_scaling_comes_from_the_training_nodes_only(trained, tiny):
    """The model standardises with the float64 mean/std of the fold's training nodes."""
    config, _ = trained
    cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, MODALITIES)
    train = cohort.select(read_json(config.splits_path)["folds"][0]["train"])
    model = load_fold_model(config.model_dir / "fold_0" / "checkpoint.pt")
    for modality in MODALITIES:
        x = np.concatenate(
            [r.graphs[modality].x.double().numpy() for r in train if modality in r.graphs]
        )
        np.testing.assert_allclose(
            getattr(model, f"node_mean_{modality}"), x.mean(0), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(getattr(model, f"node_std_{modality}"), x.std(0), rtol=1e-5)
    everyone = node_scaling(list(cohort.records.values()), MODALITIES)
    assert not torch.allclose(everyone["pathology"][0], model.node_mean_pathology)


def test_model_scaling_equals_standardised_input(tiny):
    """set_node_scaling on raw graphs gives what the unscaled model gives on z-scored graphs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, ["pathology"])
    records = list(cohort.records.values())[:10]
    shifted = [
        SubjectRecord(
            r.subject_id,
            r.patient_id,
            r.time,
            r.event,
            None,
            {"pathology": r.graphs["pathology"].clone()},
        )
        for r in records
    ]
    for r in shifted:
        r.graphs["pathology"].x = r.graphs["pathology"].x * 1000.0 + 50.0
    scaling = node_scaling(shifted, ["pathology"])
    mean, std = scaling["pathology"]
    z = [
        SubjectRecord(
            r.subject_id,
            r.patient_id,
            r.time,
            r.event,
            None,
            {"pathology": r.graphs["pathology"].clone()},
        )
        for r in shifted
    ]
    for r in z:
        r.graphs["pathology"].x = (r.graphs["pathology"].x - mean) / std
    torch.manual_seed(0)
    plain = build_aggregator("mean", cohort.in_dims).eval()
    scaled = build_aggregator("mean", cohort.in_dims).eval()
    scaled.load_state_dict(plain.state_dict())
    scaled.set_node_scaling(scaling)
    a = predict(plain, z, 4, torch.device("cpu")).prediction
    b = predict(scaled, shifted, 4, torch.device("cpu")).prediction
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(a, predict(plain, shifted, 4, torch.device("cpu")).prediction)
    with pytest.raises(ValueError, match="std must be > 0"):
        scaled.set_node_scaling({"pathology": (mean, torch.zeros_like(std))})


@pytest.mark.filterwarnings("ignore:.*subjects dropped")
def test_all_censored_batches_are_counted_and_give_zero_loss(tiny):
    """Cox loss of a batch without an event is 0; the log counts such batches."""
    cohort = load_graph_cohort(tiny.graphs_dir, tiny.manifest, ["pathology"])
    censored = [
        SubjectRecord(r.subject_id, r.patient_id, r.time, 0, None, r.graphs)
        for r in cohort.records.values()
    ]
    config = TrainConfig(
        graphs_dir=".", manifest=".", out_dir=".", aggregator="mean", epochs=2, batch_size=8
    )
    model = build_aggregator("mean", cohort.in_dims)
    log = fit(
        model,
        censored,
        config,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    batches = math.ceil(len(censored) / 8)
    assert [row["batches_no_event"] for row in log] == [batches, batches]
    assert all(row["task_loss"] == 0.0 for row in log)


def test_classification(tiny, tmp_path):
    """A label column trains a classifier: logits per class, accuracy in the summary."""
    table = pd.read_csv(tiny.manifest, dtype=str)
    table["label"] = np.where(table.true_risk.astype(float) > 2.4, "high", "low")
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    config = _config(
        tiny,
        tmp_path / "out",
        manifest=manifest,
        task="classification",
        aggregator="abmil",
        aggregator_options={"n_h": 8, "attention_dim": 8},
    )
    (result,) = _run(config)
    predictions = pd.read_csv(
        config.model_dir / "fold_0" / "predictions.csv", dtype={"subject_id": str}
    )
    assert {"label", "logit_0", "logit_1"} <= set(predictions.columns)
    labels = dict(zip(table.subject_id, table.label))
    classes = ("high", "low")
    assert all(classes[k] == labels[s] for s, k in zip(predictions.subject_id, predictions.label))
    test = predictions[predictions.split == "test"]
    accuracy = np.mean(test[["logit_0", "logit_1"]].to_numpy().argmax(axis=1) == test.label)
    assert result.metrics["accuracy_test"] == pytest.approx(accuracy)
    folds = read_json(config.splits_path)["folds"]
    assert len(folds) == 3


@pytest.mark.parametrize("scores, chosen", [((3.0, 1.0, 2.0), 1), ((1.0, 3.0, 2.0), 0)])
def test_restarts_are_chosen_on_held_out_training_subjects(
    tiny, tmp_path, monkeypatch, scores, chosen
):
    """Each restart is scored on a fifth of the training patients, never on a test subject; the
    lowest score wins, and the kept model is that initialisation retrained on the whole
    training fold (restart 0 retrained is exactly the single run)."""
    from radiograph.train import trainer

    scored_ids: list[list[str]] = []

    def fake_selection_loss(model, records, config, device):
        scored_ids.append([r.subject_id for r in records])
        return scores[len(scored_ids) - 1]

    monkeypatch.setattr(trainer, "selection_loss", fake_selection_loss)
    config = _config(tiny, tmp_path / "restarts", restarts=3)
    (result,) = _run(config)
    fold_dir = config.model_dir / "fold_0"
    split = read_json(config.splits_path)["folds"][0]
    patients = dict(
        zip(*pd.read_csv(tiny.manifest, dtype=str)[["subject_id", "patient_id"]].to_numpy().T)
    )
    assert len(scored_ids) == 3 and all(ids == scored_ids[0] for ids in scored_ids)
    held_out = set(scored_ids[0])
    train_ids = set(split["train"]) & set(
        pd.read_csv(fold_dir / "predictions.csv", dtype=str).query("split == 'train'")["subject_id"]
    )
    assert held_out < train_ids and not held_out & set(split["test"])
    assert 0.1 <= len(held_out) / len(train_ids) <= 0.3
    fitted = train_ids - held_out
    assert not {patients[s] for s in held_out} & {patients[s] for s in fitted}

    summary = read_json(fold_dir / "summary.json")
    assert [r["inner_val_loss"] for r in summary["restarts"]] == list(scores)
    assert summary["chosen_restart"] == chosen
    assert summary["restarts"][chosen]["seed"] == fold_seed(config.seed, 0, chosen)
    log = pd.read_csv(fold_dir / "train_log.csv")
    assert log.run.tolist() == ["selection"] * 6 + ["final"] * 2
    assert log.restart.tolist() == [0, 0, 1, 1, 2, 2, chosen, chosen]
    if chosen == 0:
        single = _config(tiny, tmp_path / "single")
        (alone,) = _run(single)
        single_log = pd.read_csv(single.model_dir / "fold_0" / "train_log.csv")
        final = log[log.run == "final"].drop(columns=["run", "restart", "seconds"])
        pd.testing.assert_frame_equal(
            final.reset_index(drop=True), single_log.drop(columns=["run", "restart", "seconds"])
        )
        assert result.metrics == alone.metrics
