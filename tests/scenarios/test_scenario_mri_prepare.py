"""MRI scenario: generate hospitals, prepare each into HDF5 slices, load, join and split them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenarios.mri.generate import generate
from scenarios.mri.prepare import PrepareConfig, prepare
from sealroom.data import ArrayDataset, DirectoryTree, join_datasets, load_dataset, split_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig, JoinConfig, SplitConfig

SHAPE = (32, 32, 16)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    generate(root, providers=3, patients=3, seed=0, shape=SHAPE)
    return root


def _load(folder: Path, name: str) -> ArrayDataset:
    source = {"format": "hdf5", "file": "slices.h5", "groups_key": "groups"}
    return load_dataset(
        DatasetConfig.model_validate({"id": name, "source": source}), DirectoryTree(folder)
    )


def test_prepared_hospitals_join_and_split_by_patient(raw: Path, tmp_path: Path) -> None:
    datasets = []
    for hospital in ("hospital_a", "hospital_b", "hospital_c"):
        summary = prepare(raw / hospital, tmp_path / hospital)
        assert summary["patients"] == 3
        datasets.append(_load(tmp_path / hospital, hospital))
    joined = join_datasets(datasets, JoinConfig())
    assert joined.x.shape[1:] == (1, 32, 32) and joined.y.shape == joined.x.shape
    assert set(np.unique(joined.y)) == {0.0, 1.0}
    assert joined.x.min() >= 0.0 and joined.x.max() <= 1.0
    assert all(y.any() for y in joined.y)  # tumour-free slices were filtered out
    splits = split_dataset(joined, SplitConfig(train=0.6, val=0.2, test=0.2, group_by="patient"))
    parts = [
        set(s.groups.tolist())
        for s in (splits.train, splits.val, splits.test)
        if s.groups is not None
    ]
    assert len(parts) == 3 and not (
        parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]
    )


def test_keeping_empty_slices_resizing_and_augmenting(raw: Path, tmp_path: Path) -> None:
    base = prepare(raw / "hospital_a", tmp_path / "base")
    config = PrepareConfig(keep_empty_fraction=1.0, size=(24, 24), augment_copies=1)
    more = prepare(raw / "hospital_a", tmp_path / "more", config)
    assert more["slices"] == 2 * 3 * SHAPE[2]
    assert more["slice_shape"] == [1, 24, 24]
    assert base["slices"] != more["slices"]
    ds = _load(tmp_path / "more", "a")
    assert ds.y.shape == (2 * 3 * SHAPE[2], 1, 24, 24)


def test_patient_without_mask_is_named(raw: Path, tmp_path: Path) -> None:
    src = tmp_path / "src" / "BraTS_X_001"
    src.mkdir(parents=True)
    flair = raw / "hospital_a" / "BraTS_A_001" / "BraTS_A_001_flair.nii.gz"
    (src / "BraTS_X_001_flair.nii.gz").write_bytes(flair.read_bytes())
    with pytest.raises(
        DataError, match=r"BraTS_X_001: has BraTS_X_001_flair\.nii\.gz but no seg mask"
    ):
        prepare(tmp_path / "src", tmp_path / "out")


def test_folder_without_patients_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no patient folders"):
        prepare(tmp_path, tmp_path / "out")


def test_command_line_generate_then_prepare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scenarios.mri.generate import main as generate_main
    from scenarios.mri.prepare import main as prepare_main

    generate_main(
        [str(tmp_path / "raw"), "--providers", "1", "--patients", "2", "--shape", "24", "24", "8"]
    )
    prepare_main([str(tmp_path / "raw" / "hospital_a"), str(tmp_path / "out"), "--keep-empty", "1"])
    out = capsys.readouterr().out
    assert "hospital_a: 2 patients" in out and '"slices": 16' in out
    with pytest.raises(SystemExit, match=r"error: .*no patient folders"):
        prepare_main([str(tmp_path / "out"), str(tmp_path / "out2")])
