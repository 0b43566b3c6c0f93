"""Image folders (one subfolder per class) and paired image/mask folders, decoded from bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sealroom.data import MemoryTree, load_dataset
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _folder_config(**source: object) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"id": "pets", "source": {"format": "image_folder", **source}}
    )


def _pairs_config(**source: object) -> DatasetConfig:
    base = {"format": "paired_masks", "images": "img", "masks": "msk"}
    return DatasetConfig.model_validate({"id": "seg", "source": {**base, **source}})


def test_image_folder_labels_from_sorted_subfolders() -> None:
    files = {
        "data/dog/1.png": png(np.full((6, 5), 255)),
        "data/cat/1.png": png(np.zeros((6, 5))),
        "data/cat/2.jpg.txt": b"not an image, ignored",
    }
    ds = load_dataset(_folder_config(root="data"), MemoryTree(files))
    assert ds.classes == ["cat", "dog"]
    assert ds.y.tolist() == [0, 1]
    assert ds.x.shape == (2, 1, 6, 5) and ds.x[1].max() == 1.0


def test_image_folder_rgb_and_resize() -> None:
    files = {"a/1.png": png(np.zeros((6, 5, 3))), "b/1.png": png(np.zeros((9, 9, 3)))}
    ds = load_dataset(_folder_config(grayscale=False, image_size=(4, 4)), MemoryTree(files))
    assert ds.x.shape == (2, 3, 4, 4)


def test_image_folder_size_mismatch_names_the_file() -> None:
    files = {"a/1.png": png(np.zeros((6, 5))), "b/odd.png": png(np.zeros((7, 5)))}
    with pytest.raises(DataError, match=r"^b/odd\.png: image shape"):
        load_dataset(_folder_config(), MemoryTree(files))


def test_corrupt_image_is_named() -> None:
    files = {"a/1.png": png(np.zeros((6, 5))), "b/bad.png": b"\x89PNG garbage"}
    with pytest.raises(DataError, match=r"^b/bad\.png: not a readable image"):
        load_dataset(_folder_config(), MemoryTree(files))


def test_image_outside_class_folder_is_refused() -> None:
    with pytest.raises(DataError, match=r"loose\.png: image is not inside a class subfolder"):
        load_dataset(_folder_config(), MemoryTree({"loose.png": png(np.zeros((4, 4)))}))


def test_paired_masks_match_by_name_and_binarise() -> None:
    image = np.arange(16).reshape(4, 4) * 10
    mask = np.zeros((4, 4))
    mask[1:3, 1:3] = 255
    files = {
        "img/b.png": png(image),
        "img/a.png": png(image),
        "msk/a_mask.png": png(mask),
        "msk/b.png": png(mask // 2),
    }
    ds = load_dataset(_pairs_config(), MemoryTree(files))
    assert ds.x.shape == ds.y.shape == (2, 1, 4, 4)
    assert set(np.unique(ds.y)) == {0.0, 1.0} and ds.y.sum() == 8


def test_unmatched_image_is_refused_clearly() -> None:
    files = {
        "img/a.png": png(np.zeros((4, 4))),
        "img/b.png": png(np.zeros((4, 4))),
        "msk/a.png": png(np.zeros((4, 4))),
    }
    with pytest.raises(DataError, match=r"^img/b\.png: no matching mask in msk"):
        load_dataset(_pairs_config(), MemoryTree(files))


def test_unmatched_mask_is_refused_clearly() -> None:
    files = {
        "img/a.png": png(np.zeros((4, 4))),
        "msk/a.png": png(np.zeros((4, 4))),
        "msk/z.png": png(np.zeros((4, 4))),
    }
    with pytest.raises(DataError, match=r"^msk/z\.png: no matching image in img"):
        load_dataset(_pairs_config(), MemoryTree(files))


def test_mask_of_other_size_is_refused() -> None:
    files = {"img/a.png": png(np.zeros((4, 4))), "msk/a.png": png(np.zeros((5, 4)))}
    with pytest.raises(DataError, match=r"^msk/a\.png: mask shape"):
        load_dataset(_pairs_config(), MemoryTree(files))
