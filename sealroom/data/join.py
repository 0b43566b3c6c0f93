"""Joins across providers: a union of rows with identical schemas, or a key join of tables.

No free-form SQL: a union checks that sample shapes, dtypes, target kinds and
classes agree; a key join matches rows on declared key columns and then drops
every identifier column, so none reaches training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import JoinConfig


def join_datasets(datasets: Sequence[ArrayDataset], cfg: JoinConfig) -> ArrayDataset:
    """One dataset from several: a checked union of rows, or a key join of tables."""
    if not datasets:
        raise DataError("join: no datasets to join")
    if cfg.kind == "union":
        return union(datasets)
    return key_join(datasets, cfg.on, cfg.drop)


def _schema(ds: ArrayDataset) -> dict[str, object]:
    return {
        "sample shape": ds.sample_shape,
        "feature dtype": str(ds.x.dtype),
        "target shape": tuple(ds.y.shape[1:]),
        "target dtype": str(ds.y.dtype),
        "classes": ds.classes,
        "feature names": ds.feature_names,
    }


def union(datasets: Sequence[ArrayDataset]) -> ArrayDataset:
    """All rows of all datasets; schemas must match exactly. Group ids are prefixed by dataset."""
    first = datasets[0]
    reference = _schema(first)
    for other in datasets[1:]:
        for field, value in _schema(other).items():
            if value != reference[field]:
                raise DataError(
                    f"union join: {field} of dataset {other.name} ({value}) differs from "
                    f"dataset {first.name} ({reference[field]})"
                )
    groups = None
    if any(ds.groups is not None for ds in datasets):
        groups = np.concatenate(
            [
                np.char.add(f"{ds.name}:", ds.groups.astype(str))
                if ds.groups is not None
                else np.array([f"{ds.name}:row{i}" for i in range(len(ds))], dtype=str)
                for ds in datasets
            ]
        )
    keys = None
    if all(ds.keys is not None for ds in datasets):
        columns = list(first.keys or {})
        if all(list(ds.keys or {}) == columns for ds in datasets):
            keys = {c: np.concatenate([(ds.keys or {})[c] for ds in datasets]) for c in columns}
    return ArrayDataset(
        x=np.concatenate([ds.x for ds in datasets]),
        y=np.concatenate([ds.y for ds in datasets]),
        name="+".join(ds.name for ds in datasets),
        groups=groups,
        classes=first.classes,
        keys=keys,
        feature_names=first.feature_names,
    )


def _has_targets(ds: ArrayDataset) -> bool:
    return not (
        ds.y.dtype.kind == "f" and ds.y.ndim == 1 and len(ds.y) > 0 and bool(np.isnan(ds.y).all())
    )


def _key_tuples(ds: ArrayDataset, on: Sequence[str]) -> list[tuple[str, ...]]:
    keys = ds.keys or {}
    for column in on:
        if column not in keys:
            known = ", ".join(keys) or "none"
            raise DataError(
                f"key join: dataset {ds.name} has no id column {column!r} (id columns: {known})"
            )
    rows = list(zip(*(keys[c].astype(str).tolist() for c in on), strict=True))
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        if row in seen:
            raise DataError(
                f"key join: dataset {ds.name} has duplicate key {dict(zip(on, row, strict=True))}"
            )
        seen.add(row)
    return rows


def key_join(
    datasets: Sequence[ArrayDataset], on: Sequence[str], drop: Sequence[str] = ()
) -> ArrayDataset:
    """Inner join of tables on ``on``; features are concatenated (named ``dataset.column``).

    The target comes from the one dataset that has one. Key and other identifier
    columns never become features; ``drop`` removes further feature columns by name.
    """
    for ds in datasets:
        if ds.x.ndim != 2 or ds.feature_names is None:
            raise DataError(f"key join: dataset {ds.name} is not a table")
    with_targets = [ds for ds in datasets if _has_targets(ds)]
    if len(with_targets) != 1:
        found = ", ".join(ds.name for ds in with_targets) or "none"
        raise DataError(f"key join: exactly one dataset must have a target column (found: {found})")
    rows = [_key_tuples(ds, on) for ds in datasets]
    common = set(rows[0]).intersection(*map(set, rows[1:]))
    if not common:
        raise DataError(f"key join: no rows share a key on {', '.join(on)}")
    ordered = [r for r in rows[0] if r in common]  # keep the first dataset's row order
    xs: list[np.ndarray] = []
    names: list[str] = []
    for ds, ds_rows in zip(datasets, rows, strict=True):
        position = {r: i for i, r in enumerate(ds_rows)}
        idx = np.array([position[r] for r in ordered], dtype=np.int64)
        xs.append(ds.x[idx])
        prefix = len(datasets) > 1
        names += [f"{ds.name}.{c}" if prefix else c for c in ds.feature_names or []]
    target_ds = with_targets[0]
    t_position = {r: i for i, r in enumerate(rows[datasets.index(target_ds)])}
    y = target_ds.y[np.array([t_position[r] for r in ordered], dtype=np.int64)]
    x = np.concatenate(xs, axis=1)
    unknown = [d for d in drop if d not in names and not any(n.endswith(f".{d}") for n in names)]
    if unknown:
        raise DataError(f"key join: cannot drop unknown column {unknown[0]!r}")
    keep = [i for i, n in enumerate(names) if n not in drop and n.split(".", 1)[-1] not in drop]
    return ArrayDataset(
        x=np.ascontiguousarray(x[:, keep]),
        y=y,
        name="*".join(ds.name for ds in datasets),
        classes=target_ds.classes,
        feature_names=[names[i] for i in keep],
    )
