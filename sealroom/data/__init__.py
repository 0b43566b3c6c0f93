"""Data: loaders reading through FileTrees, transforms, splits and joins (DESIGN.md: `data`).

Public entry points: :func:`load_dataset`, :func:`split_dataset`, :func:`join_datasets`,
:func:`load_splits`, :class:`ArrayDataset`, and the trees :class:`FileTree`,
:class:`DirectoryTree`, :class:`MemoryTree`.
"""

from sealroom.data import scatter  # noqa: F401  (registers the `scattering` transform)
from sealroom.data.assemble import load_splits
from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import DirectoryTree, FileTree, MemoryTree, SubTree
from sealroom.data.join import join_datasets
from sealroom.data.loaders import LOADERS, load_dataset
from sealroom.data.split import Splits, split_dataset
from sealroom.data.transforms import TRANSFORMS

__all__ = [
    "LOADERS",
    "TRANSFORMS",
    "ArrayDataset",
    "DirectoryTree",
    "FileTree",
    "MemoryTree",
    "Splits",
    "SubTree",
    "join_datasets",
    "load_dataset",
    "load_splits",
    "split_dataset",
]
