"""From a pipeline's data sections to train/val/test: load each provider's dataset, join, split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sealroom.data.files import FileTree
from sealroom.data.join import join_datasets
from sealroom.data.loaders import load_dataset
from sealroom.data.split import Splits, split_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig, JoinConfig, SplitConfig


def load_splits(
    datasets: Sequence[DatasetConfig],
    join: JoinConfig,
    split: SplitConfig,
    trees: Mapping[str, FileTree],
) -> Splits:
    """Load every dataset from ``trees[dataset.id]``, join them in config order, then split."""
    missing = [d.id for d in datasets if d.id not in trees]
    if missing:
        raise DataError(f"no files given for dataset {missing[0]!r}")
    loaded = [load_dataset(d, trees[d.id]) for d in datasets]
    return split_dataset(join_datasets(loaded, join), split)
