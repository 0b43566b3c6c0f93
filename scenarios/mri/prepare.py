"""MRI scenario, provider side: BraTS patient folders -> one HDF5 file of 2-D axial slices.

Reads ``<patient>/<patient>_flair.nii.gz`` and ``<patient>_seg.nii.gz`` (``.nii`` and
``-`` separators too, as in BraTS 2023's ``-t2f``/``-seg``) with nibabel, normalises
each volume's intensities, binarises the tumour mask, keeps slices with tumour (plus a
configurable fraction without), optionally augments, and writes ``slices.h5`` with
``features`` [N, 1, H, W] float32, ``targets`` [N, 1, H, W] uint8 and ``groups``
(patient ids) for the pipeline's hdf5 loader (``groups_key: groups``).

    python -m scenarios.mri.prepare SRC_DIR OUT_DIR [--keep-empty 0.1] [--size 96 96]
"""

from __future__ import annotations

import argparse
import json
import posixpath
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sealroom.data.files import DirectoryTree, FileTree
from sealroom.data.nifti import (
    axial_slices,
    binarize_mask,
    normalize_volume,
    read_nifti,
    select_slices,
)
from sealroom.errors import DataError

OUTPUT_FILE = "slices.h5"


class PrepareConfig(BaseModel):
    """How a provider turns its volumes into training slices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: str = "flair"
    mask: str = "seg"
    axis: int = Field(2, ge=0, le=2)  # BraTS stores axial planes along the last axis
    normalization: Literal["percentile", "zscore"] = "percentile"
    mask_labels: tuple[int, ...] | None = None  # None: whole tumour (every label > 0)
    min_tumour_pixels: int = Field(1, ge=1)
    keep_empty_fraction: float = Field(0.0, ge=0.0, le=1.0)
    size: tuple[int, int] | None = None  # resize slices (bilinear / nearest for masks)
    augment_copies: int = Field(0, ge=0, le=8)  # extra randomly flipped/rotated copies per slice
    seed: int = 0


def _find(files: set[str], folder: str, patient: str, kind: str) -> str | None:
    for sep in ("_", "-"):
        for ext in (".nii.gz", ".nii"):
            path = posixpath.join(folder, f"{patient}{sep}{kind}{ext}")
            if path in files:
                return path
    return None


def find_patients(tree: FileTree, config: PrepareConfig) -> list[tuple[str, str, str]]:
    """(patient id, image path, mask path) for every ``<patient>/<patient>_<modality>`` folder."""
    files = {p for p in tree.list_files() if p.endswith((".nii", ".nii.gz"))}
    found = []
    for folder in sorted({posixpath.dirname(p) for p in files}):
        patient = posixpath.basename(folder)
        image = _find(files, folder, patient, config.modality)
        if image is None:
            continue
        mask = _find(files, folder, patient, config.mask)
        if mask is None:
            raise DataError(f"{folder}: has {posixpath.basename(image)} but no {config.mask} mask")
        found.append((patient, image, mask))
    if not found:
        raise DataError(f"no patient folders with <patient>_{config.modality}.nii[.gz] found")
    return found


def _resize(slices: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(slices[:, None].astype(np.float32))
    mode = "nearest" if nearest else "bilinear"
    out = F.interpolate(
        tensor, size=size, mode=mode, **({} if nearest else {"align_corners": False})
    )
    return out[:, 0].numpy()


def patient_slices(
    tree: FileTree, image: str, mask: str, config: PrepareConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One patient's selected slices: float32 images in [0, 1] and uint8 masks, both [K, H, W]."""
    volume = read_nifti(tree.read_bytes(image), image).data
    seg = read_nifti(tree.read_bytes(mask), mask).data
    if volume.shape != seg.shape:
        raise DataError(f"{mask}: shape {seg.shape} differs from {image} {volume.shape}")
    images = axial_slices(normalize_volume(volume, config.normalization), config.axis)
    masks = axial_slices(binarize_mask(seg, config.mask_labels), config.axis)
    keep = select_slices(masks, config.min_tumour_pixels, config.keep_empty_fraction, rng)
    images, masks = images[keep], masks[keep]
    if config.size is not None and len(keep):
        images = _resize(images, config.size, nearest=False)
        masks = _resize(masks, config.size, nearest=True).astype(np.uint8)
    return images.astype(np.float32), masks.astype(np.uint8)


def _augment(
    images: np.ndarray, masks: np.ndarray, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [images], [masks]
    square = images.shape[1] == images.shape[2]
    for _ in range(copies):
        flips = rng.random(len(images)) < 0.5
        turns = rng.integers(0, 4 if square else 1, size=len(images))
        x, y = images.copy(), masks.copy()
        for i in range(len(images)):
            if flips[i]:
                x[i], y[i] = x[i, :, ::-1], y[i, :, ::-1]
            x[i], y[i] = np.rot90(x[i], int(turns[i])), np.rot90(y[i], int(turns[i]))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def prepare(src_dir: Path, out_dir: Path, config: PrepareConfig | None = None) -> dict[str, object]:
    """Prepare one provider's patient folders into ``out_dir/slices.h5``; returns a summary."""
    config = config or PrepareConfig()
    tree = DirectoryTree(src_dir)
    rng = np.random.default_rng(config.seed)
    images, masks, groups = [], [], []
    for patient, image, mask in find_patients(tree, config):
        x, y = patient_slices(tree, image, mask, config, rng)
        if config.augment_copies:
            x, y = _augment(x, y, config.augment_copies, rng)
        images.append(x)
        masks.append(y)
        groups += [patient] * len(x)
    if not any(len(x) for x in images):
        raise DataError(f"{src_dir}: no slice has a tumour of >= {config.min_tumour_pixels} pixels")
    if len({x.shape[1:] for x in images if len(x)}) > 1:
        raise DataError(f"{src_dir}: patients have different slice sizes; set size")
    features = np.concatenate([x for x in images if len(x)])[:, None]
    targets = np.concatenate([y for y in masks if len(y)])[:, None]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / OUTPUT_FILE
    with h5py.File(path, "w", track_order=True) as handle:
        opts = {"compression": "gzip", "compression_opts": 4, "track_times": False}
        handle.create_dataset("features", data=features, chunks=(1, *features.shape[1:]), **opts)
        handle.create_dataset("targets", data=targets, chunks=(1, *targets.shape[1:]), **opts)
        handle.create_dataset(
            "groups", data=np.array(groups, dtype=object), dtype=h5py.string_dtype()
        )
        handle.attrs["prepare_config"] = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return {
        "file": str(path),
        "patients": len(set(groups)),
        "slices": len(features),
        "slice_shape": list(features.shape[1:]),
        "tumour_fraction": float(targets.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("src_dir", type=Path, help="folder of <patient>/ folders")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--modality", default="flair")
    parser.add_argument(
        "--keep-empty", type=float, default=0.0, help="fraction of tumour-free slices kept"
    )
    parser.add_argument("--min-tumour-pixels", type=int, default=1)
    parser.add_argument("--normalization", choices=["percentile", "zscore"], default="percentile")
    parser.add_argument("--size", type=int, nargs=2, default=None)
    parser.add_argument("--augment-copies", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = PrepareConfig(
        modality=args.modality,
        keep_empty_fraction=args.keep_empty,
        min_tumour_pixels=args.min_tumour_pixels,
        normalization=args.normalization,
        size=tuple(args.size) if args.size else None,
        augment_copies=args.augment_copies,
        seed=args.seed,
    )
    try:
        summary = prepare(args.src_dir, args.out_dir, config)
    except DataError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
