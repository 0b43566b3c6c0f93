"""MRI slice preparation on volumes that are not from the generator: the loader is agnostic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenarios.mri.prepare import PrepareConfig, find_patients, prepare
from sealroom.data import DirectoryTree
from sealroom.data.nifti import nifti_bytes
from sealroom.errors import DataError

SHAPE = (16, 16, 6)


def _hand_made(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A cube of tissue with a brighter labelled block on slices 2-3: nothing like a brain."""
    volume = np.zeros(SHAPE, np.int16)
    volume[2:14, 2:14, :] = int(0.4 * scale)
    volume[5:9, 5:9, 2:4] = int(0.9 * scale)
    seg = np.zeros(SHAPE, np.uint8)
    seg[5:7, 5:9, 2:4] = 1
    seg[7:9, 5:9, 2:4] = 4
    return volume, seg


def _write(root: Path, patient: str, sep: str, modality: str, scale: float) -> None:
    volume, seg = _hand_made(scale)
    folder = root / patient
    folder.mkdir(parents=True)
    (folder / f"{patient}{sep}{modality}.nii.gz").write_bytes(nifti_bytes(volume))
    (folder / f"{patient}{sep}seg.nii").write_bytes(nifti_bytes(seg, compress=False))


def test_brats_2023_names_and_plain_nii_masks(tmp_path: Path) -> None:
    _write(tmp_path / "src", "BraTS-GLI-00000-000", "-", "t2f", 1000.0)
    summary = prepare(tmp_path / "src", tmp_path / "out", PrepareConfig(modality="t2f"))
    assert summary["patients"] == 1 and summary["slices"] == 2
    assert summary["slice_shape"] == [1, 16, 16]


def test_per_volume_normalisation_removes_the_scanner_scale(tmp_path: Path) -> None:
    _write(tmp_path / "low", "p1", "_", "flair", 300.0)
    _write(tmp_path / "high", "p2", "_", "flair", 3000.0)
    prepare(tmp_path / "low", tmp_path / "low_out")
    prepare(tmp_path / "high", tmp_path / "high_out")
    import h5py

    with (
        h5py.File(tmp_path / "low_out" / "slices.h5") as a,
        h5py.File(tmp_path / "high_out" / "slices.h5") as b,
    ):
        assert np.allclose(a["features"][:], b["features"][:], atol=0.02)
        assert a["targets"][:].max() == 1  # labels 1 and 4 both become tumour


def test_mask_labels_choose_the_tumour_region(tmp_path: Path) -> None:
    _write(tmp_path / "src", "p1", "_", "flair", 1000.0)
    whole = prepare(tmp_path / "src", tmp_path / "whole")
    core = prepare(tmp_path / "src", tmp_path / "core", PrepareConfig(mask_labels=(1,)))
    assert core["tumour_fraction"] == pytest.approx(whole["tumour_fraction"] / 2)  # type: ignore[operator]


def test_min_tumour_pixels_drops_small_tumour_slices(tmp_path: Path) -> None:
    _write(tmp_path / "src", "p1", "_", "flair", 1000.0)
    with pytest.raises(DataError, match="no slice has a tumour of >= 17 pixels"):
        prepare(tmp_path / "src", tmp_path / "out", PrepareConfig(min_tumour_pixels=17))


def test_mask_of_another_shape_is_refused_naming_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "p1"
    folder.mkdir(parents=True)
    (folder / "p1_flair.nii.gz").write_bytes(nifti_bytes(np.ones(SHAPE, np.int16)))
    (folder / "p1_seg.nii.gz").write_bytes(nifti_bytes(np.ones((16, 16, 5), np.uint8)))
    with pytest.raises(DataError, match=r"p1/p1_seg\.nii\.gz: shape .* differs from p1/p1_flair"):
        prepare(tmp_path / "src", tmp_path / "out")


def test_folders_without_the_modality_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "src", "p1", "_", "flair", 1000.0)
    _write(tmp_path / "src", "p2", "_", "t1", 1000.0)
    found = find_patients(DirectoryTree(tmp_path / "src"), PrepareConfig())
    assert [patient for patient, _, _ in found] == ["p1"]
