"""The BraTS-like generator: deterministic bytes, real folder layout, plausible tumours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sealroom.data.files import DirectoryTree
from sealroom.data.nifti import axial_slices, binarize_mask, read_nifti, select_slices
from sealroom.data.synthetic_mri import PROVIDERS, generate_patient, write_cohort

SHAPE = (40, 40, 20)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    tree = DirectoryTree(root)
    return {p: tree.read_bytes(p) for p in tree.list_files()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    write_cohort(tmp_path / "a", n_providers=2, patients_per_provider=1, seed=5, shape=SHAPE)
    write_cohort(tmp_path / "b", n_providers=2, patients_per_provider=1, seed=5, shape=SHAPE)
    write_cohort(tmp_path / "c", n_providers=2, patients_per_provider=1, seed=6, shape=SHAPE)
    first = _tree_bytes(tmp_path / "a")
    assert first == _tree_bytes(tmp_path / "b")
    assert first != _tree_bytes(tmp_path / "c")


def test_brats_folder_layout_and_disjoint_patients(tmp_path: Path) -> None:
    cohort = write_cohort(
        tmp_path, n_providers=3, patients_per_provider=2, shape=SHAPE, modalities=("flair", "t1")
    )
    assert list(cohort) == ["hospital_a", "hospital_b", "hospital_c"]
    ids = [pid for patients in cohort.values() for pid in patients]
    assert len(set(ids)) == len(ids) == 6
    files = DirectoryTree(tmp_path / "hospital_b").list_files()
    assert files[:3] == [
        "BraTS_B_001/BraTS_B_001_flair.nii.gz",
        "BraTS_B_001/BraTS_B_001_seg.nii.gz",
        "BraTS_B_001/BraTS_B_001_t1.nii.gz",
    ]
    flair = read_nifti((tmp_path / "hospital_b" / files[0]).read_bytes(), files[0])
    assert flair.data.shape == SHAPE


def test_tumour_is_brighter_on_flair_and_scanners_differ() -> None:
    means = []
    for provider in PROVIDERS[:3]:
        volumes = generate_patient(np.random.default_rng(1), provider.scanner, SHAPE)
        flair, seg = volumes["flair"].astype(np.float32), volumes["seg"]
        assert set(np.unique(seg)) <= {0, 1, 2, 4} and (seg > 0).any()
        brain = (flair > 0) & (seg == 0)
        assert flair[seg > 0].mean() > 1.3 * flair[brain].mean()
        means.append(flair[brain].mean())
    assert max(means) > 2 * min(means)  # intensity scale differs between hospitals


def test_slices_with_tumour_are_a_minority_that_the_filter_finds() -> None:
    volumes = generate_patient(np.random.default_rng(2), PROVIDERS[0].scanner, SHAPE)
    masks = axial_slices(binarize_mask(volumes["seg"]))
    kept = select_slices(masks)
    assert 0 < len(kept) < len(masks)
    assert all(masks[k].any() for k in kept)
