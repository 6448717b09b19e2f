"""Graph pictures: nodes land where they belong on the thumbnail / CT projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.image import imread
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from radiograph.graph import build_spatial_graph, plot_graph_2d, plot_graph_3d
from radiograph.graph.plot import scale_bar_length


def scatter_of(ax):
    return next(c for c in ax.collections if isinstance(c, PathCollection))


def test_2d_plot_places_nodes_on_the_thumbnail(tmp_path):
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 8000, (60, 2))
    data = build_spatial_graph(
        coords, rng.normal(size=(60, 3)), "delaunay", connectivity_distance=3000
    )
    thumbnail = np.full((250, 250, 3), 230, dtype=np.uint8)
    values = np.linspace(0, 1, 60)
    path = tmp_path / "graph.png"
    fig = plot_graph_2d(
        data, thumbnail, downsample=32.0, values=values, patch_size=224.0, path=path
    )
    ax = fig.axes[0]
    # patch coordinates are top-left corners: nodes are drawn half a patch further, at centres
    np.testing.assert_allclose(scatter_of(ax).get_offsets(), (coords + 112.0) / 32.0)
    np.testing.assert_allclose(scatter_of(ax).get_array(), values)
    segments = next(c for c in ax.collections if isinstance(c, LineCollection)).get_segments()
    assert len(segments) == data.edge_index.shape[1] // 2
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100
    assert path.with_suffix(".pdf").stat().st_size > 0 and path.with_suffix(".svg").exists()
    assert not list(tmp_path.glob(".tmp-*"))
    assert not [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]  # no mpp, no bar


@pytest.mark.parametrize(
    "mpp, downsample, width, um, label",
    [
        (0.5, 32.0, 250, 500.0, "500 µm"),  # 4000 um wide: 20% = 800 um -> 500 um
        (0.25, 4.0, 1000, 200.0, "200 µm"),  # 1000 um wide: 200 um fits exactly
        (0.5, 64.0, 800, 5000.0, "5 mm"),  # 25.6 mm wide: 20% = 5.12 mm -> 5 mm
    ],
)
def test_scale_bar_gives_micrometres(mpp, downsample, width, um, label):
    data = build_spatial_graph(
        np.array([[0.0, 0.0], [500.0, 0.0], [0.0, 500.0]]), np.eye(3), "knn", k=2
    )
    fig = plot_graph_2d(data, np.zeros((100, width, 3)), downsample, mpp=mpp)
    bar = next(a for a in fig.axes[0].artists if isinstance(a, AnchoredSizeBar))
    rectangle = bar.size_bar.get_children()[0]
    # the bar's length in thumbnail pixels times micrometres per thumbnail pixel
    assert rectangle.get_width() * mpp * downsample == pytest.approx(um)
    assert bar.txt_label.get_text() == label
    extent = width * mpp * downsample
    assert scale_bar_length(extent) <= 0.2 * extent < 2.5 * scale_bar_length(extent)
    with pytest.raises(ValueError, match="mpp"):
        plot_graph_2d(data, np.zeros((10, 10, 3)), 1.0, mpp=0.0)


def test_look_inside_draws_nodes_at_patch_centres_of_a_built_graph():
    """A graph built from a feature file records its grid step, the patch side of the
    non-overlapping tiling grid; the look-inside plot shifts nodes by half of it."""
    from radiograph.graph.commands import subject_graph
    from radiograph.graph.params import step_params
    from radiograph.io.features import FeatureSet
    from radiograph.train.look_inside import patch_side

    corners = np.stack(np.meshgrid(np.arange(6), np.arange(4)), -1).reshape(-1, 2) * 256.0
    features = FeatureSet(
        np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32), corners, {}
    )
    graph = subject_graph(
        "s1", "pathology", [features], ["slide"], "knn", step_params("pathology", "knn")
    )
    assert patch_side(graph) == 256.0
    fig = plot_graph_2d(graph, np.zeros((10, 20, 3)), 100.0, patch_size=patch_side(graph))
    np.testing.assert_allclose(scatter_of(fig.axes[0]).get_offsets(), (corners + 128.0) / 100.0)


def test_2d_plot_of_one_slide_of_a_multi_slide_graph():
    coords = np.array(
        [[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [5000.0, 0.0], [5100.0, 0.0], [5000.0, 100.0]]
    )
    data = build_spatial_graph(coords, np.eye(6), "delaunay", connectivity_distance=500)
    data.slide_offsets = torch.tensor([[0.0, 0.0], [5000.0, 0.0]], dtype=torch.float64)
    data.slide_of_patch = torch.tensor([0, 0, 0, 1, 1, 1])
    thumbnail = np.zeros((20, 20, 3))
    with pytest.raises(ValueError, match="spans 2 slides"):
        plot_graph_2d(data, thumbnail, 10.0)
    fig = plot_graph_2d(data, thumbnail, 10.0, slide=1)
    np.testing.assert_allclose(scatter_of(fig.axes[0]).get_offsets(), coords[:3] / 10.0)


def test_3d_plot_projects_nodes_on_three_planes(tmp_path):
    rng = np.random.default_rng(1)
    spacing, origin = np.array([0.8, 0.8, 2.5]), np.array([-100.0, 50.0, 10.0])
    volume = rng.normal(size=(20, 40, 30))  # (Z, Y, X)
    coords = origin + rng.uniform(0, 1, (40, 3)) * np.array([29, 39, 19]) * spacing
    data = build_spatial_graph(coords, rng.normal(size=(40, 4)), "knn", k=4)
    fig = plot_graph_3d(
        data, volume, spacing, origin, values=rng.uniform(size=40), path=tmp_path / "ct.png"
    )
    axes = fig.axes[:3]
    for ax, (h, v) in zip(axes, [(0, 1), (0, 2), (1, 2)]):
        np.testing.assert_allclose(scatter_of(ax).get_offsets(), coords[:, [h, v]])
        left, right, bottom, top = ax.images[0].get_extent()
        assert left <= coords[:, h].min() and right >= coords[:, h].max()
        assert top <= coords[:, v].min() and bottom >= coords[:, v].max()
    assert (tmp_path / "ct.png").stat().st_size > 0


def test_plot_input_errors():
    data = build_spatial_graph(
        np.random.default_rng(0).uniform(size=(10, 2)), np.zeros((10, 2)), "knn", k=3
    )
    with pytest.raises(ValueError, match="values has 3 entries but the graph has 10 nodes"):
        plot_graph_2d(data, np.zeros((5, 5, 3)), 1.0, values=np.zeros(3))
    with pytest.raises(ValueError, match="use plot_graph_2d"):
        plot_graph_3d(data, np.zeros((2, 2, 2)), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        plot_graph_2d(data, np.zeros((5, 5)), 1.0)
