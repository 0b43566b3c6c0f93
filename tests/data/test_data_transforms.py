"""TRANSFORMS: allow-listed, parameter-checked, deterministic; masks move with their images."""

from __future__ import annotations

import numpy as np
import pytest

from sealroom.data import TRANSFORMS, ArrayDataset
from sealroom.data.transforms import apply_transforms
from sealroom.errors import ConfigError, DataError
from sealroom.pipeline.schema import Component


def _seg(n: int = 8) -> ArrayDataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 6, 6)).astype(np.float32)
    return ArrayDataset(x=x, y=(x > 0.5).astype(np.float32), name="seg")


def _run(ds: ArrayDataset, *steps: dict) -> ArrayDataset:
    return apply_transforms(ds, [Component.model_validate(s) for s in steps], where="t")


def test_registry_names_the_documented_transforms() -> None:
    for name in (
        "normalize",
        "resize",
        "random_flip",
        "random_rotate90",
        "scale_intensity",
        "to_float",
    ):
        assert name in TRANSFORMS


def test_unknown_transform_and_bad_parameter_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown transform 'system'"):
        _run(_seg(), {"name": "system"})
    with pytest.raises(ConfigError, match=r"t\[0\]: transform 'resize'.*unexpected keyword"):
        _run(_seg(), {"name": "resize", "params": {"size": [4, 4], "cmd": "x"}})
    with pytest.raises(ConfigError, match="size must be"):
        _run(_seg(), {"name": "resize", "params": {"size": [0, 4]}})


def test_random_flip_is_seeded_and_keeps_masks_aligned() -> None:
    ds = _seg()
    once = _run(ds, {"name": "random_flip", "params": {"p": 0.5, "seed": 3}})
    twice = _run(ds, {"name": "random_flip", "params": {"p": 0.5, "seed": 3}})
    assert np.array_equal(once.x, twice.x)
    assert not np.array_equal(once.x, ds.x)
    assert np.array_equal(once.y, (once.x > 0.5).astype(np.float32))


def test_random_rotate90_keeps_masks_aligned() -> None:
    out = _run(_seg(), {"name": "random_rotate90", "params": {"p": 1.0}})
    assert np.array_equal(out.y, (out.x > 0.5).astype(np.float32))


def test_resize_uses_nearest_for_masks() -> None:
    out = _run(_seg(), {"name": "resize", "params": {"size": [12, 9]}})
    assert out.x.shape == out.y.shape == (8, 1, 12, 9)
    assert set(np.unique(out.y)) <= {0.0, 1.0}


def test_normalize_and_scale_intensity() -> None:
    ds = ArrayDataset(
        x=np.arange(12, dtype=np.float32).reshape(6, 2), y=np.zeros(6, dtype=np.int64)
    )
    norm = _run(ds, {"name": "normalize"})
    assert np.allclose(norm.x.mean(axis=0), 0, atol=1e-6) and np.allclose(norm.x.std(axis=0), 1)
    scaled = _run(ds, {"name": "scale_intensity", "params": {"per_sample": False}})
    assert scaled.x.min() == 0.0 and scaled.x.max() == 1.0
    fixed = _run(ds, {"name": "normalize", "params": {"mean": 1.0, "std": 2.0}})
    assert fixed.x[0, 0] == -0.5


def test_image_transform_on_table_is_refused() -> None:
    ds = ArrayDataset(
        x=np.zeros((2, 3), dtype=np.float32), y=np.zeros(2, dtype=np.int64), name="tab"
    )
    with pytest.raises(DataError, match="dataset tab: random_flip needs images"):
        _run(ds, {"name": "random_flip"})
