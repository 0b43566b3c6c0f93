"""NIfTI from bytes, slice extraction and filtering, on hand-made and generated volumes."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sealroom.data.nifti import (
    axial_slices,
    binarize_mask,
    nifti_bytes,
    normalize_volume,
    read_nifti,
    select_slices,
)
from sealroom.errors import DataError


@settings(max_examples=20, deadline=None)
@given(
    volume=arrays(np.int16, st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))),
    compress=st.booleans(),
)
def test_round_trip(volume: np.ndarray, compress: bool) -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    read = read_nifti(nifti_bytes(volume, affine, compress), "v.nii.gz")
    assert np.array_equal(read.data, volume.astype(np.float32))
    assert np.allclose(read.affine, affine)


def test_encoding_is_deterministic() -> None:
    volume = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    assert nifti_bytes(volume) == nifti_bytes(volume)


def test_garbage_is_refused_naming_the_file() -> None:
    with pytest.raises(DataError, match=r"^p1_flair\.nii\.gz: not a readable NIfTI-1 file"):
        read_nifti(gzip.compress(b"\x00" * 400), "p1_flair.nii.gz")
    with pytest.raises(DataError, match=r"^p1_seg\.nii\.gz: truncated gzip"):
        read_nifti(nifti_bytes(np.zeros((4, 4, 4), np.int16))[:-20], "p1_seg.nii.gz")


def test_truncated_voxel_data_is_refused() -> None:
    raw = nifti_bytes(np.ones((8, 8, 8), np.int16), compress=False)
    with pytest.raises(DataError, match=r"^v\.nii: "):
        read_nifti(raw[:-100], "v.nii")


def test_2d_image_is_refused() -> None:
    with pytest.raises(DataError, match=r"v\.nii: expected a 3-D volume"):
        read_nifti(nifti_bytes(np.ones((4, 4), np.int16)), "v.nii")


def test_normalisation_is_per_volume_and_leaves_background() -> None:
    volume = np.zeros((10, 10, 4), np.float32)
    volume[2:8, 2:8] = np.linspace(100, 900, 36 * 4).reshape(6, 6, 4)
    for scale in (1.0, 7.5):
        out = normalize_volume(volume * scale)
        assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
        assert (out[volume == 0] == 0).all()
    z = normalize_volume(volume, "zscore")
    assert abs(float(z[volume > 0].mean())) < 1e-4


def test_mask_binarisation_and_label_choice() -> None:
    seg = np.array([0, 1, 2, 4, 0], dtype=np.float32).reshape(1, 1, 5)
    assert binarize_mask(seg).ravel().tolist() == [0, 1, 1, 1, 0]
    assert binarize_mask(seg, (1, 4)).ravel().tolist() == [0, 1, 0, 1, 0]


def test_axial_slices_and_tumour_filter() -> None:
    mask = np.zeros((4, 4, 6), np.uint8)
    mask[1, 1, 2] = 1
    mask[1:3, 1:3, 4] = 1
    slices = axial_slices(mask)
    assert slices.shape == (6, 4, 4)
    assert select_slices(slices).tolist() == [2, 4]
    assert select_slices(slices, min_tumour_pixels=2).tolist() == [4]
    assert select_slices(slices, keep_empty_fraction=1.0).tolist() == list(range(6))
    some = select_slices(slices, keep_empty_fraction=0.5, rng=np.random.default_rng(0))
    assert len(some) == 4 and {2, 4} <= set(some.tolist())
