"""``radiograph build-graphs`` over a small cohort of feature files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from radiograph.graph import graph_stats
from radiograph.graph.commands import register, subject_graph
from radiograph.graph.params import grid_step, step_params
from radiograph.io.atomic import read_json
from radiograph.io.features import FeatureSet, write_features
from radiograph.io.graphs import load_graph

PATCH = 224.0  # level-0 pixels


def slide_features(seed: int, n_side: int, origin=(0.0, 0.0)) -> FeatureSet:
    rng = np.random.default_rng(seed)
    cells = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2)
    coords = np.asarray(origin) + cells * PATCH
    features = np.sin(cells / 3.0) @ rng.normal(size=(2, 16)) * 20 + rng.normal(
        size=(len(cells), 16)
    )
    return FeatureSet(
        features,
        coords,
        {"modality": "pathology", "patch_size_level0": PATCH, "encoder": "test-encoder"},
    )


def volume_features(seed: int) -> FeatureSet:
    rng = np.random.default_rng(seed)
    cells = np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3)
    coords = cells * np.array([4.0, 4.0, 5.0]) + np.array([-60.0, 10.0, 200.0])
    return FeatureSet(rng.normal(size=(len(cells), 8)), coords, {"modality": "radiology"})


@pytest.fixture()
def cohort(tmp_path):
    feats = tmp_path / "features"
    # S1: two slides with overlapping level-0 coordinates; S2: one slide; S3: broken features.
    write_features(feats / "pathology" / "S1" / "slide_a.h5", slide_features(0, 12))
    write_features(
        feats / "pathology" / "S1" / "slide_b.h5", slide_features(1, 9, origin=(448.0, 0.0))
    )
    write_features(feats / "pathology" / "S2" / "slide_c.h5", slide_features(2, 10))
    broken = slide_features(3, 6)
    broken.features[[1, 4]] = np.nan
    write_features(feats / "pathology" / "S3" / "slide_d.h5", broken)
    write_features(feats / "radiology" / "S1.h5", volume_features(4))
    write_features(feats / "radiology" / "S2.h5", volume_features(5))
    return tmp_path


def run_cli(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_build_graphs_command(cohort, capsys):
    out = cohort / "graphs"
    code = run_cli(
        [
            "build-graphs",
            "--features",
            str(cohort / "features"),
            "--out",
            str(out),
            "--workers",
            "1",
        ]
    )
    assert code == 1  # S3 failed, the others were built
    record = read_json(out / "build-graphs.json")
    status = {r["key"]: r["status"] for r in record["results"]}
    assert status == {
        "pathology/S1": "done",
        "pathology/S2": "done",
        "pathology/S3": "failed",
        "radiology/S1": "done",
        "radiology/S2": "done",
    }
    error = next(r["error"] for r in record["results"] if r["key"] == "pathology/S3")
    # read_features names the file (the subject's folder) and counts the rows
    assert "S3/slide_d.h5" in error and "2 of 36 rows with NaN or Inf" in error
    assert "S3" in capsys.readouterr().err

    two_slides = load_graph(out / "pathology" / "S1.pt")
    assert two_slides.subject_id == "S1" and two_slides.modality == "pathology"
    assert two_slides.slide_names == ["slide_a", "slide_b"]
    slide_of_patch = two_slides.slide_of_patch.numpy()
    node = two_slides.node_of_patch.numpy()
    assert not set(node[slide_of_patch == 0]) & set(node[slide_of_patch == 1])
    assert graph_stats(two_slides)["num_components"] >= 2
    # the original coordinates are kept; pos lives in the side-by-side frame
    a, b = slide_features(0, 12).coords, slide_features(1, 9, origin=(448.0, 0.0)).coords
    np.testing.assert_array_equal(two_slides.patch_coords.numpy(), np.vstack([a, b]))
    offsets = two_slides.slide_offsets.numpy()
    params = two_slides.params
    assert offsets[0].tolist() == [0.0, 0.0]
    assert offsets[1, 0] + b[:, 0].min() - a[:, 0].max() == params["slide_gap"]
    assert params["slide_gap"] > params["connectivity_distance"]
    # parameters: modality defaults in grid steps, scaled by the measured step
    assert params["method"] == "slidegraph" and params["grid_step"] == PATCH
    assert params["params_in_grid_steps"] == step_params("pathology", "slidegraph")
    assert np.isclose(params["lambda_d"], 3e-3 * 512 / PATCH)
    assert np.isclose(params["connectivity_distance"], 4000 / 512 * PATCH)
    assert params["feature_files"] == ["slide_a", "slide_b"] and params["encoder"] == "test-encoder"

    volume = load_graph(out / "radiology" / "S2.pt")
    assert volume.pos.shape[1] == 3 and volume.modality == "radiology"
    assert volume.params["grid_step"] == 4.0  # mm between adjacent patch centres
    assert np.isclose(volume.params["connectivity_distance"], 8 * 4.0)

    # a rerun skips what exists and only retries the failure
    code = run_cli(
        [
            "build-graphs",
            "--features",
            str(cohort / "features"),
            "--out",
            str(out),
            "--workers",
            "1",
            "--modality",
            "pathology",
        ]
    )
    assert code == 1
    status = {r["key"]: r["status"] for r in read_json(out / "build-graphs.json")["results"]}
    assert status == {
        "pathology/S1": "skipped",
        "pathology/S2": "skipped",
        "pathology/S3": "failed",
    }


def test_parameters_in_grid_steps_and_method_choice(cohort):
    out = cohort / "graphs"
    code = run_cli(
        [
            "build-graphs",
            "--features",
            str(cohort / "features"),
            "--out",
            str(out),
            "--workers",
            "1",
            "--modality",
            "radiology",
            "--method",
            "knn",
            "--k",
            "6",
        ]
    )
    assert code == 0
    data = load_graph(out / "radiology" / "S1.pt")
    assert data.params["method"] == "knn" and data.params["k"] == 6
    assert data.num_nodes == 125
    degree = np.bincount(data.edge_index[0].numpy())
    assert degree.min() >= 6


def test_parameter_the_method_does_not_take(cohort, capsys):
    code = run_cli(
        [
            "build-graphs",
            "--features",
            str(cohort / "features"),
            "--out",
            str(cohort / "graphs"),
            "--method",
            "radius",
            "--lambda-h",
            "0.5",
        ]
    )
    assert code == 2
    assert "no parameter(s) ['lambda_h']" in capsys.readouterr().err


def test_subject_graph_rejects_mismatched_feature_widths():
    a, b = slide_features(0, 4), slide_features(1, 4)
    b = FeatureSet(b.features[:, :8], b.coords)
    with pytest.raises(
        ValueError, match="subject X: pathology file b has 8 features per patch but a has 16"
    ):
        subject_graph(
            "X",
            "pathology",
            [a, b],
            ["a", "b"],
            "slidegraph",
            step_params("pathology", "slidegraph"),
        )


def test_grid_step_is_the_patch_spacing():
    fs = slide_features(0, 5)
    assert grid_step(fs.coords) == PATCH
    assert grid_step(np.vstack([fs.coords, fs.coords[:3]])) == PATCH  # duplicates ignored
    assert grid_step(np.zeros((1, 2))) == 1.0


def test_writer_temporaries_are_not_taken_for_feature_files(tmp_path):
    """A killed extraction's hidden .tmp-*.h5 file must not become a slide of the subject."""
    from radiograph.graph.commands import graph_tasks

    folder = tmp_path / "features" / "pathology" / "S1"
    folder.mkdir(parents=True)
    (folder / "slide.h5").write_bytes(b"")
    (folder / ".tmp-slide2-0a1b2c.h5").write_bytes(b"half")
    radiology = tmp_path / "features" / "radiology"
    radiology.mkdir(parents=True)
    (radiology / ".tmp-S2-99.h5").write_bytes(b"half")
    tasks = graph_tasks(tmp_path / "features", tmp_path / "graphs", "slidegraph")
    assert [t.key for t in tasks] == ["pathology/S1"]
    assert [Path(p).name for p in tasks[0].payload.feature_paths] == ["slide.h5"]
