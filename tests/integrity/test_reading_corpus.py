"""Strict reading (issue 15, points 1, 2 and 8): a damaged input fails its own subject with a
message naming the subject, the file and what is wrong; nothing is read as zeros.

* Volumes: truncated / corrupt ``.nii.gz`` CT and mask, a truncated ``.nii``, NaN and Inf
  voxels in NIfTI, through the real ``radiograph extract-radiology`` command; the decoder's
  header reading checked against SimpleITK's own reading of intact files; DICOM series with a
  truncated or a missing slice.
* Feature (.h5) and graph (.pt) files: truncated, inconsistent or non-finite content.
* Slides smaller than one patch; geometry messages free of ``np.float64(...)``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch_geometric.data import Data

from radiograph.cli import main
from radiograph.io.features import FeatureSet, read_features, write_features
from radiograph.io.graphs import load_graph, save_graph
from radiograph.radiology.file_checks import nifti_voxel_data, nrrd_voxel_data
from radiograph.radiology.volume import VolumeError, load_volume, read_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "radiology"))
from radiology_synth import ball, planted_habitats, write_image, write_manifest  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::radiograph.encoders.base.RandomWeightsWarning")

SHAPE = (20, 22, 24)


def ct_array(seed: int) -> np.ndarray:
    """float32 (z, y, x) HU-like volume with texture (so gzip cannot squeeze it to nothing)."""
    image, _, _ = planted_habitats(SHAPE, k=3, channels=1, seed=seed)
    return (image[0] * 60 + 20).astype(np.float32)


def tumour() -> np.ndarray:
    return ball(SHAPE, (10, 11, 12), 7).astype(np.uint8)


def truncate(path: Path, fraction: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def flip_crc(path: Path) -> None:
    """Damage the CRC-32 in a gzip trailer: the data decode, the check fails."""
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))


def with_value(value: float):
    def make(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[4, 5, 6] = value
        return array

    return make


# subject -> (CT file name, change of the CT array, damage of the CT file, damage of the mask
# file, words expected in the error besides the subject and the damaged file)
VOLUME_FAULTS = {
    "ct_truncated_gz": ("ct.nii.gz", None, truncate, None, ["gzip", "truncated"]),
    "mask_truncated_gz": ("ct.nii.gz", None, None, truncate, ["gzip", "truncated"]),
    "ct_bad_crc": ("ct.nii.gz", None, flip_crc, None, ["corrupt", "CRC check failed"]),
    "ct_truncated_nii": (
        "ct.nii",
        None,
        truncate,
        None,
        ["of the header's 10560 voxels", "truncated"],
    ),
    "ct_nan_nifti": ("ct.nii.gz", with_value(np.nan), None, None, ["1 NaN"]),
    "ct_inf_nifti": ("ct.nii", with_value(-np.inf), None, None, ["1 infinite"]),
}
GOOD = ("good_1", "good_2")


@pytest.fixture(scope="module")
def radiology_run(tmp_path_factory):
    """One extract-radiology run over two good subjects and one subject per fault."""
    root = tmp_path_factory.mktemp("volumes")
    rows = []
    for i, sid in enumerate([*GOOD, *VOLUME_FAULTS]):
        name, change, damage_ct, damage_mask, _ = VOLUME_FAULTS.get(
            sid, ("ct.nii.gz", None, None, None, [])
        )
        folder = root / "data" / sid
        folder.mkdir(parents=True)
        array = ct_array(i)
        ct = write_image(folder / name, change(array) if change else array)
        mask = write_image(folder / "mask.nii.gz", tumour())
        for damage, path in ((damage_ct, ct), (damage_mask, mask)):
            if damage:
                damage(path)
        rows.append({"subject_id": sid, "volume_paths": str(ct), "mask_path": str(mask)})
    manifest = write_manifest(root, rows)
    out = root / "run"
    status = main(
        [
            "extract-radiology",
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--features",
            "vit3d-tiny",
            "--random-weights",
            "--unit-size",
            "6",
            "--workers",
            "1",
            "--device",
            "cpu",
        ]
    )
    record = json.loads((out / "runs" / "extract-radiology.json").read_text())
    return status, {r["key"]: r for r in record["results"]}, out


def test_damaged_volumes_fail_alone_and_the_run_exits_non_zero(radiology_run):
    status, results, out = radiology_run
    assert status == 1
    assert {k for k, r in results.items() if r["status"] == "done"} == set(GOOD)
    assert {k for k, r in results.items() if r["status"] == "failed"} == set(VOLUME_FAULTS)
    for sid in GOOD:
        assert read_features(out / "features" / "radiology" / f"{sid}.h5").num_patches > 0
    assert not any((out / "features" / "radiology" / f"{sid}.h5").exists() for sid in VOLUME_FAULTS)


@pytest.mark.parametrize("sid", sorted(VOLUME_FAULTS))
def test_damaged_volume_message_names_subject_file_and_fault(radiology_run, sid):
    _, results, _ = radiology_run
    name, _, damage_ct, damage_mask, words = VOLUME_FAULTS[sid]
    damaged = "mask.nii.gz" if damage_mask else name
    error = results[sid]["error"]
    assert f"subject {sid!r}" in error and f"{sid}/{damaged}" in error, error
    assert all(w in error for w in words), error
    assert "\n" not in error


def test_simpleitk_alone_reads_these_faults_as_zeros(tmp_path):
    """The hazard the checks close: ITK's NIfTI reader returns a truncated file and NaN voxels
    as zeros without an error (if this starts failing, ITK got stricter: keep the checks)."""
    array = ct_array(0)
    truncated = write_image(tmp_path / "t.nii.gz", array)
    truncate(truncated)
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(truncated)))
    assert read.shape == array.shape and np.count_nonzero(read == 0) > 0.3 * read.size
    nan = write_image(tmp_path / "nan.nii.gz", with_value(np.nan)(array))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(nan)))[4, 5, 6] == 0.0
    for path in (truncated, nan):
        with pytest.raises(VolumeError):
            read_image(path)


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii", "ct.nrrd", "ct.nhdr", "ct.hdr"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_header_reading_matches_simpleitk_and_every_cut_is_caught(tmp_path, name, dtype):
    """The decoder's voxel count and data offset reproduce SimpleITK's array of an intact file
    (an independent reader); the file cut anywhere in its data fails."""
    array = ct_array(1).astype(dtype)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp_path / name))
    writer.SetUseCompression(name.endswith((".nrrd", ".nhdr")))
    writer.Execute(sitk.GetImageFromArray(array))
    path = tmp_path / name
    data = nrrd_voxel_data(path) if name.endswith(("nrrd", "nhdr")) else nifti_voxel_data(path)
    assert data.voxels == array.size and data.nbytes == array.nbytes
    with open(data.path, "rb") as fh:
        fh.seek(data.start)
        raw = fh.read()
    decoded = gzip.decompress(raw) if data.compression == "gzip" else raw
    voxels = np.frombuffer(decoded[data.skip : data.skip + data.nbytes], dtype=array.dtype)
    np.testing.assert_array_equal(
        voxels.reshape(array.shape), sitk.GetArrayFromImage(read_image(path))
    )

    intact = data.path.read_bytes()
    for fraction in (0.2, 0.5, 0.9, 0.999):
        data.path.write_bytes(intact[: int(len(intact) * fraction)])
        with pytest.raises(VolumeError, match="truncated"):
            read_image(path, subject_id="S1")


# ----------------------------------------------------------------------------- DICOM
def dicom_series(tmp_path: Path) -> Path:
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    source = get_testdata_file("dicomdirtests/98892001/CT5N", read=False)
    if source is None:
        pytest.skip("pydicom's test files lack CT5N")
    folder = tmp_path / "CT5N"
    shutil.copytree(source, folder)
    return folder


def test_dicom_truncated_slice_is_named_not_dropped(tmp_path):
    folder = dicom_series(tmp_path)
    read_image(folder)  # intact: 5 slices
    slice_file = sorted(folder.iterdir())[2]
    slice_file.write_bytes(slice_file.read_bytes()[:-200])
    with pytest.raises(
        VolumeError,
        match=rf"S1.*1 file\(s\) are not part of DICOM series.*"
        rf"{slice_file.name}",
    ):
        read_image(folder, subject_id="S1")


def test_dicom_missing_slice_is_an_error(tmp_path):
    folder = dicom_series(tmp_path)
    sorted(folder.iterdir())[2].unlink()
    with pytest.raises(VolumeError, match=r"not evenly spaced: 5 mm .* 2\.5 mm"):
        read_image(folder, subject_id="S1")


# ----------------------------------------------------------------------------- geometry
def test_geometry_message_shows_plain_numbers(tmp_path):
    ct = write_image(tmp_path / "ct.nii.gz", ct_array(0))
    mask = write_image(tmp_path / "mask.nii.gz", tumour(), spacing=(1.5, 1.5, 1.5))
    with pytest.raises(VolumeError) as info:
        load_volume("S1", [ct], mask)
    assert "spacing (1.5, 1.5, 1.5) vs (1.0, 1.0, 1.0)" in str(info.value)
    assert "np.float64" not in str(info.value)


# ----------------------------------------------------------------------------- feature files
def feature_file(path: Path, rows: int = 6, coords_rows: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("features", data=rng.normal(size=(rows, 4)).astype(np.float32))
        coords = np.arange(2 * (coords_rows or rows)).reshape(-1, 2) * 224.0
        h5.create_dataset("coords", data=coords)
    return path


def test_truncated_feature_file_is_named(tmp_path):
    path = write_features(
        tmp_path / "S1" / "slide.h5", FeatureSet(np.ones((500, 64), np.float32), np.zeros((500, 2)))
    )
    truncate(path, 0.5)
    with pytest.raises(ValueError, match=r"S1/slide\.h5: not a readable HDF5 file"):
        read_features(path)


def test_coords_and_features_mismatch_names_the_file(tmp_path):
    path = feature_file(tmp_path / "mismatch.h5", rows=6, coords_rows=5)
    with pytest.raises(ValueError, match=r"mismatch\.h5: features has 6 rows but coords has 5"):
        read_features(path)


def test_non_finite_coords_are_named_with_the_file_and_row(tmp_path):
    path = feature_file(tmp_path / "inf.h5")
    with h5py.File(path, "r+") as h5:
        h5["coords"][3, 1] = np.inf
    with pytest.raises(
        ValueError,
        match=r"inf\.h5: coords has 1 of 6 rows with NaN or Inf "
        r"\(first at row 3\)",
    ):
        read_features(path)


def test_build_graphs_names_a_truncated_feature_file_and_builds_the_rest(tmp_path):
    features = tmp_path / "features" / "pathology"
    for sid in ("A", "B", "C"):
        grid = np.stack(np.meshgrid(np.arange(5), np.arange(4)), -1).reshape(-1, 2) * 224.0
        write_features(
            features / sid / "slide.h5",
            FeatureSet(np.random.default_rng(0).normal(size=(20, 8)), grid, {"subject_id": sid}),
        )
    truncate(features / "B" / "slide.h5", 0.5)
    out = tmp_path / "graphs"
    status = main(
        [
            "build-graphs",
            "--features",
            str(tmp_path / "features"),
            "--out",
            str(out),
            "--modality",
            "pathology",
            "--workers",
            "1",
        ]
    )
    assert status == 1
    record = json.loads((out / "build-graphs.json").read_text())
    failed = {r["key"]: r["error"] for r in record["results"] if r["status"] == "failed"}
    assert list(failed) == ["pathology/B"]
    assert "B/slide.h5: not a readable HDF5 file" in failed["pathology/B"]
    assert sorted(p.stem for p in (out / "pathology").glob("*.pt")) == ["A", "C"]


# ----------------------------------------------------------------------------- graph files
def good_graph() -> Data:
    return Data(
        x=torch.randn(5, 3),
        pos=torch.rand(5, 2, dtype=torch.float64),
        edge_index=torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]]),
        node_of_patch=torch.tensor([0, 1, 2, 3, 4, 4]),
        patch_coords=torch.zeros(6, 2, dtype=torch.float64),
        num_patches=torch.tensor([1, 1, 1, 1, 2]),
    )


def break_x_nan(g: Data) -> None:
    g.x[2, 1] = float("nan")


def break_edges(g: Data) -> None:
    g.edge_index = torch.tensor([[0, 7], [7, 0]])


def break_pos_rows(g: Data) -> None:
    g.pos = g.pos[:4]


def break_float_edges(g: Data) -> None:
    g.edge_index = g.edge_index.float()


def break_node_of_patch(g: Data) -> None:
    g.patch_coords = g.patch_coords[:5]


def break_bfloat16_x_inf(g: Data) -> None:
    g.x = g.x.to(torch.bfloat16)  # no numpy dtype: checked on a copy
    g.x[4, 0] = float("inf")


def break_edge_attr_inf(g: Data) -> None:
    g.edge_attr = torch.ones(4, 2)
    g.edge_attr[1, 1] = -float("inf")


def break_negative_patch_node(g: Data) -> None:
    g.node_of_patch[0] = -1


GRAPH_FAULTS = {
    "NaN in x": (break_x_nan, r"field 'x' has 1 of 5 rows with NaN or Inf \(first at row 2\)"),
    "edge to a missing node": (
        break_edges,
        r"field 'edge_index' refers to node\(s\) outside \[0, 5\)",
    ),
    "pos rows": (break_pos_rows, r"field 'pos' has shape \(4, 2\), expected 5 rows"),
    "float edge_index": (
        break_float_edges,
        r"field 'edge_index' must be a \(2, E\) integer tensor",
    ),
    "patch_coords rows": (
        break_node_of_patch,
        r"field 'patch_coords' has 5 rows but 'node_of_patch' has 6",
    ),
    "Inf in bfloat16 x": (
        break_bfloat16_x_inf,
        r"field 'x' has 1 of 5 rows with NaN or Inf \(first at row 4\)",
    ),
    "Inf in edge_attr": (
        break_edge_attr_inf,
        r"field 'edge_attr' has 1 of 4 rows with NaN or Inf \(first at row 1\)",
    ),
    "negative patch node": (
        break_negative_patch_node,
        r"field 'node_of_patch' refers to node\(s\) outside \[0, 5\) "
        r"\(min -1, max 4\)",
    ),
}


def test_good_graph_loads(tmp_path):
    graph = load_graph(save_graph(tmp_path / "S1.pt", good_graph()))
    assert graph.num_nodes == 5


@pytest.mark.parametrize("case", sorted(GRAPH_FAULTS))
def test_inconsistent_graph_file_is_named(tmp_path, case):
    damage, message = GRAPH_FAULTS[case]
    graph = good_graph()
    damage(graph)
    path = save_graph(tmp_path / "S1.pt", graph)
    with pytest.raises(ValueError, match=rf"S1\.pt: {message}"):
        load_graph(path)


def test_truncated_graph_file_is_named(tmp_path):
    path = save_graph(tmp_path / "S1.pt", good_graph())
    truncate(path, 0.5)
    with pytest.raises(ValueError, match=r"S1\.pt: not a readable graph file"):
        load_graph(path)


# ----------------------------------------------------------------------------- slides
def test_slide_smaller_than_a_patch_is_reported_as_such(tmp_path, capsys):
    from radiograph.pathology.slide import write_pyramidal_tiff

    pink = np.full((120, 200, 3), (225, 130, 180), dtype=np.uint8)
    small = write_pyramidal_tiff(tmp_path / "small.tiff", pink, mpp=0.5, downsamples=(1,), tile=16)
    manifest = write_manifest(tmp_path, [{"subject_id": "S1", "slide_paths": str(small)}])
    out = tmp_path / "run"
    status = main(
        [
            "extract-pathology",
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--random-weights",
            "--device",
            "cpu",
        ]
    )
    assert status == 1
    record = json.loads((out / "runs" / "extract-pathology.json").read_text())
    error = record["results"][0]["error"]
    assert "small.tiff: 200 x 120 level-0 pixels (100 x 60 um) is smaller than one patch" in error
    assert "224 px at 0.5 um/px = 112 um" in error and "no tissue" not in error
