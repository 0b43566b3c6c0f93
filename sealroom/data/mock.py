"""Mock data: files a pipeline can read, drawn from a data card alone.

A consumer cannot see a sealed dataset, but its provider's card says what a record looks
like: the sources (as a pipeline's ``source:`` blocks, so the file names), one record's
shape, dtype and declared value range, the label names. :func:`mock_files` writes files
in the card's formats under the card's names, so the consumer's pipeline reads them with
the same loaders the room uses. Values are uniform within the *declared* range (the
dtype's range where none is declared; [0, 1] for floats), labels uniform over the class
names, masks uniform class ids: the input is the card and the mock seed only, never a real
file, so a mock reveals nothing the card does not already say.

A card describes records either as the loader yields them (the card builder's form: MNIST
is float32 ``[1, 28, 28]`` in [0, 1]) or as the file stores them (uint8 ``[28, 28]`` in
0..255). Both are written so that loading them gives such records: float values within
[0, 1] become uint8 pixels (every loader scales uint8 pixels by 1/255), integer values are
stored as they are.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from sealroom.errors import DataError
from sealroom.pipeline.card import ArraySpec, CardSource, DataCard, TargetSpec, ValueRange

MAX_MOCK_BYTES = 1 << 30  # values one source may need: a card cannot make the mock exhaust memory
MOCK_FOLDER_MODE = 0o700


class MockError(DataError):
    """The card offers no mock, or describes a source that cannot be mocked."""


def where(card: DataCard, source: CardSource) -> str:
    """How a message names a source: ``dataset mnist, source train (idx)``."""
    return f"dataset {card.dataset}, source {source.name} ({source.source.format})"


def mock_records(card: DataCard, source: CardSource) -> int:
    """Records to mock for ``source``: the mock spec's count, else the card's (at least 1)."""
    spec = card.mock
    wanted = spec.records if spec is not None and spec.records is not None else source.records
    return max(1, wanted)


def source_rng(card: DataCard, source: CardSource) -> np.random.Generator:
    """A generator seeded by the mock seed and the source's name (not its position), so
    one source's mock does not change when the provider adds another."""
    seed = 0 if card.mock is None else card.mock.seed
    digest = hashlib.sha256(f"{card.dataset}\0{source.name}\0{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


# ------------------------------------------------------------------ values


def is_float(dtype: str) -> bool:
    return dtype.startswith("float")


def pixel_bounds(spec: ArraySpec | TargetSpec, what: str) -> tuple[int, int]:
    """0..255 bounds of the uint8 pixels that load as ``spec``'s values, or MockError.

    Float values within [0, 1] are pixels scaled by 1/255; integer values are pixels as
    they are, and must lie within 0..255.
    """
    low, high = (spec.range.min, spec.range.max) if spec.range else (None, None)
    if is_float(spec.dtype):
        low, high = (0.0 if low is None else low), (1.0 if high is None else high)
        if low < 0 or high > 1:
            raise MockError(
                f"{what}: values in [{low:g}, {high:g}] cannot be stored as image pixels "
                "(float pixels load in [0, 1]); declare a range within [0, 1]"
            )
        bounds = math.ceil(low * 255), math.floor(high * 255)
    else:
        bounds = (0 if low is None else math.ceil(low)), (255 if high is None else math.floor(high))
        if bounds[0] < 0 or bounds[1] > 255:
            raise MockError(
                f"{what}: integer values in [{bounds[0]}, {bounds[1]}] do not fit image pixels "
                "(0..255); declare a range within 0..255"
            )
    if bounds[0] > bounds[1]:
        raise MockError(f"{what}: the declared range holds no pixel value")
    return bounds


def pixels(
    spec: ArraySpec, shape: tuple[int, ...], rng: np.random.Generator, what: str
) -> np.ndarray:
    """uint8 pixels, uniform in the bounds that load as the declared range."""
    low, high = pixel_bounds(spec, what)
    return rng.integers(low, high + 1, size=shape, dtype=np.uint8)


def stores_as_pixels(spec: ArraySpec) -> bool:
    """Float values declared within [0, 1] (or without a range) are written as uint8 pixels."""
    if spec.dtype == "uint8":
        return True
    if not is_float(spec.dtype):
        return False
    return spec.range is None or (spec.range.min >= 0 and spec.range.max <= 1)


def values(
    dtype: str,
    declared: ValueRange | None,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    what: str,
) -> np.ndarray:
    """Uniform values of ``dtype`` within the ``declared`` range, else the dtype's range
    (floats: [0, 1])."""
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if is_float(dtype):
        low, high = (declared.min, declared.max) if declared is not None else (0.0, 1.0)
        return rng.uniform(low, high, size=shape).astype(dtype)
    info = np.iinfo(np.dtype(dtype))
    low_i = info.min if declared is None else max(info.min, math.ceil(declared.min))
    high_i = info.max if declared is None else min(info.max, math.floor(declared.max))
    if low_i > high_i:
        raise MockError(f"{what}: the declared range holds no {dtype} value")
    return rng.integers(low_i, high_i, size=shape, dtype=np.dtype(dtype), endpoint=True)


def features(spec: ArraySpec, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """``n`` records of ``spec``: uint8 pixels when they load as declared, else the dtype."""
    shape = (n, *spec.shape)
    if stores_as_pixels(spec):
        return pixels(spec, shape, rng, what)
    return values(spec.dtype, spec.range, shape, rng, what)


def class_ids(target: TargetSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Class ids uniform over the card's class names (index = class id)."""
    return rng.integers(0, len(target.classes or ["0", "1"]), size=shape, dtype=np.int64)


def check_size(card: DataCard, source: CardSource, n: int) -> None:
    """MockError before allocating when the mock of ``source`` would pass MAX_MOCK_BYTES."""
    per_record = math.prod(source.features.shape) * 8
    if source.target is not None:
        per_record += math.prod(source.target.shape) * 8
    if n * per_record > MAX_MOCK_BYTES:
        raise MockError(
            f"{where(card, source)}: a mock of {n:,} records of shape {source.features.shape} "
            f"needs more than {MAX_MOCK_BYTES >> 20} MiB; generate fewer (mock.records)"
        )


# ------------------------------------------------------------------ files


def mock_files(card: DataCard) -> dict[str, bytes]:
    """Every file the card's sources read, as mock bytes by package path.

    Only the card is read. MockError when the provider offers no mock (``mock:`` unset) or
    a source cannot be mocked (named, with why).
    """
    from sealroom.data.mock_formats import ENCODERS

    if card.mock is None:
        raise MockError(
            f"dataset {card.dataset}: its card offers no mock data (the provider set no `mock:`)"
        )
    files: dict[str, bytes] = {}
    for source in card.sources:
        n = mock_records(card, source)
        check_size(card, source, n)
        encode = ENCODERS[source.source.format]
        for path, data in encode(card, source, n, source_rng(card, source)).items():
            if path in files:
                raise MockError(f"{where(card, source)}: file {path!r} is also another source's")
            files[path] = data
    return files


def write_mock(card: DataCard, out: Path) -> list[str]:
    """Write the card's mock files under ``out`` (a new or empty folder, made 0700); their paths.

    Nothing is written unless every source could be mocked.
    """
    from sealroom.data.files import normalize_relpath
    from sealroom.files import write_atomic

    files = mock_files(card)
    out.mkdir(mode=MOCK_FOLDER_MODE, parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise MockError(f"{out}: not empty; mock data go to a new or empty folder")
    os.chmod(out, MOCK_FOLDER_MODE)
    root = out.resolve()
    for name in sorted(files):
        path = (root / normalize_relpath(name)).resolve()
        if not path.is_relative_to(root):
            raise MockError(f"mock file {name!r} leaves {out}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, files[name])
    return sorted(files)
