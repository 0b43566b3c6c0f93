"""The LOADERS registry: source format name -> function reading that format from a FileTree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree
from sealroom.pipeline.registry import Registry

# A loader gets its typed source config, the tree to read from and the dataset id.
Loader = Callable[[Any, FileTree, str], ArrayDataset]

LOADERS: Registry[Loader] = Registry("data format")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
