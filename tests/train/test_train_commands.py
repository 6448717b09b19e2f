"""``radiograph train`` and ``radiograph look-inside`` through their argparse commands."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from radiograph.train import commands
from radiograph.train.look_inside import pick_extremes


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radiograph")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return args.func(args)


@pytest.fixture(scope="module")
def config_path(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "train.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "graphs_dir": str(tiny.graphs_dir),
                "manifest": str(tiny.manifest),
                "out_dir": "out",
                "modalities": ["radiology", "pathology"],
                "aggregator": "sparra",
                "aggregator_options": {"n_e": 16, "n_h": 8, "attention_dim": 8},
                "epochs": 1,
                "batch_size": 8,
                "folds": 3,
                "run_folds": [1],
            }
        )
    )
    return path


def test_train_command(config_path, capsys):
    assert _main(["train", "--config", str(config_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "c_index_test" in out
    fold_dir = config_path.parent / "out" / "sparra" / "radiology+pathology" / "fold_1"
    assert (fold_dir / "summary.json").exists()


def test_look_inside_command(config_path, capsys, tiny):
    assert _main(["train", "--config", str(config_path), "--no-progress"]) == 0
    fold_dir = config_path.parent / "out" / "sparra" / "radiology+pathology" / "fold_1"
    capsys.readouterr()
    assert _main(["look-inside", "--config", str(config_path), "--fold", "1", "--n", "1"]) == 0
    written = capsys.readouterr().out.split()
    predictions = pd.read_csv(fold_dir / "predictions.csv", dtype={"subject_id": str})
    test = predictions[predictions.split == "test"]
    top = test.subject_id[test.risk.idxmax()]
    bottom = test.subject_id[test.risk.idxmin()]
    expected = {f"top1_{top}_pathology.png", f"bottom1_{bottom}_pathology.png"}
    for rank, sid in (("top1", top), ("bottom1", bottom)):
        if sid not in tiny.no_radiology:
            expected.add(f"{rank}_{sid}_radiology.png")
    assert {p.rsplit("/", 1)[-1] for p in written} == expected
    for path in written:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_config_is_reported(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("graphs_dir: g\nmanifest: m.csv\nout_dir: o\nepoch: 3\n")
    assert _main(["train", "--config", str(path)]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err


def test_pick_extremes_orders_test_subjects_by_risk():
    table = pd.DataFrame(
        {
            "subject_id": list("abcdef"),
            "split": ["test", "train", "test", "test", "test", "train"],
            "risk": [0.3, 9.0, -1.0, 2.0, 0.0, -9.0],
        }
    )
    picks = pick_extremes(table, n=2)
    assert [(p.rank, p.subject_id) for p in picks] == [
        ("top1", "d"),
        ("top2", "a"),
        ("bottom1", "c"),
        ("bottom2", "e"),
    ]
    logits = pd.DataFrame(
        {
            "subject_id": ["x", "y"],
            "split": ["test", "test"],
            "logit_0": [2.0, 0.0],
            "logit_1": [0.0, 1.0],
        }
    )
    assert [p.subject_id for p in pick_extremes(logits)] == ["y", "x"]
    assert np.isclose(pick_extremes(logits)[0].risk, 1.0)


def test_look_inside_draws_over_the_slide_thumbnail(config_path, tiny, tmp_path):
    """With a slide in the manifest, the thumbnail's colour fills the picture's background."""
    import matplotlib.image

    from radiograph.pathology.slide import write_pyramidal_tiff
    from radiograph.train.look_inside import look_inside

    assert _main(["train", "--config", str(config_path), "--no-progress"]) == 0
    pink = np.zeros((2048, 2048, 3), dtype=np.uint8) + np.array([230, 150, 200], dtype=np.uint8)
    slide = write_pyramidal_tiff(tmp_path / "slide.tiff", pink, mpp=0.5)
    table = pd.read_csv(tiny.manifest, dtype=str)
    table["slide_paths"] = str(slide)
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)
    fold_dir = config_path.parent / "out" / "sparra" / "radiology+pathology" / "fold_1"
    written = look_inside(fold_dir, tiny.graphs_dir, manifest, tmp_path / "plots")
    pathology = [p for p in written if p.name.endswith("_pathology.png")]
    assert len(pathology) == 2
    for path in pathology:
        image = matplotlib.image.imread(path)[..., :3]
        is_pink = np.all(np.abs(image - np.array([230, 150, 200]) / 255) < 0.02, axis=-1)
        assert is_pink.mean() > 0.3
