"""Train/validation/test splits by ratio, seeded; with ``group_by`` a group never straddles splits.

Group splits are what keep every slice of one patient in one split, so a test
score measures held-out patients rather than neighbouring slices of seen ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import SplitConfig


@dataclass(frozen=True)
class Splits:
    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset

    def parts(self) -> dict[str, ArrayDataset]:
        """The three splits by name, in train, val, test order."""
        return {"train": self.train, "val": self.val, "test": self.test}

    def sizes(self) -> dict[str, int]:
        return {name: len(part) for name, part in self.parts().items()}


def _counts(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """Split ``n`` items by the ratios; a non-zero ratio gets at least one item when n >= 3."""
    n_val = round(cfg.val * n)
    n_test = round(cfg.test * n)
    if cfg.val > 0 and n_val == 0 and n >= 3:
        n_val = 1
    if cfg.test > 0 and n_test == 0 and n >= 3:
        n_test = 1
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(
            f"cannot split {n} items by {cfg.train}/{cfg.val}/{cfg.test}: train would be empty"
        )
    return n_train, n_val, n_test


def split_indices(
    n: int, cfg: SplitConfig, groups: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Index arrays (train, val, test), each sorted; deterministic for a given seed."""
    rng = np.random.default_rng(cfg.seed)
    if groups is None:
        order = rng.permutation(n)
        n_train, n_val, _ = _counts(n, cfg)
        parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
        return tuple(np.sort(p) for p in parts)
    unique, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(unique))
    g_train, g_val, _ = _counts(len(unique), cfg)
    assignment = np.empty(len(unique), dtype=np.int64)
    assignment[order[:g_train]] = 0
    assignment[order[g_train : g_train + g_val]] = 1
    assignment[order[g_train + g_val :]] = 2
    row_split = assignment[inverse.reshape(-1)]
    return tuple(np.flatnonzero(row_split == k) for k in range(3))


def split_dataset(ds: ArrayDataset, cfg: SplitConfig) -> Splits:
    """Split ``ds`` by ``cfg``.

    ``group_by`` names an id column of a table (``keys``) or, otherwise, refers to the
    dataset's group ids (e.g. the patient ids an hdf5 source reads with ``groups_key``).
    """
    groups = None
    if cfg.group_by is not None:
        if ds.keys is not None and cfg.group_by in ds.keys:
            groups = ds.keys[cfg.group_by].astype(str)
        elif ds.groups is not None:
            groups = ds.groups
        else:
            raise DataError(
                f"split.group_by is {cfg.group_by!r} but dataset {ds.name} has no group ids "
                "(set groups_key on an hdf5 source, or name an id column of a table)"
            )
    train, val, test = split_indices(len(ds), cfg, groups)
    return Splits(
        train=ds.subset(train, name=f"{ds.name}/train"),
        val=ds.subset(val, name=f"{ds.name}/val"),
        test=ds.subset(test, name=f"{ds.name}/test"),
    )
