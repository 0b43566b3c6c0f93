"""Hostile bytes: every loader either loads or refuses with a DataError, never another exception.

The room treats any other exception as a crash; a provider's corrupt file must
instead end the run with one clear line.
"""

from __future__ import annotations

import contextlib
import gzip
import io

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sealroom.data import MemoryTree, load_dataset
from sealroom.data.loaders.idx import idx_bytes
from sealroom.data.nifti import nifti_bytes, read_nifti
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _h5() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.create_dataset("features", data=np.ones((4, 5, 5), np.float32))
        handle.create_dataset("targets", data=np.zeros(4, np.int64))
    return buffer.getvalue()


VALID = {
    "idx": (
        {"images": "i", "labels": "l"},
        {
            "i": gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8))),
            "l": idx_bytes(np.zeros(3, np.uint8)),
        },
        "i",
    ),
    "hdf5": ({"file": "d.h5"}, {"d.h5": _h5()}, "d.h5"),
    "image_folder": (
        {},
        {"a/1.png": png(np.zeros((4, 4))), "b/1.png": png(np.ones((4, 4)))},
        "b/1.png",
    ),
    "table": ({"file": "t.csv", "target": "y"}, {"t.csv": b"a,b,y\n1,2,0\n3,4,1\n"}, "t.csv"),
}


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    mutated = bytearray(data[: max(0, len(data) - cut)])
    for position, value in flips:
        if mutated:
            mutated[position % len(mutated)] = value
    return bytes(mutated)


MUTATIONS = st.tuples(
    st.integers(0, 64), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(VALID)), mutation=MUTATIONS)
def test_corrupted_files_raise_only_data_errors(fmt: str, mutation: tuple[int, list]) -> None:
    source, files, target = VALID[fmt]
    files = {**files, target: _mutate(files[target], *mutation)}
    config = DatasetConfig.model_validate({"id": "d", "source": {"format": fmt, **source}})
    try:
        load_dataset(config, MemoryTree(files))
    except DataError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=40, deadline=None)
@given(mutation=MUTATIONS, compress=st.booleans())
def test_corrupted_nifti_raises_only_data_errors(
    mutation: tuple[int, list], compress: bool
) -> None:
    data = _mutate(nifti_bytes(np.ones((4, 4, 3), np.int16), compress=compress), *mutation)
    with contextlib.suppress(DataError):
        read_nifti(data, "v.nii.gz")
