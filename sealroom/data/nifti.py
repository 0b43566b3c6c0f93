"""NIfTI volumes from bytes (nibabel, no temp files) and the slice preparation MRI providers need.

BraTS volumes are stored RAS with axial planes along the last axis, so an axial
slice is ``volume[:, :, k]``. Intensities differ between scanners, so each volume
is normalised on its own, over brain (non-zero) voxels only.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Literal

import nibabel as nib
import numpy as np

from sealroom.data.files import maybe_gunzip
from sealroom.errors import DataError

# 1 GiB of voxels is far above a BraTS volume (240x240x155 int16 ~ 18 MB).
MAX_NIFTI_BYTES = 1 << 30


@dataclass(frozen=True)
class Volume:
    data: np.ndarray  # float32, 3-D
    affine: np.ndarray  # 4x4 voxel-to-world


def read_nifti(data: bytes, name: str) -> Volume:
    """Decode a .nii or .nii.gz file held in memory into a 3-D float32 volume."""
    raw = maybe_gunzip(data, name, limit=MAX_NIFTI_BYTES)
    try:
        image = nib.Nifti1Image.from_bytes(raw)
        array = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise DataError(
            f"{name}: not a readable NIfTI-1 file ({' '.join(str(exc).split())[:160]})"
        ) from None
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DataError(f"{name}: expected a 3-D volume, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name}: volume contains NaN or infinite values")
    return Volume(data=array, affine=np.asarray(image.affine, dtype=np.float64))


def nifti_bytes(
    array: np.ndarray, affine: np.ndarray | None = None, compress: bool = True
) -> bytes:
    """Encode a volume as NIfTI-1 (.nii.gz when ``compress``); same input, same bytes."""
    image = nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine)
    image.header.set_data_dtype(np.asarray(array).dtype)
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


def normalize_volume(
    volume: np.ndarray,
    method: Literal["percentile", "zscore"] = "percentile",
    lower: float = 1.0,
    upper: float = 99.0,
) -> np.ndarray:
    """Per-volume intensity normalisation over brain voxels; background stays 0.

    ``percentile`` clips to the [lower, upper] percentiles and maps them to [0, 1];
    ``zscore`` subtracts the brain mean and divides by its standard deviation.
    """
    volume = volume.astype(np.float32)
    brain = volume > 0
    if not brain.any():
        return np.zeros_like(volume)
    values = volume[brain]
    if method == "zscore":
        std = float(values.std()) or 1.0
        out = (volume - float(values.mean())) / std
    else:
        lo, hi = np.percentile(values, [lower, upper])
        out = (np.clip(volume, lo, hi) - lo) / (float(hi - lo) or 1.0)
    return np.where(brain, out, 0.0).astype(np.float32)


def binarize_mask(segmentation: np.ndarray, labels: tuple[int, ...] | None = None) -> np.ndarray:
    """Whole-tumour mask as uint8 0/1: any label > 0, or only ``labels`` (BraTS: 1, 2, 4)."""
    seg = np.rint(segmentation).astype(np.int64)
    mask = np.isin(seg, labels) if labels else seg > 0
    return mask.astype(np.uint8)


def axial_slices(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """The 2-D slices of a 3-D volume along ``axis`` as ``[Z, H, W]``."""
    if volume.ndim != 3:
        raise DataError(f"expected a 3-D volume, got shape {volume.shape}")
    return np.moveaxis(volume, axis, 0)


def select_slices(
    masks: np.ndarray,
    min_tumour_pixels: int = 1,
    keep_empty_fraction: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of slices with at least ``min_tumour_pixels`` tumour pixels, plus a seeded
    fraction of the others (0 drops every tumour-free slice, 1 keeps them all)."""
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    tumour = areas >= max(min_tumour_pixels, 1)
    others = np.flatnonzero(~tumour)
    if keep_empty_fraction >= 1.0:
        kept = others
    elif keep_empty_fraction <= 0.0 or len(others) == 0:
        kept = others[:0]
    else:
        rng = rng or np.random.default_rng(0)
        kept = rng.choice(others, size=round(keep_empty_fraction * len(others)), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(tumour), kept]))
