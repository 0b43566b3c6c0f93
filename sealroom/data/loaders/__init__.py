"""Loaders by source format, and load_dataset: one DatasetConfig + FileTree -> ArrayDataset."""

from __future__ import annotations

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree
from sealroom.data.loaders import hdf5, idx, images, table  # noqa: F401  (registers the formats)
from sealroom.data.loaders.base import LOADERS, Loader
from sealroom.data.transforms import apply_transforms
from sealroom.pipeline.schema import DatasetConfig

__all__ = ["LOADERS", "Loader", "load_dataset"]


def load_dataset(cfg: DatasetConfig, tree: FileTree) -> ArrayDataset:
    """Read the dataset ``cfg`` describes from ``tree``, then apply its transforms in order."""
    loader = LOADERS.get(cfg.source.format, where=f"datasets.{cfg.id}.source.format")
    dataset = loader(cfg.source, tree, cfg.id)
    return apply_transforms(dataset, cfg.transforms, where=f"datasets.{cfg.id}.transforms")
