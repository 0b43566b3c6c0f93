"""The inference scenario's digit split: the clinic's held-out digits are never the
hospital's, and they reach the model in the form it was trained on."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from scenarios.inference.digits import HELD_OUT, model_input, split, write_held_out, write_train
from scenarios.mnist.prepare import IMAGES, digits_28x28
from sealroom.data.loaders.idx import parse_idx


def test_held_out_digits_are_the_last_300_and_never_in_the_training_files(tmp_path: Path) -> None:
    images, labels = digits_28x28()
    (train_x, train_y), (held_x, held_y) = split()
    assert len(held_x) == HELD_OUT and len(train_x) + len(held_x) == len(images)
    assert np.array_equal(np.concatenate([train_x, held_x]), images)
    assert np.array_equal(np.concatenate([train_y, held_y]), labels)
    write_train(tmp_path / "hospital")
    raw = gzip.decompress((tmp_path / "hospital" / f"{IMAGES}.gz").read_bytes())
    sealed = parse_idx(raw, IMAGES, 3)
    assert np.array_equal(sealed, train_x)  # exactly the training part, nothing held out
    write_held_out(tmp_path / "clinic")
    clinic = np.load(tmp_path / "clinic" / "images.npy", allow_pickle=False)
    assert clinic.shape == (HELD_OUT, 1, 28, 28) and clinic.dtype == np.float32
    assert np.array_equal(clinic, model_input(held_x))
    assert clinic.min() >= 0.0 and clinic.max() <= 1.0
