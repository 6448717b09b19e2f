"""Bad rows of the signature study's manifest are per-subject errors: the subject is named
(line and field) in ``problems.csv`` and ``excluded_subjects.csv``, the rest of the cohort
goes on, and the run ends with SubjectsFailedError (exit status 1 of ``radiograph study``)
only when more subjects failed than ``allow_failures`` allows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from radiograph.signature.study import load_config, run_signature_study
from radiograph.study import SubjectsFailedError
from radiograph.synth.signature_cohort import SignatureSynthParams, make_signature_cohort

CONFIG = Path(__file__).parents[2] / "experiments" / "configs" / "signature_benefit.yaml"
SMALL = SignatureSynthParams(centres=(("ZS", 150), ("TJ", 50), ("SZ", 40)))


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A small cohort with RFS after OS in one row, chemo = 2 in another, and a subject whose
    feature file is missing; returns the manifest and each bad subject's CSV line."""
    root = tmp_path_factory.mktemp("broken")
    manifest = make_signature_cohort(root, 0, SMALL)
    table = pd.read_csv(manifest)
    bad = {"rfs": table.index[5], "chemo": table.index[7], "features": table.index[9]}
    table.loc[bad["rfs"], "rfs_time"] = table.loc[bad["rfs"], "os_time"] + 5.0
    table.loc[bad["chemo"], "chemo"] = 2
    table.to_csv(manifest, index=False)
    missing = table.loc[bad["features"], "subject_id"]
    (root / "features" / "pathology" / missing / f"{missing}.h5").unlink()
    return manifest, {table.loc[i, "subject_id"]: i + 2 for i in bad.values()}


def _run(manifest: Path, out: Path, allow: int) -> Path:
    config = load_config(
        CONFIG,
        manifest=manifest,
        features_dir=manifest.parent,
        out=out,
        n_boot=10,
        risk_maps=1,
        allow_failures=allow,
    )
    run_signature_study(config)
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_bad_rows_are_named_and_the_rest_of_the_cohort_goes_on(broken, tmp_path: Path) -> None:
    manifest, lines = broken
    with pytest.raises(SubjectsFailedError) as info:
        _run(manifest, tmp_path / "strict", allow=2)
    excluded = info.value.excluded
    assert set(excluded["subject_id"]) == set(lines)
    by_subject = excluded.set_index("subject_id")
    rfs_subject, chemo_subject, features_subject = lines
    assert by_subject.loc[rfs_subject, "stage"] == "manifest"
    assert f"rfs_time: line {lines[rfs_subject]}:" in by_subject.loc[rfs_subject, "error"]
    assert "after os_time" in by_subject.loc[rfs_subject, "error"]
    assert by_subject.loc[chemo_subject, "stage"] == "treatment"
    assert (
        f"chemo: line {lines[chemo_subject]}: must be 0 or 1"
        in by_subject.loc[chemo_subject, "error"]
    )
    assert by_subject.loc[features_subject, "stage"] == "features"
    out = tmp_path / "strict"
    written = pd.read_csv(out / "excluded_subjects.csv")
    assert set(written["subject_id"]) == set(lines)
    concordance = pd.read_csv(out / "os" / "concordance.csv")
    assert concordance.groupby("cohort")["n"].first().sum() == sum(n for _, n in SMALL.centres) - 2
    report = (out / "report.md").read_text()
    assert all(s in report for s in lines)
    assert "3 of 240 subjects left out" in str(info.value)
