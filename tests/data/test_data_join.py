"""Joins: unions refuse mismatched schemas naming both datasets; key joins drop identifiers."""

from __future__ import annotations

import numpy as np
import pytest

from sealroom.data import ArrayDataset, MemoryTree, join_datasets, load_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig, JoinConfig


def _images(name: str, n: int, size: int = 8, groups: bool = True) -> ArrayDataset:
    return ArrayDataset(
        x=np.zeros((n, 1, size, size), dtype=np.float32),
        y=np.zeros((n, 1, size, size), dtype=np.float32),
        name=name,
        groups=np.array([f"p{i // 2}" for i in range(n)]) if groups else None,
    )


def test_union_concatenates_and_prefixes_groups() -> None:
    joined = join_datasets([_images("hospital_a", 4), _images("hospital_b", 2)], JoinConfig())
    assert joined.x.shape == (6, 1, 8, 8) and joined.name == "hospital_a+hospital_b"
    assert joined.groups is not None
    assert joined.groups.tolist() == [
        "hospital_a:p0",
        "hospital_a:p0",
        "hospital_a:p1",
        "hospital_a:p1",
        "hospital_b:p0",
        "hospital_b:p0",
    ]


def test_union_of_mismatched_image_shapes_is_refused_naming_both() -> None:
    with pytest.raises(DataError) as err:
        join_datasets([_images("hospital_a", 4), _images("hospital_b", 2, size=16)], JoinConfig())
    message = str(err.value)
    assert "sample shape" in message and "hospital_a" in message and "hospital_b" in message
    assert "(1, 16, 16)" in message and "(1, 8, 8)" in message
    assert "\n" not in message


def test_union_of_different_classes_is_refused() -> None:
    a = ArrayDataset(
        x=np.zeros((2, 3), np.float32), y=np.zeros(2, np.int64), name="a", classes=["x", "y"]
    )
    b = ArrayDataset(
        x=np.zeros((2, 3), np.float32), y=np.zeros(2, np.int64), name="b", classes=["x", "z"]
    )
    with pytest.raises(
        DataError, match=r"classes of dataset b \(\['x', 'z'\]\) differs from dataset a"
    ):
        join_datasets([a, b], JoinConfig())


def test_union_gives_ungrouped_rows_their_own_group() -> None:
    joined = join_datasets([_images("a", 2), _images("b", 2, groups=False)], JoinConfig())
    assert joined.groups is not None and joined.groups.tolist()[2:] == ["b:row0", "b:row1"]


def _table(name: str, csv: str, target: str | None, ids: list[str]) -> ArrayDataset:
    source = {"format": "table", "file": "t.csv", "target": target, "id_columns": ids}
    config = DatasetConfig.model_validate({"id": name, "source": source})
    return load_dataset(config, MemoryTree({"t.csv": csv.encode()}))


def test_key_join_matches_rows_and_drops_identifiers() -> None:
    bank = _table(
        "bank", "cust,region,income,default\nc1,1,10,0\nc2,2,20,1\nc3,1,30,0\n", "default", ["cust"]
    )
    telco = _table("telco", "cust,calls,spend\nc3,7,70\nc1,5,50\nc9,1,1\n", None, ["cust"])
    joined = join_datasets([bank, telco], JoinConfig(kind="key", on=["cust"], drop=["region"]))
    assert joined.feature_names == ["bank.income", "telco.calls", "telco.spend"]
    assert joined.x.tolist() == [[10, 5, 50], [30, 7, 70]]
    assert joined.y.tolist() == [0, 0]
    assert joined.keys is None and joined.groups is None


def test_key_join_needs_the_key_in_every_table() -> None:
    a = _table("a", "id,v,y\n1,2,0\n", "y", ["id"])
    b = _table("b", "other,w\n1,2\n", None, ["other"])
    with pytest.raises(DataError, match="dataset b has no id column 'id'"):
        join_datasets([a, b], JoinConfig(kind="key", on=["id"]))


def test_key_join_refuses_duplicate_keys_and_two_targets() -> None:
    a = _table("a", "id,v,y\n1,2,0\n1,3,1\n", "y", ["id"])
    b = _table("b", "id,w\n1,2\n", None, ["id"])
    with pytest.raises(DataError, match="dataset a has duplicate key"):
        join_datasets([a, b], JoinConfig(kind="key", on=["id"]))
    c = _table("c", "id,w,y\n1,2,1\n", "y", ["id"])
    d = _table("d", "id,v,y\n1,2,0\n", "y", ["id"])
    with pytest.raises(
        DataError, match=r"exactly one dataset must have a target column \(found: c, d\)"
    ):
        join_datasets([c, d], JoinConfig(kind="key", on=["id"]))


def test_load_splits_loads_joins_and_splits_per_dataset_tree() -> None:
    from sealroom.data import load_splits
    from sealroom.pipeline.schema import SplitConfig

    configs = [
        DatasetConfig.model_validate(
            {"id": name, "source": {"format": "table", "file": "t.csv", "target": "y"}}
        )
        for name in ("a", "b")
    ]
    rows = "".join(f"{i},{i % 2}\n" for i in range(10))
    trees = {name: MemoryTree({"t.csv": f"v,y\n{rows}".encode()}) for name in ("a", "b")}
    splits = load_splits(configs, JoinConfig(), SplitConfig(), trees)
    assert splits.sizes() == {"train": 16, "val": 2, "test": 2}
    with pytest.raises(DataError, match="no files given for dataset 'b'"):
        load_splits(configs, JoinConfig(), SplitConfig(), {"a": trees["a"]})
