"""Storage formats: atomic writes, h5 feature files, graph files."""

from radiograph.io.atomic import atomic_open, atomic_path, partial_files, read_json, write_json
from radiograph.io.features import FeatureSet, file_sha256, read_features, write_features
from radiograph.io.graphs import load_graph, save_graph

__all__ = [
    "FeatureSet",
    "atomic_open",
    "atomic_path",
    "file_sha256",
    "load_graph",
    "partial_files",
    "read_features",
    "read_json",
    "save_graph",
    "write_features",
    "write_json",
]
