"""CSV / Parquet tables read with pandas from bytes: feature columns, a target, identifier columns.

Identifier columns are kept aside in ``ArrayDataset.keys`` for key joins and never
become features. String or boolean targets become class labels (sorted names).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree, maybe_gunzip
from sealroom.data.loaders.base import LOADERS
from sealroom.errors import DataError
from sealroom.pipeline.schema import TableSource

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """A pandas DataFrame from CSV/TSV or Parquet bytes, chosen by the file name."""
    lower = name.lower()
    try:
        if lower.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(io.BytesIO(data))
        if lower.endswith(CSV_SUFFIXES):
            sep = "\t" if ".tsv" in lower else ","
            return pd.read_csv(io.BytesIO(maybe_gunzip(data, name)), sep=sep)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{name}: cannot read table ({' '.join(str(exc).split())[:200]})") from None
    raise DataError(f"{name}: unknown table format (use .csv, .tsv or .parquet)")


def _targets(column: pd.Series, name: str, target: str) -> tuple[np.ndarray, list[str] | None]:
    if column.isna().any():
        raise DataError(f"{name}: target column {target!r} has missing values")
    kind = column.dtype.kind
    if kind in "iu":
        return column.to_numpy(dtype=np.int64), None
    if kind == "f":
        return column.to_numpy(dtype=np.float32), None
    values = column.astype(str).to_numpy()
    classes = sorted(set(values.tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in values], dtype=np.int64), classes


@LOADERS.register("table")
def load_table(source: TableSource, tree: FileTree, name: str) -> ArrayDataset:
    frame = read_table(tree.read_bytes(source.file), source.file)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    named = [*source.id_columns, *([source.target] if source.target else [])]
    named += source.feature_columns or []
    for column in named:
        if column not in columns:
            raise DataError(
                f"{source.file}: missing column {column!r} (found: {', '.join(columns)})"
            )
    reserved = set(source.id_columns) | ({source.target} if source.target else set())
    if source.feature_columns is not None:
        features = list(source.feature_columns)
        overlap = reserved.intersection(features)
        if overlap:
            raise DataError(
                f"{source.file}: column {sorted(overlap)[0]!r} is an id/target and a feature"
            )
    else:
        features = [c for c in columns if c not in reserved]
    for column in features:
        if frame[column].dtype.kind not in "biuf":
            raise DataError(f"{source.file}: feature column {column!r} is not numeric")
        if frame[column].isna().any():
            raise DataError(f"{source.file}: feature column {column!r} has missing values")
    x = frame[features].to_numpy(dtype=np.float32).reshape(len(frame), len(features))
    if source.target:
        y, classes = _targets(frame[source.target], source.file, source.target)
    else:
        y, classes = np.full(len(frame), np.nan, dtype=np.float32), None
    keys = {c: frame[c].to_numpy() for c in source.id_columns} if source.id_columns else None
    return ArrayDataset(x=x, y=y, name=name, classes=classes, keys=keys, feature_names=features)
