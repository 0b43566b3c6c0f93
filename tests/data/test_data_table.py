"""Table loader: CSV/Parquet from bytes, a target column, id columns kept aside for joins."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from sealroom.data import MemoryTree, load_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig

CSV = b"patient_id,age,bmi,outcome\np1,50,22.5,sick\np2,61,30.1,healthy\np3,45,27.0,sick\n"


def _config(file: str = "t.csv", **source: object) -> DatasetConfig:
    base = {"format": "table", "file": file, "target": "outcome", "id_columns": ["patient_id"]}
    return DatasetConfig.model_validate({"id": "tab", "source": {**base, **source}})


def test_csv_with_string_target_and_id_column() -> None:
    ds = load_dataset(_config(), MemoryTree({"t.csv": CSV}))
    assert ds.feature_names == ["age", "bmi"]
    assert ds.x.dtype == np.float32 and ds.x.shape == (3, 2)
    assert ds.classes == ["healthy", "sick"] and ds.y.tolist() == [1, 0, 1]
    assert ds.keys is not None and ds.keys["patient_id"].tolist() == ["p1", "p2", "p3"]


def test_parquet_with_selected_features() -> None:
    frame = pd.DataFrame({"id": [1, 2], "a": [1.0, 2.0], "b": [3, 4], "y": [0.5, 1.5]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    config = _config("t.parquet", target="y", id_columns=["id"], feature_columns=["b"])
    ds = load_dataset(config, MemoryTree({"t.parquet": buffer.getvalue()}))
    assert ds.feature_names == ["b"] and ds.y.dtype == np.float32


def test_missing_target_column_is_named() -> None:
    with pytest.raises(DataError, match=r"^t\.csv: missing column 'label'"):
        load_dataset(_config(target="label"), MemoryTree({"t.csv": CSV}))


def test_missing_id_column_is_named() -> None:
    with pytest.raises(DataError, match=r"^t\.csv: missing column 'ssn'"):
        load_dataset(_config(id_columns=["ssn"]), MemoryTree({"t.csv": CSV}))


def test_non_numeric_feature_is_refused() -> None:
    data = b"id,city,y\n1,Paris,0\n"
    with pytest.raises(DataError, match=r"t\.csv: feature column 'city' is not numeric"):
        load_dataset(_config(target="y", id_columns=["id"]), MemoryTree({"t.csv": data}))


def test_corrupt_parquet_is_refused() -> None:
    with pytest.raises(DataError, match=r"^t\.parquet: cannot read table"):
        load_dataset(_config("t.parquet"), MemoryTree({"t.parquet": b"PAR1 broken"}))


def test_unknown_extension_is_refused() -> None:
    with pytest.raises(DataError, match=r"t\.xlsx: unknown table format"):
        load_dataset(_config("t.xlsx"), MemoryTree({"t.xlsx": CSV}))
