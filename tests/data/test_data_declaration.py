"""Provider-declared splits: the schema, signature and pin, and the splits a declaration makes."""

from __future__ import annotations

import io
from typing import Any

import h5py
import numpy as np
import pytest

from sealroom.crypto.identity import Party
from sealroom.data import MemoryTree
from sealroom.data.declaration import (
    DatasetDeclaration,
    DeclarationError,
    SignedDeclaration,
    declaration_digest,
    load_declared_splits,
    load_signed_declaration,
    parse_declaration,
    save_declaration,
    sign_declaration,
    verify_declaration,
)
from sealroom.data.loaders.idx import idx_bytes
from sealroom.errors import DataError
from sealroom.pipeline.schema import DatasetConfig, JoinConfig

TRAIN = {"format": "idx", "images": "train-images", "labels": "train-labels"}
T10K = {"format": "idx", "images": "t10k-images", "labels": "t10k-labels"}


def idx_files(prefix: str, n: int, offset: int = 0) -> dict[str, bytes]:
    """``n`` 4×4 images whose first pixel numbers the record (offset + i), labels i % 10."""
    images = np.zeros((n, 4, 4), dtype=np.uint8)
    images[:, 0, 0] = (np.arange(n) + offset) % 256
    images[:, 0, 1] = (np.arange(n) + offset) // 256
    labels = (np.arange(n) % 10).astype(np.uint8)
    return {f"{prefix}-images": idx_bytes(images), f"{prefix}-labels": idx_bytes(labels)}


def record_ids(x: np.ndarray) -> set[int]:
    pixels = np.rint(x[:, 0, 0, :2] * 255).astype(int)
    return set((pixels[:, 0] + 256 * pixels[:, 1]).tolist())


def declaration(**fields: Any) -> DatasetDeclaration:
    doc: dict[str, Any] = {
        "dataset": "mnist",
        "train": {"source": TRAIN},
        "test": {"fraction": 0.2},
        "val": {"fraction": 0.1},
        "seed": 7,
        "min_size": 10,
    }
    doc.update(fields)
    return parse_declaration(doc, "declaration.yaml")


def config(source: dict[str, str] = TRAIN, dataset: str = "mnist") -> DatasetConfig:
    return DatasetConfig.model_validate({"id": dataset, "source": source})


def split(decl: DatasetDeclaration, tree: MemoryTree, cfg: DatasetConfig | None = None) -> Any:
    return load_declared_splits(
        {decl.dataset: decl},
        [cfg or config(dataset=decl.dataset)],
        JoinConfig(),
        {decl.dataset: tree},
    )


# ----------------------------------------------------------------- the splits


def test_fraction_split_follows_the_provider_fractions_and_seed() -> None:
    tree = MemoryTree(idx_files("train", 200))
    splits = split(declaration(), tree)
    assert splits.sizes() == {"train": 140, "val": 20, "test": 40}
    ids = [record_ids(p.x) for p in splits.parts().values()]
    assert ids[0] | ids[1] | ids[2] == set(range(200))
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split(declaration(), tree)
    assert record_ids(again.test.x) == ids[2]  # the provider's seed, not the consumer's
    other = split(declaration(seed=8), tree)
    assert record_ids(other.test.x) != ids[2]


def test_file_split_holds_out_the_declared_file_whole() -> None:
    tree = MemoryTree({**idx_files("train", 100), **idx_files("t10k", 30, offset=1000)})
    splits = split(declaration(test={"source": T10K}, min_size=5), tree)
    assert splits.sizes() == {"train": 90, "val": 10, "test": 30}
    assert record_ids(splits.test.x) == set(range(1000, 1030))
    assert record_ids(splits.train.x) <= set(range(100))


def test_pipeline_reading_the_held_out_file_as_train_is_refused() -> None:
    tree = MemoryTree({**idx_files("train", 100), **idx_files("t10k", 30, offset=1000)})
    decl = declaration(test={"source": T10K}, min_size=5)
    with pytest.raises(DataError, match=r"pipeline reads t10k-images .* declared train-images"):
        split(decl, tree, config(source=T10K))


def test_held_out_split_below_the_minimum_is_refused() -> None:
    tree = MemoryTree({**idx_files("train", 100), **idx_files("t10k", 30, offset=1000)})
    with pytest.raises(DataError, match=r"test split holds 20 records, fewer than .* 21"):
        split(declaration(min_size=21, val=None), tree)
    with pytest.raises(DataError, match=r"test split holds 30 records, fewer than .* 31"):
        split(declaration(test={"source": T10K}, val=None, min_size=31), tree)


def test_no_validation_split_when_none_is_declared() -> None:
    splits = split(declaration(val=None), MemoryTree(idx_files("train", 100)))
    assert splits.sizes() == {"train": 80, "val": 0, "test": 20}


def test_union_keeps_each_providers_held_out_records_held_out() -> None:
    trees = {"a": MemoryTree(idx_files("train", 100)), "b": MemoryTree(idx_files("train", 50, 500))}
    decls = {
        "a": declaration(dataset="a"),
        "b": declaration(dataset="b", test={"fraction": 0.4}, val=None),
    }
    splits = load_declared_splits(
        decls, [config(dataset="a"), config(dataset="b")], JoinConfig(), trees
    )
    assert splits.sizes() == {"train": 70 + 30, "val": 10, "test": 20 + 20}
    alone = split(decls["b"], trees["b"])
    assert record_ids(alone.test.x) <= record_ids(splits.test.x)


def test_group_fraction_split_keeps_a_patient_in_one_split() -> None:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle["features"] = np.random.default_rng(0).random((120, 4)).astype(np.float32)
        handle["targets"] = (np.arange(120) % 2).astype(np.int64)
        handle["patients"] = np.array([f"p{i // 4}".encode() for i in range(120)])
    source = {"format": "hdf5", "file": "scans.h5", "groups_key": "patients"}
    decl = declaration(
        train={"source": source}, test={"fraction": 0.2}, val=None, group_by="patient", min_size=4
    )
    splits = split(decl, MemoryTree({"scans.h5": buffer.getvalue()}), config(source=source))
    assert splits.sizes() == {"train": 96, "val": 0, "test": 24}
    assert splits.train.groups is not None and splits.test.groups is not None
    assert not set(splits.train.groups) & set(splits.test.groups)


# ----------------------------------------------------------------- the document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"test": {"fraction": 0.6}, "val": {"fraction": 0.4}}, "nothing to train on"),
        ({"test": {"source": TRAIN}}, "test.source is the training source"),
        ({"min_size": 0}, "min_size"),
        ({"split": {"test": 0.98}}, "split: Extra inputs are not permitted"),
        ({"test": {"fraction": 0.2, "seed": 1}}, "test"),
    ],
)
def test_malformed_declarations_are_refused_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(DeclarationError, match=message):
        declaration(**change)


def test_signed_declaration_verifies_against_the_provider_key_and_pin(tmp_path: Any) -> None:
    hospital = Party.generate("hospital", "provider")
    signed = sign_declaration(declaration(), hospital)
    path = tmp_path / "mnist.decl.json"
    save_declaration(path, signed)
    loaded = load_signed_declaration(path)
    assert loaded.digest == signed.digest == declaration_digest(declaration())
    key = hospital.identity.signing_key
    got = verify_declaration(loaded, provider="hospital", signing_key=key, pinned=signed.digest)
    assert got == declaration()


def test_tampered_unpinned_or_foreign_declarations_are_refused() -> None:
    hospital = Party.generate("hospital", "provider")
    mallory = Party.generate("hospital", "provider")
    signed = sign_declaration(declaration(), hospital)
    key = hospital.identity.signing_key

    def verify(candidate: SignedDeclaration, pinned: str | None = signed.digest) -> None:
        verify_declaration(candidate, provider="hospital", signing_key=key, pinned=pinned)

    # The consumer (or operator) swaps in a 0.98 test fraction: the pin no longer matches.
    bigger = signed.model_copy(
        update={"declaration": declaration(test={"fraction": 0.98}, val=None)}
    )
    with pytest.raises(DeclarationError, match="is not the one the contract pins"):
        verify(bigger)
    # ...and re-pinning it does not help without the provider's signature.
    with pytest.raises(DeclarationError, match="does not verify"):
        verify(bigger, pinned=bigger.digest)
    forged = sign_declaration(declaration(), mallory)
    with pytest.raises(DeclarationError, match="does not verify"):
        verify(forged)
    with pytest.raises(DeclarationError, match="not by the dataset's provider 'hospital'"):
        verify(sign_declaration(declaration(), Party.generate("lab", "consumer")))
    with pytest.raises(DeclarationError, match="pins no declaration"):
        verify(signed, pinned=None)
