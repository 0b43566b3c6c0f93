"""Image files decoded with Pillow from bytes: class folders and segmentation image/mask pairs."""

from __future__ import annotations

import io
import posixpath

import numpy as np
from PIL import Image

from sealroom.data.dataset import ArrayDataset
from sealroom.data.files import FileTree
from sealroom.data.loaders.base import IMAGE_SUFFIXES, LOADERS
from sealroom.errors import DataError
from sealroom.pipeline.schema import ImageFolderSource, PairedMaskSource

# Refuse decompression bombs instead of warning: a provider file must not exhaust the room.
MAX_PIXELS = 64_000_000
MASK_SUFFIXES = ("_mask", "_seg", "_label")


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def decode_image(
    data: bytes,
    name: str,
    mode: str,
    size: tuple[int, int] | None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> np.ndarray:
    """Decode to ``[C, H, W]`` (C=1 for "L", 3 for "RGB"), resized to ``size`` (H, W) if given."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DataError(f"{name}: image of {img.width}x{img.height} pixels is too large")
            converted = img.convert(mode)
            if size is not None and (converted.height, converted.width) != tuple(size):
                converted = converted.resize((size[1], size[0]), resample)
            array = np.asarray(converted)
    except DataError:
        raise
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, EOFError, ...
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{name}: not a readable image ({detail})") from None
    return array[None] if array.ndim == 2 else np.transpose(array, (2, 0, 1))


def _stack(arrays: list[np.ndarray], names: list[str], what: str) -> np.ndarray:
    """Stack same-shaped samples; a differing one is named (set image_size to resize)."""
    first = arrays[0].shape
    for array, name in zip(arrays, names, strict=True):
        if array.shape != first:
            raise DataError(
                f"{name}: {what} shape {array.shape} differs from {names[0]} {first}; "
                "set image_size"
            )
    return np.stack(arrays)


@LOADERS.register("image_folder")
def load_image_folder(source: ImageFolderSource, tree: FileTree, name: str) -> ArrayDataset:
    root = posixpath.normpath(source.root)
    root_prefix = "" if root == "." else root + "/"
    files = [p for p in tree.list_files(source.root) if is_image(p)]
    per_class: dict[str, list[str]] = {}
    for path in files:
        rel = path[len(root_prefix) :]
        if "/" not in rel:
            raise DataError(f"{path}: image is not inside a class subfolder of {source.root}")
        per_class.setdefault(rel.split("/", 1)[0], []).append(path)
    if not per_class:
        raise DataError(f"{source.root}: no images found in class subfolders")
    classes = sorted(per_class)
    mode = "L" if source.grayscale else "RGB"
    arrays, names, labels = [], [], []
    for label, cls in enumerate(classes):
        for path in per_class[cls]:
            arrays.append(decode_image(tree.read_bytes(path), path, mode, source.image_size))
            names.append(path)
            labels.append(label)
    x = _stack(arrays, names, "image").astype(np.float32) / np.float32(255.0)
    return ArrayDataset(x=x, y=np.array(labels, dtype=np.int64), name=name, classes=classes)


def _stem(path: str, strip_mask_suffix: bool) -> str:
    stem = posixpath.splitext(posixpath.basename(path))[0]
    if strip_mask_suffix:
        for suffix in MASK_SUFFIXES:
            if stem.endswith(suffix):
                return stem[: -len(suffix)]
    return stem


def _index(tree: FileTree, folder: str, masks: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in tree.list_files(folder):
        if not is_image(path):
            continue
        key = _stem(path, masks)
        if key in found:
            raise DataError(f"{path}: same name as {found[key]}; cannot pair images with masks")
        found[key] = path
    if not found:
        raise DataError(f"{folder}: no images found")
    return found


@LOADERS.register("paired_masks")
def load_paired_masks(source: PairedMaskSource, tree: FileTree, name: str) -> ArrayDataset:
    """``images/a.png`` pairs with ``masks/a.png`` (or ``a_mask.png``); masks become 0/1 (> 0)."""
    images = _index(tree, source.images, masks=False)
    masks = _index(tree, source.masks, masks=True)
    for key, path in images.items():
        if key not in masks:
            raise DataError(f"{path}: no matching mask in {source.masks}")
    for key, path in masks.items():
        if key not in images:
            raise DataError(f"{path}: no matching image in {source.images}")
    keys = sorted(images)
    xs, ys = [], []
    for key in keys:
        image = decode_image(tree.read_bytes(images[key]), images[key], "L", source.image_size)
        mask = decode_image(
            tree.read_bytes(masks[key]),
            masks[key],
            "L",
            source.image_size,
            Image.Resampling.NEAREST,
        )
        if mask.shape != image.shape:
            raise DataError(
                f"{masks[key]}: mask shape {mask.shape} differs from image {image.shape}"
            )
        xs.append(image)
        ys.append(mask)
    names = [images[k] for k in keys]
    x = _stack(xs, names, "image").astype(np.float32) / np.float32(255.0)
    y = (_stack(ys, [masks[k] for k in keys], "mask") > 0).astype(np.float32)
    return ArrayDataset(x=x, y=y, name=name)
