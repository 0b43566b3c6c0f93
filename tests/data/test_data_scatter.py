"""The `scattering` transform: registered, shaped as T&B, deterministic, record-local, checked."""

from __future__ import annotations

import numpy as np
import pytest

from sealroom.data import TRANSFORMS, ArrayDataset
from sealroom.data.scatter import group_normalize, scattering_channels
from sealroom.data.transforms import apply_transforms
from sealroom.errors import ConfigError, DataError
from sealroom.pipeline.schema import Component


def _images(n: int, seed: int = 0, size: int = 28) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, size, size)).astype(np.float32)
    return ArrayDataset(x=x, y=rng.integers(0, 10, n).astype(np.int64), name="imgs")


def _scatter(ds: ArrayDataset, **params: object) -> ArrayDataset:
    return apply_transforms(ds, [Component(name="scattering", params=params)], where="t")


def test_scattering_is_registered_and_reached_by_name() -> None:
    assert "scattering" in TRANSFORMS


def test_output_shape_is_81_channels_of_7x7_for_j2_l8() -> None:
    out = _scatter(_images(3))
    assert out.x.shape == (3, 81, 7, 7)
    assert out.x.dtype == np.float32
    assert np.isfinite(out.x).all()
    assert scattering_channels(2, 8, 2) == 81
    assert _scatter(_images(2), max_order=1, groups=17).x.shape == (2, 17, 7, 7)
    assert _scatter(_images(2, size=16), J=3, L=4, normalize="none").x.shape[1:] == (
        scattering_channels(3, 4, 2),
        2,
        2,
    )


def test_labels_and_order_are_kept() -> None:
    ds = _images(5)
    out = _scatter(ds)
    assert np.array_equal(out.y, ds.y)
    single = _scatter(ds.subset(np.array([3])))
    np.testing.assert_array_equal(single.x[0], out.x[3])


def test_deterministic_across_calls() -> None:
    a = _scatter(_images(4)).x
    b = _scatter(_images(4)).x
    assert np.array_equal(a, b)


def test_record_local_one_record_does_not_move_another() -> None:
    """Changing (or removing) record 0 leaves every other record's features bit for bit."""
    ds = _images(6)
    base = _scatter(ds).x
    changed_x = ds.x.copy()
    changed_x[0] = 1.0 - changed_x[0]
    changed = _scatter(ds.with_arrays(x=changed_x)).x
    assert not np.array_equal(changed[0], base[0])
    np.testing.assert_array_equal(changed[1:], base[1:])
    removed = _scatter(ds.subset(np.arange(1, 6))).x
    np.testing.assert_array_equal(removed, base[1:])


def test_chunking_does_not_change_the_result() -> None:
    from sealroom.data.scatter import scatter_images

    x = _images(7).x
    np.testing.assert_array_equal(scatter_images(x, chunk=2), scatter_images(x, chunk=7))


def test_group_normalisation_matches_torch_group_norm_per_record() -> None:
    """Same numbers as T&B's GroupNorm(27, 81, affine=False), computed one record at a time."""
    import torch

    raw = _scatter(_images(3), normalize="none").x
    out = _scatter(_images(3)).x
    expected = torch.nn.functional.group_norm(torch.from_numpy(raw), 27).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    loud = group_normalize(raw * 1000, 27).reshape(3, 27, -1)
    np.testing.assert_allclose(loud.std(axis=2), 1.0, atol=1e-3)
    constant = group_normalize(np.ones((1, 81, 7, 7), dtype=np.float32), 27)
    assert np.isfinite(constant).all() and np.abs(constant).max() == 0.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"J": 0}, "J must be an integer within 1..6, got 0"),
        ({"J": 2.5}, "J must be an integer within 1..6, got 2.5"),
        ({"L": 0}, "L must be an integer within 1..16, got 0"),
        ({"L": True}, "L must be an integer within 1..16, got True"),
        ({"max_order": 3}, "max_order must be 1 or 2, got 3"),
        ({"normalize": "dataset"}, "normalize must be one of"),
        ({"groups": 10}, "groups must divide the 81 scattering channels, got 10"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _scatter(_images(1), **params)
    text = str(info.value)
    assert "transform scattering" in text and message in text and "\n" not in text


def test_unknown_parameter_is_a_config_error_naming_the_transform() -> None:
    with pytest.raises(ConfigError, match=r"t\[0\]: transform 'scattering'.*unexpected keyword"):
        _scatter(_images(1), shape=[28, 28])


def test_images_not_divisible_by_2_pow_j_and_non_images_are_data_errors() -> None:
    with pytest.raises(DataError, match="27×27 are not divisible by 2\\^J = 4"):
        _scatter(_images(1, size=27))
    table = ArrayDataset(x=np.zeros((2, 5), np.float32), y=np.zeros(2, np.int64), name="tab")
    with pytest.raises(DataError, match="dataset tab: scattering needs images"):
        _scatter(table)
