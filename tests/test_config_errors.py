"""A study config's mistakes stop ``radiograph study`` before any work: exit status 2, the key
or file named, in seconds.

Two layers, both run by the command: the config is checked whole when read
(:mod:`radiograph.study_config`: keys, types, values, milliseconds) and the preflight checks
what needs the registries, the files and the machine (:mod:`radiograph.preflight`). Every case
goes through ``radiograph.cli.main(["study", CONFIG])`` without ``--check``, so a check that
let its mistake through would start the study (and the case would fail on its exit status).

The 5-second bound times the checks, not Python's first import of torch, timm and
scikit-survival, which ``warm_imports`` pays once per module (a fresh process pays it too:
``benchmarks/cli.py`` measures that).
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from radiograph.cli import main
from radiograph.pathology.config import TissueParams
from radiograph.pathology.slide import write_pyramidal_tiff
from radiograph.preflight import DISK_SAMPLE, feature_bytes, preflight
from radiograph.study_config import ConfigError, load_study_config

#: A valid study: radiology with pyradiomics only, so that the preflight builds no encoder.
BASE: dict[str, Any] = {
    "out_dir": "out",
    "cohort": {"synthetic": {"subjects": 8, "seed": 0}},
    "pathology": {"encoder": "efficientnet-lite0"},
    "radiology": {"features": "pyradiomics"},
    "training": {"folds": 2, "epochs": 1, "batch_size": 4},
    "aggregators": ["mean", "sparra"],
    "modality_sets": [["radiology"]],
    "baselines": {"models": ["coxph", "fsvm"], "inner_folds": 2},
    "report": {"km_model": "coxph"},
}
PATHOLOGY = {"modality_sets": [["pathology"]]}

Overrides = dict[str, Any] | Callable[[Path], dict[str, Any]]


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Import what the preflight imports, once, before any case is timed."""
    import radiograph.classify  # noqa: F401
    import radiograph.encoders  # noqa: F401
    import radiograph.encoders.vit3d  # noqa: F401
    import radiograph.survival  # noqa: F401
    import radiograph.train.trainer  # noqa: F401


class Whole(dict):
    """An override that replaces the base's mapping instead of being merged into it."""


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, mapping by mapping (plain dicts, for YAML)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Whole):
            out[key] = dict(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def run_study(tmp_path: Path, overrides: Overrides, capsys) -> tuple[int, str, float]:
    """Write BASE + overrides, run ``radiograph study`` on it; (status, stderr, seconds)."""
    if callable(overrides):
        overrides = overrides(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(merged(BASE, overrides)))
    capsys.readouterr()
    start = time.perf_counter()
    status = main(["study", str(path), "--no-progress"])
    return status, capsys.readouterr().err, time.perf_counter() - start


LOAD_CASES = [
    (
        "top-level typo",
        {"trainig": {"epochs": 2}},
        ["unknown key 'trainig'", "did you mean 'training'", "allowed at the top level"],
    ),
    ("training typo", {"training": {"epocs": 2}}, ["'training.epocs'", "did you mean 'epochs'"]),
    (
        "training wrong type",
        {"training": {"epochs": "twenty"}},
        ["'training.epochs'", "must be an integer", "'twenty'"],
    ),
    (
        "training float for int",
        {"training": {"batch_size": 4.5}},
        ["'training.batch_size'", "must be an integer"],
    ),
    (
        "training text for a number",
        {"training": {"lr": "fast"}},
        ["'training.lr'", "must be a number", "'fast'"],
    ),
    (
        "training range (TrainConfig's own check)",
        {"training": {"dropout": 1.5}},
        ["'training.dropout'", "[0, 1)"],
    ),
    (
        "training key the study sets",
        {"training": {"aggregator": "sparra"}},
        ["'training.aggregator'", "set by the study", "'aggregators'"],
    ),
    (
        "nested tissue typo",
        {"pathology": {"tissue": {"min_saturaton": 0.1}}},
        ["'pathology.tissue.min_saturaton'", "did you mean 'min_saturation'"],
    ),
    (
        "nested tissue wrong type",
        {"pathology": {"tissue": {"median_size": "big"}}},
        ["'pathology.tissue.median_size'", "must be an integer"],
    ),
    (
        "pathology typo",
        {"pathology": {"patch_sise": 256}},
        ["'pathology.patch_sise'", "did you mean 'patch_size'"],
    ),
    (
        "pathology range",
        {"pathology": {"min_tissue": 2.0}},
        ["'pathology'", "min_tissue must be in [0, 1]"],
    ),
    (
        "radiology typo",
        {"radiology": {"unit_size": 8}},
        ["'radiology.unit_size'", "did you mean 'unit_size_mm'"],
    ),
    (
        "radiology choice",
        {"radiology": {"units": "grids"}},
        ["'radiology'", "units must be one of"],
    ),
    (
        "graphs method typo",
        {"graphs": {"method": "slidgraph"}},
        ["'graphs.method'", "did you mean 'slidegraph'"],
    ),
    (
        "graphs parameter typo",
        {"graphs": {"pathology": {"lamda_d": 1.0}}},
        ["'graphs.pathology.lamda_d'", "did you mean 'lambda_d'"],
    ),
    (
        "baselines typo",
        {"baselines": {"screnning": True}},
        ["'baselines.screnning'", "did you mean 'screening'"],
    ),
    (
        "baselines wrong type",
        {"baselines": {"screening": "yes"}},
        ["'baselines.screening'", "true or false"],
    ),
    (
        "grid of a model not listed",
        {"baselines": {"grids": {"cxoph": {"alpha": [1.0]}}}},
        ["'baselines.grids.cxoph'", "did you mean 'coxph'"],
    ),
    (
        "classification baselines",
        {"training": {"task": "classification"}, "baselines": {"screening": True}},
        ["'baselines.screening'", "allowed under 'baselines': models, inner_folds"],
    ),
    (
        "report typo",
        {"report": {"riskrule": "mean"}},
        ["'report.riskrule'", "did you mean 'risk_rule'"],
    ),
    (
        "report value",
        {"report": {"risk_rule": "meen"}},
        ["'report.risk_rule'", "mean, median, optimal", "did you mean 'mean'"],
    ),
    (
        "report model not among the baselines",
        {"report": {"km_model": "rsf"}},
        ["'report.km_model'", "coxph, fsvm"],
    ),
    (
        "aggregator typo",
        {"aggregators": ["mean", "spara"]},
        ["'aggregators'", "did you mean 'sparra'"],
    ),
    (
        "modality typo",
        {"modality_sets": [["patholgy"]]},
        ["'modality_sets[0]'", "did you mean 'pathology'"],
    ),
    (
        "cohort typo",
        {"cohort": {"synthetic": {"subject": 8}}},
        ["'cohort.synthetic.subject'", "did you mean 'subjects'"],
    ),
    (
        "synthetic signal",
        {"cohort": {"synthetic": {"subjects": 8, "signal": "size"}}},
        ["'cohort.synthetic'", "abundance, focal"],
    ),
    ("kind typo", {"kind": "radiopathomic"}, ["'kind'", "did you mean 'radiopathomics'"]),
    ("seeds", {"training": {"seeds": [0, 0]}}, ["'training.seeds'", "distinct"]),
]


@pytest.mark.parametrize(
    "overrides, expected", [case[1:] for case in LOAD_CASES], ids=[case[0] for case in LOAD_CASES]
)
def test_config_mistakes_stop_the_study_naming_the_key(tmp_path, capsys, overrides, expected):
    status, err, seconds = run_study(tmp_path, overrides, capsys)
    assert status == 2, err
    assert str(tmp_path / "study.yaml") in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert seconds < 5.0
    assert not (tmp_path / "out").exists()


def test_every_problem_of_a_file_is_listed_at_once(tmp_path, capsys):
    overrides = {
        "trainig": {},
        "training": {"lr": "fast"},
        "pathology": {"tissue": {"median_size": "big"}},
        "report": {"level": 2.0},
    }
    status, err, _ = run_study(tmp_path, overrides, capsys)
    assert status == 2
    assert "4 problems" in err
    for key in ("'trainig'", "'training.lr'", "'pathology.tissue.median_size'", "'report'"):
        assert key in err


def test_unreadable_configs_are_named(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text("out_dir: [\n")
    assert main(["study", str(path)]) == 2
    assert f"{path}: not valid YAML" in capsys.readouterr().err
    missing = tmp_path / "nowhere.yaml"
    assert main(["study", str(missing)]) == 2
    assert f"{missing}: cannot read the study config" in capsys.readouterr().err


def test_numbers_written_like_3e_4_are_numbers_everywhere(tmp_path):
    """PyYAML reads ``3e-4`` (no dot) as text; every float setting takes it as the number."""
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent("""\
        out_dir: out
        cohort: {synthetic: {subjects: 8, slide_mpp: 5e-1}}
        pathology: {target_mpp: 5e-1, tissue: {min_saturation: 5e-2, min_region_um2: 1e4}}
        radiology: {unit_size_mm: 8e0, spacing_mm: 1e0}
        graphs: {pathology: {lambda_d: 2e-3}}
        training: {lr: 3e-4, weight_decay: 1e-5}
        baselines: {screening_p: 2e-1}
        report: {level: 9e-1}
        """)
    )
    assert yaml.safe_load(path.read_text())["training"]["lr"] == "3e-4"  # the YAML 1.1 quirk
    config = load_study_config(path)
    values = [
        config.cohort["synthetic"]["slide_mpp"],
        config.pathology["target_mpp"],
        config.radiology["unit_size_mm"],
        config.radiology["spacing_mm"],
        config.graphs["pathology"]["lambda_d"],
        config.training["lr"],
        config.training["weight_decay"],
        config.baselines["screening_p"],
        config.report["level"],
    ]
    assert values == [0.5, 0.5, 8.0, 1.0, 2e-3, 3e-4, 1e-5, 0.2, 0.9]
    assert all(type(v) is float for v in values)
    assert config.pathology["tissue"] == TissueParams(min_saturation=0.05, min_region_um2=1e4)
    train = config.train_config("sparra", ("pathology",), 0)
    assert (train.lr, train.weight_decay) == (3e-4, 1e-5)


def test_saved_config_reads_back_to_the_same_config(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(
            merged(
                BASE,
                {
                    "pathology": {"tissue": {"median_size": 3}, "weights": "w.bin"},
                    "training": {"seeds": [0, 1]},
                    "allow_failures": 0.25,
                },
            )
        )
    )
    config = load_study_config(path)
    copy = tmp_path / "copy" / "study.yaml"
    copy.parent.mkdir()
    copy.write_text(yaml.safe_dump(config.to_dict()))
    again = load_study_config(copy)
    assert again == type(config)(**{**config.__dict__, "source": copy})
    assert config.pathology["weights"] == str(tmp_path / "w.bin")


def _weights(tmp_path: Path, content: Any) -> dict[str, Any]:
    path = tmp_path / "weights.pt"
    if isinstance(content, str):
        path.write_text(content)
    else:
        torch.save(content, path)
    return {**PATHOLOGY, "pathology": {"encoder": "timm:resnet18", "weights": str(path)}}


def _file_in_the_way(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "a_file").write_text("not a folder")
    return {"out_dir": str(tmp_path / "a_file" / "out")}


PREFLIGHT_CASES = [
    (
        "weights file missing",
        {**PATHOLOGY, "pathology": {"encoder": "timm:resnet18", "weights": "/no/such/weights.pt"}},
        ["'pathology.weights'", "/no/such/weights.pt", "not found"],
    ),
    (
        "weights of another architecture",
        lambda tmp: _weights(tmp, {"conv1.weight": torch.zeros(8, 3, 3, 3)}),
        ["'pathology.encoder'", "weights.pt", "does not fit the architecture", "shape mismatches"],
    ),
    (
        "weights not a checkpoint",
        lambda tmp: _weights(tmp, "not a checkpoint"),
        ["'pathology.encoder'", "weights.pt", "not a readable checkpoint"],
    ),
    (
        "encoder name typo",
        {**PATHOLOGY, "pathology": {"encoder": "efficientnet-lite"}},
        ["'pathology.encoder'", "did you mean 'efficientnet-lite0'"],
    ),
    (
        "radiology encoder without weights",
        {"radiology": {"features": "segvol-vit"}},
        ["'radiology.features'", "needs weights"],
    ),
    ("output under a file", _file_in_the_way, ["out_dir", "a_file", "not a folder"]),
    (
        "manifest missing",
        {"cohort": Whole(manifest="nope.csv")},
        ["'cohort.manifest'", "nope.csv", "not found"],
    ),
    ("device name", {"training": {"device": "gpu"}}, ["'training.device'", "not a device name"]),
    (
        "aggregator option typo",
        {"aggregator_options": {"sparra": {"pool_ration": 0.2}}},
        ["'aggregator_options.sparra.pool_ration'", "did you mean 'pool_ratio'"],
    ),
    (
        "aggregator option value",
        {"aggregator_options": {"sparra": {"conv": "gat"}}},
        ["'aggregator_options.sparra'"],
    ),
    (
        "baseline name typo",
        {"baselines": {"models": ["coxph", "fsvn"]}},
        ["'baselines.models'", "did you mean 'fsvm'"],
    ),
    (
        "baseline parameter",
        {"baselines": {"model_params": {"coxph": {"alhpa": 1.0}}}},
        ["'baselines.model_params.coxph'", "alhpa"],
    ),
    (
        "baseline grid parameter",
        {"baselines": {"grids": {"coxph": {"alpa": [1.0]}}}},
        ["'baselines.grids.coxph.alpa'", "did you mean 'alpha'"],
    ),
]


@pytest.mark.parametrize(
    "overrides, expected",
    [case[1:] for case in PREFLIGHT_CASES],
    ids=[case[0] for case in PREFLIGHT_CASES],
)
def test_preflight_stops_the_study_naming_the_key_or_file(tmp_path, capsys, overrides, expected):
    status, err, seconds = run_study(tmp_path, overrides, capsys)
    assert status == 2, err
    assert "preflight: 1 problem(s)" in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert seconds < 5.0
    assert not (tmp_path / "out" / "cohort").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_named(tmp_path, capsys):
    status, err, seconds = run_study(tmp_path, {"training": {"device": "cuda"}}, capsys)
    assert status == 2
    assert "key 'training.device': device 'cuda': CUDA is not available" in err
    assert seconds < 5.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_fp16_without_cuda_is_named(tmp_path, capsys):
    status, err, _ = run_study(tmp_path, {"training": {"precision": "fp16"}}, capsys)
    assert status == 2
    assert "key 'training.precision': precision 'fp16' needs a CUDA device" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_named(tmp_path, capsys):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        status, err, _ = run_study(tmp_path, {"out_dir": str(folder / "out")}, capsys)
    finally:
        folder.chmod(0o700)
    assert status == 2 and f"out_dir {folder / 'out'}: cannot write in {folder}" in err


def test_preflight_lists_every_problem(tmp_path, capsys):
    overrides = {
        **PATHOLOGY,
        "pathology": {"encoder": "uni", "weights": "/no/uni.bin"},
        "training": {"device": "gpu"},
        "cohort": Whole(manifest="nope.csv"),
    }
    status, err, _ = run_study(tmp_path, overrides, capsys)
    assert status == 2 and "preflight: 3 problem(s)" in err
    for key in ("'pathology.weights'", "'training.device'", "'cohort.manifest'"):
        assert key in err


def _half_tissue_slide(path: Path, width: int, height: int, mpp: float) -> None:
    """Tissue (pink) on the left half, glass (light grey) on the right."""
    rgb = np.full((height, width, 3), 240, dtype=np.uint8)
    rgb[:, : width // 2] = (225, 130, 180)
    write_pyramidal_tiff(path, rgb, mpp=mpp)


def _manifest(tmp_path: Path, slides: int) -> Path:
    rows = ["subject_id,patient_id,centre,time,time_unit,event,slide_paths"]
    for i in range(slides):
        _half_tissue_slide(tmp_path / f"s{i}.tiff", 2240, 1120, 0.5)
        rows.append(f"S{i},P{i},A,{100 + i},days,{i % 2},s{i}.tiff")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_feature_estimate_recovers_a_planted_tissue_fraction(tmp_path):
    """Slides of 2240 x 1120 px at 0.5 um/px hold a grid of 10 x 5 patches of 224 px; half
    of each is tissue, so 25 patches per slide are expected, each row 4 * 1280 bytes of
    float32 features and 16 of coordinates."""
    manifest_path = _manifest(tmp_path, slides=DISK_SAMPLE + 2)
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(merged(BASE, {**PATHOLOGY, "cohort": Whole(manifest="manifest.csv")}))
    )
    config = load_study_config(path)
    from radiograph.manifest import load_manifest

    estimate = feature_bytes(config, load_manifest(manifest_path), "pathology", 1280)
    expected = (DISK_SAMPLE + 2) * 25 * (4 * 1280 + 16)
    assert estimate == pytest.approx(expected, rel=0.05)


def test_too_little_disk_for_the_features_is_a_problem(tmp_path, monkeypatch):
    _manifest(tmp_path, slides=2)
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump(merged(BASE, {**PATHOLOGY, "cohort": Whole(manifest="manifest.csv")}))
    )
    config = load_study_config(path)
    report = preflight(config)
    assert report.ok, report.format()
    assert any(
        note.startswith("disk: features about 251 KB (0 B written)") for note in report.notes
    ), report.notes  # 2 x 25 x 5136 bytes

    class Usage:
        free = 100 * 1024

    monkeypatch.setattr("radiograph.preflight.shutil.disk_usage", lambda _: Usage)
    report = preflight(config)
    assert report.problems == (
        f"out_dir {config.out_dir}: the feature files need about "
        "251 KB more but only 100 KB is free",
    )


def test_report_needs_a_study_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path / 'study.yaml'} not found" in capsys.readouterr().err


def test_config_error_is_one_class():
    with pytest.raises(ConfigError):
        load_study_config(Path("/no/such/study.yaml"))


def test_the_example_script_is_the_command(tmp_path, capsys):
    """``experiments/radiopathomics.py --config PATH`` runs ``radiograph study PATH``."""
    spec = importlib.util.spec_from_file_location(
        "radiopathomics_example",
        Path(__file__).resolve().parents[1] / "experiments" / "radiopathomics.py",
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert example.main(["--config", str(path), "--check"]) == 0
    assert "preflight: ready" in capsys.readouterr().out
    path.write_text(yaml.safe_dump(merged(BASE, {"trainig": {}})))
    assert example.main(["--config", str(path), "--check"]) == 2
    assert "unknown key 'trainig'" in capsys.readouterr().err


def test_the_config_kind_picks_the_study(tmp_path, monkeypatch, capsys):
    """``kind: signature`` goes to the signature study's reader, preflight (its manifest is not
    generated here, so it fails naming it) and runner (preflight and runner stubbed here)."""
    from radiograph.preflight import PreflightReport

    config = Path(__file__).resolve().parents[1] / "experiments/configs/signature_benefit.yaml"
    assert main(["study", str(config), "--check"]) == 2
    assert "signature_synth/manifest.csv" in capsys.readouterr().err
    monkeypatch.setattr(
        "radiograph.signature.study.preflight", lambda study: PreflightReport((), (), 0.0)
    )
    ran = []
    monkeypatch.setattr(
        "radiograph.study_commands.run_signature",
        lambda study, options: ran.append((study.out, options.progress)),
    )
    assert main(["study", str(config), "--out", str(tmp_path / "sig"), "--no-progress"]) == 0
    assert ran == [(tmp_path / "sig", False)]
