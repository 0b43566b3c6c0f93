"""The provider's dataset declaration: which records train and which are held out, signed.

The consumer writes the pipeline, so a split chosen there is the consumer's choice: a 0.98
test fraction, a seed that puts chosen records in the test set, or a pipeline source that
points at the held-out file. Under a declaration the *provider* decides: the training
source, each held-out split (a file of its own, e.g. MNIST's ``t10k``, or a fraction of the
training source drawn with the provider's seed) and the smallest held-out split it accepts.
The provider signs the RFC 8785 canonical JSON of the declaration with its Ed25519 party
key under the domain label ``sealroom.dataset-declaration.v1``; the contract pins the
declaration's digest (``DatasetRef.declaration_digest``), and the room replaces the
pipeline's ``split`` with it (:func:`sealroom.data.declaration.load_declared_splits`).

This module is the light half (schema, signature, source check): the room's channel reads
it before the sandbox is entered, when nothing may start a thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.contract.schema import ID_PATTERN, NAME_PATTERN
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import DataError, SignatureError
from sealroom.files import read_capped, write_atomic
from sealroom.pipeline.schema import DatasetConfig, DataSource, Seed, Strict

DOMAIN = b"sealroom.dataset-declaration.v1\n"
MAX_DECLARATION_BYTES = 64 << 10
MAX_MIN_SIZE = 10**9


class DeclarationError(SignatureError):
    """A dataset declaration is malformed, unsigned, signed by another party or not pinned."""


class SourcePart(Strict):
    """A split read from files of the sealed package (a source as the pipeline writes it)."""

    source: DataSource


class FractionPart(Strict):
    """A held-out split drawn from the training source: this fraction, with the declared seed."""

    fraction: float = Field(gt=0, lt=1)


HeldOut = SourcePart | FractionPart


class DatasetDeclaration(Strict):
    """What the provider declares for one dataset of a contract."""

    version: int = Field(1, ge=1, le=1)
    dataset: str = Field(pattern=ID_PATTERN)
    train: SourcePart
    test: HeldOut
    val: HeldOut | None = None  # None: no validation split
    seed: Seed = 0
    min_size: int = Field(ge=1, le=MAX_MIN_SIZE)
    group_by: str | None = Field(None, min_length=1, max_length=64)  # for fraction splits

    @model_validator(mode="after")
    def _held_out_fits(self) -> DatasetDeclaration:
        fractions = [p.fraction for p in (self.val, self.test) if isinstance(p, FractionPart)]
        if sum(fractions) >= 1:
            raise ValueError("the held-out fractions leave nothing to train on (sum >= 1)")
        for name, part in (("val", self.val), ("test", self.test)):
            if isinstance(part, SourcePart) and part.source == self.train.source:
                raise ValueError(f"{name}.source is the training source; hold out another file")
        if (
            isinstance(self.val, SourcePart)
            and isinstance(self.test, SourcePart)
            and self.val.source == self.test.source
        ):
            raise ValueError("val and test name the same source")
        return self

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON: the bytes the provider signs and the contract pins."""
        return bytes(rfc8785.dumps(self.model_dump(mode="json")))

    def describe(self) -> str:
        """One line for logs and the CLI: how each split is made."""

        def part(p: HeldOut | None) -> str:
            if p is None:
                return "none"
            if isinstance(p, FractionPart):
                return f"{p.fraction:g} of train"
            return f"file {_source_name(p.source)}"

        return (
            f"dataset {self.dataset}: train {_source_name(self.train.source)}; "
            f"val {part(self.val)}; test {part(self.test)}; seed {self.seed}; "
            f"held-out splits of at least {self.min_size}"
        )


def _source_name(source: Any) -> str:
    for field in ("images", "file", "root"):
        value = getattr(source, field, None)
        if isinstance(value, str):
            return value
    return str(source.format)


def declaration_digest(declaration: DatasetDeclaration) -> str:
    """``sha256:<hex>`` of the canonical bytes: what ``DatasetRef.declaration_digest`` pins."""
    return "sha256:" + hashlib.sha256(declaration.canonical_bytes()).hexdigest()


def _message(declaration: DatasetDeclaration) -> bytes:
    return DOMAIN + declaration.canonical_bytes()


class SignedDeclaration(BaseModel):
    """A declaration with its provider's Ed25519 signature (over DOMAIN + canonical bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    declaration: DatasetDeclaration
    signer: str = Field(pattern=NAME_PATTERN)
    signature: str = Field(max_length=200)

    @property
    def digest(self) -> str:
        return declaration_digest(self.declaration)

    @property
    def dataset(self) -> str:
        return self.declaration.dataset


def sign_declaration(declaration: DatasetDeclaration, provider: Party) -> SignedDeclaration:
    """``provider`` signs ``declaration`` with its party key."""
    signature = provider.sign(_message(declaration))
    return SignedDeclaration(
        declaration=declaration, signer=provider.name, signature=b64(signature)
    )


def verify_declaration(
    signed: SignedDeclaration, *, provider: str, signing_key: str, pinned: str | None
) -> DatasetDeclaration:
    """The declaration, if ``provider`` signed it with ``signing_key`` and its digest is
    ``pinned`` (the contract's ``declaration_digest``); DeclarationError otherwise."""
    where = f"declaration of dataset {signed.dataset}"
    if pinned is None:
        raise DeclarationError(f"{where}: the contract pins no declaration for this dataset")
    if signed.digest != pinned:
        raise DeclarationError(
            f"{where}: digest {signed.digest} is not the one the contract pins ({pinned})"
        )
    if signed.signer != provider:
        raise DeclarationError(
            f"{where}: signed by {signed.signer!r}, not by the dataset's provider {provider!r}"
        )
    check_signature(signed, signing_key, "the signing key the contract lists for it")
    return signed.declaration


def check_signature(signed: SignedDeclaration, signing_key: str, whose: str) -> None:
    """DeclarationError unless ``signing_key`` (described as ``whose``) made the signature."""
    try:
        raw = unb64(signed.signature, "signature")
        verify_signature(signing_key, raw, _message(signed.declaration), signed.signer)
    except SignatureError:
        raise DeclarationError(
            f"declaration of dataset {signed.dataset}: the signature from {signed.signer!r} "
            f"does not verify with {whose}"
        ) from None


def save_declaration(path: Path, signed: SignedDeclaration) -> None:
    """Write the signed declaration atomically (JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (signed.model_dump_json(indent=2) + "\n").encode("utf-8"))


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "document"
    return f"{field}: {first['msg'].removeprefix('Value error, ')}"


def parse_declaration(data: Any, where: str) -> DatasetDeclaration:
    """A DatasetDeclaration from a parsed YAML/JSON mapping; DeclarationError naming the field."""
    if not isinstance(data, dict):
        raise DeclarationError(f"{where}: expected a mapping of fields")
    try:
        return DatasetDeclaration.model_validate(data)
    except ValidationError as exc:
        raise DeclarationError(f"{where}: {_first_problem(exc)}") from None


def _read_bounded(path: Path) -> bytes:
    return read_capped(path, MAX_DECLARATION_BYTES, "a dataset declaration", DeclarationError)


def read_declaration_draft(path: Path) -> DatasetDeclaration:
    """The provider's YAML (or JSON) draft, validated."""
    import yaml

    raw = _read_bounded(path)
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        raise DeclarationError(f"{path}: not a YAML or JSON declaration") from None
    return parse_declaration(data, str(path))


def load_signed_declaration(path: Path) -> SignedDeclaration:
    """A signed declaration file (its signature is checked by verify_declaration)."""
    raw = _read_bounded(path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DeclarationError(f"{path}: not a JSON signed declaration") from None
    try:
        return SignedDeclaration.model_validate(data)
    except ValidationError as exc:
        raise DeclarationError(f"{path}: {_first_problem(exc)}") from None


def check_declared_sources(
    declarations: Mapping[str, DatasetDeclaration], datasets: Sequence[DatasetConfig]
) -> None:
    """DataError unless every pipeline dataset is declared and reads its declared train source.

    Checked before any key is released: a pipeline that reads the held-out file (or any
    other file of the package) as its training data is refused by name.
    """
    for cfg in datasets:
        declaration = declarations.get(cfg.id)
        if declaration is None:
            raise DataError(f"dataset {cfg.id}: no provider declaration of its splits was given")
        if cfg.source != declaration.train.source:
            raise DataError(
                f"dataset {cfg.id}: the pipeline reads {_source_name(cfg.source)} "
                f"({cfg.source.format}) but the provider declared "
                f"{_source_name(declaration.train.source)} as the training source"
            )
