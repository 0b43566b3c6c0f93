"""MNIST scenario prepare: scikit-learn digits as 28x28 MNIST-format IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scenarios.mnist.prepare import IMAGES, LABELS, prepare
from sealroom.data import DirectoryTree, load_dataset
from sealroom.pipeline.schema import DatasetConfig


def test_digits_load_through_the_idx_loader(tmp_path: Path) -> None:
    written = prepare(tmp_path)
    assert written["images"].name == f"{IMAGES}.gz"
    source = {"format": "idx", "images": f"{IMAGES}.gz", "labels": f"{LABELS}.gz"}
    ds = load_dataset(
        DatasetConfig.model_validate({"id": "digits", "source": source}), DirectoryTree(tmp_path)
    )
    assert ds.x.shape == (1797, 1, 28, 28)
    assert sorted(set(ds.y.tolist())) == list(range(10))
    assert ds.x[:, :, :4].max() == 0.0 and ds.x.max() > 0.9  # MNIST-like 4-pixel frame


def test_raw_files_and_determinism(tmp_path: Path) -> None:
    prepare(tmp_path / "a", compress=False)
    prepare(tmp_path / "b", compress=False)
    for name in (IMAGES, LABELS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    header = (tmp_path / "a" / IMAGES).read_bytes()[:16]
    assert np.frombuffer(header, ">u4").tolist() == [0x803, 1797, 28, 28]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scenarios.mnist.prepare import main

    main([str(tmp_path), "--no-gzip"])
    assert (
        tmp_path / IMAGES
    ).exists() and f"labels: {tmp_path / LABELS}" in capsys.readouterr().out
