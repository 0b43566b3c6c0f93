"""TRANSFORMS: allow-listed, deterministic dataset transforms named by configs.

A config entry ``{name: resize, params: {size: [64, 64]}}`` reaches code only
through this registry: ``TRANSFORMS.get(name)(**params)`` builds a function from
one ArrayDataset to another. Random augmentations take a ``seed`` so a pipeline
loads the same data every run; segmentation masks move with their images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sealroom.data.dataset import ArrayDataset
from sealroom.errors import ConfigError, DataError
from sealroom.pipeline.registry import Registry
from sealroom.pipeline.schema import Component

Transform = Callable[[ArrayDataset], ArrayDataset]
TRANSFORMS: Registry[Callable[..., Transform]] = Registry("transform")


# Transforms that compute statistics across records (fitted to the dataset), and the
# parameters that make them so. Every other registered transform is record-local: a
# record's output depends on that record (and a seeded position) only. Under privacy a
# fitted statistic would reach the model and every output unnoised, so it is refused.
FITTED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "normalize": lambda p: p.get("mean") is None or p.get("std") is None,
    "scale_intensity": lambda p: p.get("per_sample", True) is False,
}


def is_fitted(component: Component) -> bool:
    """Whether ``component`` computes statistics across the records it transforms."""
    fitted = FITTED.get(component.name)
    return fitted is not None and fitted(dict(component.params))


def check_record_local(components: Sequence[Component], where: str = "transforms") -> None:
    """Under privacy: refuse a transform fitted to the dataset (ConfigError naming it)."""
    for i, component in enumerate(components):
        if is_fitted(component):
            raise ConfigError(
                f"{where}[{i}]: transform {component.name!r} computes statistics across "
                "records, which a private run cannot release unnoised; give its constants "
                "(normalize: mean and std; scale_intensity: per_sample true)"
            )


def build_transform(component: Component, where: str = "") -> Transform:
    """Instantiate one registered transform; a wrong parameter is a ConfigError naming it."""
    factory = TRANSFORMS.get(component.name, where=where)
    try:
        return factory(**component.params)
    except TypeError as exc:
        raise ConfigError(f"{where}: transform {component.name!r}: {exc}") from None


def apply_transforms(
    dataset: ArrayDataset, components: Sequence[Component], where: str = ""
) -> ArrayDataset:
    for i, component in enumerate(components):
        dataset = build_transform(component, where=f"{where}[{i}]")(dataset)
    return dataset


def _need_images(ds: ArrayDataset, what: str) -> None:
    if ds.x.ndim != 4:
        raise DataError(f"dataset {ds.name}: {what} needs images [N, C, H, W], got {ds.x.shape}")


def _per_channel(value: Any, channels: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32).reshape(-1)
    if array.size not in (1, channels):
        raise ConfigError(
            f"transform normalize: {name} needs 1 or {channels} values, got {array.size}"
        )
    return np.broadcast_to(array, (channels,)).copy()


@TRANSFORMS.register("to_float")
def to_float(scale: float = 1.0) -> Transform:
    """Cast features to float32, multiplied by ``scale`` (e.g. 1/255 for raw pixel values)."""
    return lambda ds: ds.with_arrays(x=ds.x.astype(np.float32) * np.float32(scale))


@TRANSFORMS.register("scale_intensity")
def scale_intensity(minv: float = 0.0, maxv: float = 1.0, per_sample: bool = True) -> Transform:
    """Min-max rescale features to [minv, maxv], per sample (default) or over the whole dataset."""
    if maxv <= minv:
        raise ConfigError("transform scale_intensity: maxv must exceed minv")

    def apply(ds: ArrayDataset) -> ArrayDataset:
        x = ds.x.astype(np.float32)
        axes = tuple(range(1, x.ndim)) if per_sample else None
        lo = x.min(axis=axes, keepdims=True) if len(x) else np.float32(0)
        hi = x.max(axis=axes, keepdims=True) if len(x) else np.float32(1)
        span = np.where(hi > lo, hi - lo, np.float32(1))
        return ds.with_arrays(x=((x - lo) / span * (maxv - minv) + minv).astype(np.float32))

    return apply


@TRANSFORMS.register("normalize")
def normalize(
    mean: float | list[float] | None = None, std: float | list[float] | None = None
) -> Transform:
    """(x - mean) / std per channel (or column); statistics from the dataset when not given."""

    def apply(ds: ArrayDataset) -> ArrayDataset:
        x = ds.x.astype(np.float32)
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        channels = x.shape[1]
        m = x.mean(axis=axes) if mean is None else _per_channel(mean, channels, "mean")
        s = x.std(axis=axes) if std is None else _per_channel(std, channels, "std")
        s = np.where(s > 0, s, np.float32(1)).astype(np.float32)
        shape = (1, channels, 1, 1) if x.ndim == 4 else (1, channels)
        return ds.with_arrays(x=((x - m.reshape(shape)) / s.reshape(shape)).astype(np.float32))

    return apply


@TRANSFORMS.register("standardize")
def standardize() -> Transform:
    """Zero mean, unit variance per sample (scanner-independent intensities)."""

    def apply(ds: ArrayDataset) -> ArrayDataset:
        x = ds.x.astype(np.float32)
        axes = tuple(range(1, x.ndim))
        m = x.mean(axis=axes, keepdims=True)
        s = x.std(axis=axes, keepdims=True)
        return ds.with_arrays(x=((x - m) / np.where(s > 0, s, 1)).astype(np.float32))

    return apply


@TRANSFORMS.register("clip")
def clip(minv: float = 0.0, maxv: float = 1.0) -> Transform:
    return lambda ds: ds.with_arrays(x=np.clip(ds.x, minv, maxv).astype(np.float32))


@TRANSFORMS.register("binarize_mask")
def binarize_mask(threshold: float = 0.5) -> Transform:
    """Segmentation targets become exactly 0/1 (after a resize, say)."""

    def apply(ds: ArrayDataset) -> ArrayDataset:
        if not ds.is_segmentation:
            raise DataError(f"dataset {ds.name}: binarize_mask needs mask targets")
        return ds.with_arrays(y=(ds.y > threshold).astype(np.float32))

    return apply


@TRANSFORMS.register("resize")
def resize(size: list[int]) -> Transform:
    """Resize images to ``size`` [H, W] (bilinear); masks use nearest so they stay binary."""
    if len(size) != 2 or min(size) < 1 or max(size) > 4096:
        raise ConfigError(f"transform resize: size must be [H, W] within 1..4096, got {size}")
    target = (int(size[0]), int(size[1]))

    def apply(ds: ArrayDataset) -> ArrayDataset:
        import torch
        import torch.nn.functional as F

        _need_images(ds, "resize")
        if ds.x.shape[2:] == target:
            return ds
        x = F.interpolate(
            torch.from_numpy(ds.x.astype(np.float32)),
            size=target,
            mode="bilinear",
            align_corners=False,
        ).numpy()
        y = ds.y
        if ds.is_segmentation:
            y = F.interpolate(
                torch.from_numpy(ds.y.astype(np.float32)), size=target, mode="nearest"
            ).numpy()
        return ds.with_arrays(x=x, y=y)

    return apply


def _chosen(n: int, p: float, seed: int, what: str) -> tuple[np.random.Generator, np.ndarray]:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"transform {what}: p must be within [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    return rng, rng.random(n) < p


@TRANSFORMS.register("random_flip")
def random_flip(p: float = 0.5, axis: str = "horizontal", seed: int = 0) -> Transform:
    """Flip a seeded random fraction ``p`` of the samples (with their masks)."""
    axes = {"horizontal": (3,), "vertical": (2,), "both": (2, 3)}
    if axis not in axes:
        raise ConfigError(
            f"transform random_flip: axis must be one of {sorted(axes)}, got {axis!r}"
        )

    def apply(ds: ArrayDataset) -> ArrayDataset:
        _need_images(ds, "random_flip")
        _, chosen = _chosen(len(ds), p, seed, "random_flip")
        x, y = ds.x.copy(), ds.y.copy()
        x[chosen] = np.flip(x[chosen], axis=axes[axis])
        if ds.is_segmentation:
            y[chosen] = np.flip(y[chosen], axis=axes[axis])
        return ds.with_arrays(x=x, y=y)

    return apply


@TRANSFORMS.register("random_rotate90")
def random_rotate90(p: float = 0.5, seed: int = 0) -> Transform:
    """Rotate a seeded random fraction ``p`` of square samples by 90, 180 or 270 degrees."""

    def apply(ds: ArrayDataset) -> ArrayDataset:
        _need_images(ds, "random_rotate90")
        if ds.x.shape[2] != ds.x.shape[3]:
            raise DataError(
                f"dataset {ds.name}: random_rotate90 needs square images, got {ds.x.shape[2:]}"
            )
        rng, chosen = _chosen(len(ds), p, seed, "random_rotate90")
        turns = rng.integers(1, 4, size=len(ds))
        x, y = ds.x.copy(), ds.y.copy()
        for i in np.flatnonzero(chosen):
            x[i] = np.rot90(x[i], k=int(turns[i]), axes=(1, 2))
            if ds.is_segmentation:
                y[i] = np.rot90(y[i], k=int(turns[i]), axes=(1, 2))
        return ds.with_arrays(x=x, y=y)

    return apply
