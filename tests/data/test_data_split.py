"""Splits: by ratio, deterministic with a seed; a group (patient) never straddles two splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.data import ArrayDataset, split_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import SplitConfig


def _ds(n: int, groups: np.ndarray | None = None) -> ArrayDataset:
    return ArrayDataset(
        x=np.arange(n, dtype=np.float32).reshape(n, 1), y=np.arange(n), name="d", groups=groups
    )


def test_ratio_split_sizes_and_disjointness() -> None:
    splits = split_dataset(_ds(100), SplitConfig(train=0.7, val=0.2, test=0.1, seed=1))
    assert splits.sizes() == {"train": 70, "val": 20, "test": 10}
    rows = np.concatenate([splits.train.y, splits.val.y, splits.test.y])
    assert sorted(rows.tolist()) == list(range(100))


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = split_dataset(_ds(50), SplitConfig(seed=7))
    b = split_dataset(_ds(50), SplitConfig(seed=7))
    c = split_dataset(_ds(50), SplitConfig(seed=8))
    assert np.array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.test.y, c.test.y)


def test_small_dataset_still_gets_val_and_test() -> None:
    assert split_dataset(_ds(5), SplitConfig()).sizes() == {"train": 3, "val": 1, "test": 1}


def test_zero_ratio_split_is_empty() -> None:
    splits = split_dataset(_ds(10), SplitConfig(train=0.8, val=0.0, test=0.2))
    assert len(splits.val) == 0 and splits.val.x.shape == (0, 1)


def test_group_by_without_groups_is_refused() -> None:
    with pytest.raises(DataError, match="group_by is 'patient' but dataset d has no group ids"):
        split_dataset(_ds(10), SplitConfig(group_by="patient"))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=3, max_size=25),
    seed=st.integers(0, 2**16),
)
def test_group_split_keeps_each_patient_in_one_split(sizes: list[int], seed: int) -> None:
    groups = np.concatenate([[f"patient{i}"] * n for i, n in enumerate(sizes)])
    splits = split_dataset(_ds(len(groups), groups), SplitConfig(group_by="patient", seed=seed))
    seen = [
        set(part.groups.tolist()) if part.groups is not None else set()
        for part in (splits.train, splits.val, splits.test)
    ]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(map(len, seen)) == len(sizes)
    assert all(seen)  # >= 3 patients: every split gets one
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(groups)


def test_group_by_an_id_column_of_a_table() -> None:
    keys = {"patient": np.array(["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"])}
    ds = ArrayDataset(x=np.zeros((10, 2), np.float32), y=np.zeros(10), name="t", keys=keys)
    splits = split_dataset(ds, SplitConfig(train=0.6, val=0.2, test=0.2, group_by="patient"))
    patients = [
        set(part.keys["patient"].tolist()) if part.keys else set()
        for part in (splits.train, splits.val, splits.test)
    ]
    assert [len(p) for p in patients] == [3, 1, 1]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2])
