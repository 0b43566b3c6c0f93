"""The ``scattering`` transform: fixed ScatterNet features (kymatio) for DP training.

Tramèr & Boneh (2021, "Differentially private learning needs better features") show that
a linear model or a small CNN on the wavelet scattering transform of Mallat beats an
end-to-end CNN under DP-SGD. The scattering transform has no learned parameters and no
statistics of the data: each record's features are a fixed function of that record alone,
so the transform costs no privacy and may run on private data before training.

Normalisation. T&B normalise the features either with DP-estimated per-channel statistics
or with GroupNorm (27 groups, no affine). A dataset-fitted normalisation would need its own
privacy charge (and the room refuses dataset-fitted transforms under a privacy contract),
so ``normalize: group`` is the GroupNorm variant applied here, per record: each record's
81 channels are split into ``groups`` groups and every group is standardised with the
mean and variance of *that record's* coefficients. Record-local, data-independent, free.

    {name: scattering, params: {J: 2, L: 8, max_order: 2, normalize: group, groups: 27}}

turns ``[N, 1, 28, 28]`` images into ``[N, 81, 7, 7]`` features (81 = 1 + J·L + L²·J(J-1)/2).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.data.transforms import TRANSFORMS, Transform
from sealroom.errors import ConfigError, DataError

CHUNK = 256  # records per kymatio call: bounded memory, same result as one call
NORMALIZATIONS = ("none", "group")
GROUP_EPS = 1e-5  # torch.nn.GroupNorm's default epsilon


def scattering_channels(J: int, L: int, max_order: int) -> int:
    """Output channels per input channel: 1 + J·L (+ L²·J(J-1)/2 for order 2)."""
    return 1 + J * L + (L * L * J * (J - 1) // 2 if max_order == 2 else 0)


def _check_params(J: Any, L: Any, max_order: Any, normalize: Any, groups: Any) -> None:
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(J) or not 1 <= J <= 6:
        raise ConfigError(f"transform scattering: J must be an integer within 1..6, got {J!r}")
    if not whole(L) or not 1 <= L <= 16:
        raise ConfigError(f"transform scattering: L must be an integer within 1..16, got {L!r}")
    if max_order not in (1, 2) or not whole(max_order):
        raise ConfigError(f"transform scattering: max_order must be 1 or 2, got {max_order!r}")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(
            f"transform scattering: normalize must be one of {list(NORMALIZATIONS)}, "
            f"got {normalize!r}"
        )
    channels = scattering_channels(J, L, max_order)
    if normalize == "group" and (not whole(groups) or groups < 1 or channels % groups):
        raise ConfigError(
            f"transform scattering: groups must divide the {channels} scattering channels, "
            f"got {groups!r}"
        )


def group_normalize(features: np.ndarray, groups: int) -> np.ndarray:
    """GroupNorm without affine, per record: ``[N, C, H, W]`` → same shape, float32."""
    n, c, h, w = features.shape
    grouped = features.reshape(n, groups, -1).astype(np.float64)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    return ((grouped - mean) / np.sqrt(var + GROUP_EPS)).astype(np.float32).reshape(n, c, h, w)


def scatter_images(
    images: np.ndarray, J: int = 2, L: int = 8, max_order: int = 2, chunk: int = CHUNK
) -> np.ndarray:
    """Scattering coefficients of ``[N, C, H, W]`` float images → ``[N, C·K, H/2^J, W/2^J]``.

    Computed in chunks of ``chunk`` records with torch, no autograd; each record's output
    depends only on that record (the transform is a fixed filter bank applied per image).
    """
    import torch

    n, c, h, w = images.shape
    if h % 2**J or w % 2**J:
        raise DataError(f"scattering: images {h}×{w} are not divisible by 2^J = {2**J}")
    scattering = _filter_bank(J, L, max_order, h, w)
    k = scattering_channels(J, L, max_order)
    out = np.empty((n, c * k, h >> J, w >> J), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, chunk):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
            coeffs = scattering(batch.to(torch.float32))  # [B, C, K, H', W']
            out[start : start + len(batch)] = coeffs.reshape(len(batch), c * k, *coeffs.shape[-2:])
    return out


@functools.lru_cache(maxsize=4)
def _filter_bank(J: int, L: int, max_order: int, h: int, w: int) -> Any:
    """The kymatio module for one shape (building its filters takes about a second)."""
    # kymatio.torch.Scattering2D is this class; kymatio.torch also imports the 3-D
    # frontend, whose scipy.special.sph_harm is gone from SciPy >= 1.15.
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D as Scattering2D

    return Scattering2D(J=J, shape=(h, w), L=L, max_order=max_order)


@TRANSFORMS.register("scattering")
def scattering(
    J: int = 2, L: int = 8, max_order: int = 2, normalize: str = "group", groups: int = 27
) -> Transform:
    """ScatterNet features of images; ``normalize: group`` standardises each record's groups."""
    _check_params(J, L, max_order, normalize, groups)

    def apply(ds: ArrayDataset) -> ArrayDataset:
        if ds.x.ndim != 4:
            raise DataError(
                f"dataset {ds.name}: scattering needs images [N, C, H, W], got {ds.x.shape}"
            )
        if ds.is_segmentation:
            raise DataError(f"dataset {ds.name}: scattering does not apply to mask targets")
        features = scatter_images(ds.x.astype(np.float32), J=J, L=L, max_order=max_order)
        if normalize == "group":
            features = group_normalize(features, groups)
        return ds.with_arrays(x=features)

    return apply
