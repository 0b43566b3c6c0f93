"""ArrayDataset: what every loader returns and what splits, joins and the trainer consume."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sealroom.errors import DataError


@dataclass(frozen=True)
class ArrayDataset:
    """Samples as arrays: ``x`` float32 ``[N, C, H, W]`` (images) or ``[N, F]`` (tables).

    ``y`` holds int64 class labels ``[N]``, float32 masks ``[N, 1, H, W]`` or float32
    regression targets ``[N]``. ``groups`` (e.g. patient ids, as strings) keep related
    rows in one split. ``keys`` holds a table's identifier columns, used only to join
    and never trained on; ``feature_names`` names the columns of a tabular ``x``.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "dataset"
    groups: np.ndarray | None = None
    classes: list[str] | None = None
    keys: dict[str, np.ndarray] | None = None
    feature_names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.x)
        if len(self.y) != n:
            raise DataError(f"dataset {self.name}: {n} samples but {len(self.y)} targets")
        if self.groups is not None and len(self.groups) != n:
            raise DataError(f"dataset {self.name}: {n} samples but {len(self.groups)} group ids")
        for column, values in (self.keys or {}).items():
            if len(values) != n:
                raise DataError(
                    f"dataset {self.name}: key column {column!r} has {len(values)} rows"
                )
        if self.feature_names is not None and (
            self.x.ndim != 2 or self.x.shape[1] != len(self.feature_names)
        ):
            raise DataError(f"dataset {self.name}: feature names do not match the feature columns")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (no batch axis), e.g. ``(1, 28, 28)``."""
        return tuple(self.x.shape[1:])

    @property
    def is_segmentation(self) -> bool:
        return self.y.ndim == 4

    def subset(self, indices: np.ndarray, name: str | None = None) -> ArrayDataset:
        """The rows at ``indices`` (order kept), as a new dataset."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            name=name or self.name,
            groups=None if self.groups is None else self.groups[idx],
            keys=None if self.keys is None else {k: v[idx] for k, v in self.keys.items()},
        )

    def with_arrays(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> ArrayDataset:
        """Same metadata, new sample arrays (what transforms return)."""
        return replace(self, x=self.x if x is None else x, y=self.y if y is None else y)
