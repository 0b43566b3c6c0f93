"""The in-memory values built-in tasks hand each other inside one job, and npz helpers.

Between jobs only artifacts travel (ONNX, npz, json, ...); inside a job, steps pass
these plain containers. npz files are written with ``np.savez`` and read with
``allow_pickle=False``: an object array in a received file is refused, never unpickled.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.registry import InputFile

if TYPE_CHECKING:
    from torch import nn

MAX_NPZ_BYTES = 1 << 31  # the arrays of one npz, uncompressed


@dataclass(frozen=True)
class LabData:
    """A train/test split: images float32 NCHW in [0, 1], labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    shape: tuple[int, int, int]  # C, H, W of one image
    name: str


@dataclass(frozen=True)
class LabModel:
    """A runnable torch classifier (eval mode) with what it expects and what it outputs."""

    module: nn.Module  # torch is imported only by the tasks that run models
    arch: str  # registry name, or "onnx" for a model read back from an artifact
    input_shape: tuple[int, int, int]
    num_classes: int


def npz_blob(name: str, filename: str, arrays: dict[str, np.ndarray]) -> ArtifactBlob:
    """Arrays as an npz artifact (``np.savez`` into memory; no object arrays)."""
    for key, array in arrays.items():
        if array.dtype == object:
            raise LabError(
                f"{filename}: array {key} holds Python objects; npz artifacts hold numbers"
            )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # str keys are what savez takes
    return ArtifactBlob(name=name, kind="npz", filename=filename, data=buffer.getvalue())


def read_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    """An npz file's arrays, refusing pickled content; errors name ``where``."""
    try:
        # np.savez_compressed files inflate: bound what the members claim before reading
        # (zipfile then reads no member past its claimed size).
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
        if max(total, len(data)) > MAX_NPZ_BYTES:
            raise LabError(f"{where}: npz arrays of {total:,} bytes are over {MAX_NPZ_BYTES:,}")
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}
    except LabError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise LabError(f"{where}: the npz file holds pickled objects; refused") from None
        raise LabError(f"{where}: not a readable npz file ({str(exc)[:120]})") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError on damaged files
        raise LabError(f"{where}: not a readable npz file ({type(exc).__name__})") from None


def input_bytes(value: Any, kind: str, where: str) -> bytes:
    """The bytes of an artifact given as an InputFile (another job's) or an ArtifactBlob
    (an earlier step's), checking that it is of ``kind``."""
    if isinstance(value, InputFile):
        if value.kind != kind:
            raise LabError(f"{where}: artifact {value.name} is {value.kind}, not {kind}")
        return value.path.read_bytes()
    if isinstance(value, ArtifactBlob):
        if value.kind != kind:
            raise LabError(f"{where}: artifact {value.name} is {value.kind}, not {kind}")
        return value.data
    raise LabError(f"{where}: expected a {kind} artifact, got {type(value).__name__}")


def json_blob(name: str, filename: str, value: Any) -> ArtifactBlob:
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    return ArtifactBlob(name=name, kind="json", filename=filename, data=text.encode())
