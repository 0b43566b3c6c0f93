"""The signed manifest of a sealed package: what is inside, and who vouches for it.

The manifest is stored as RFC 8785 canonical JSON; its SHA-256 is the package
digest that contracts and key-release policies name, and the owner's Ed25519
signature covers exactly those bytes (with a domain label, so a manifest
signature can never be replayed as a signature on anything else).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.crypto.stream import MAX_CHUNKS, PREFIX_SIZE, TAG_SIZE
from sealroom.errors import SealError

SIGNATURE_DOMAIN = b"sealroom.manifest.v1\n"
Hex = str


class FileEntry(BaseModel):
    """One file of the package: where its bytes sit in the plaintext stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=4096)
    offset: int = Field(ge=0)
    size: int = Field(ge=0)
    sha256: Hex = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _safe_relative_path(self) -> FileEntry:
        parts = self.path.split("/")
        if (
            self.path.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or "\\" in self.path
        ):
            raise ValueError(f"unsafe file path {self.path!r}")
        return self


class Manifest(BaseModel):
    """Everything needed to check and read a package, signed by its owner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    cipher: Literal["AES-256-GCM/STREAM"] = "AES-256-GCM/STREAM"
    package_id: Hex = Field(pattern=r"^[0-9a-f]{32}$")
    nonce_prefix: Hex = Field(pattern=rf"^[0-9a-f]{{{2 * PREFIX_SIZE}}}$")
    owner: str
    owner_fingerprint: Hex
    name: str
    kind: Literal["file", "directory"]
    format: str | None = None
    files: list[FileEntry]
    size: int = Field(ge=0)
    plaintext_sha256: Hex = Field(pattern=r"^[0-9a-f]{64}$")
    key_check: Hex = Field(pattern=r"^[0-9a-f]{64}$")
    chunk_size: int = Field(ge=1024, le=1 << 30)
    n_chunks: int = Field(ge=1, le=MAX_CHUNKS)
    created: str

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.n_chunks != chunk_count(self.size, self.chunk_size):
            raise ValueError("n_chunks does not match size and chunk_size")
        position = 0
        for entry in self.files:
            if entry.offset != position:
                raise ValueError(f"file {entry.path!r} does not start where the previous ends")
            position += entry.size
        if position != self.size:
            raise ValueError("file sizes do not add up to the package size")
        if len({f.path for f in self.files}) != len(self.files):
            raise ValueError("a file path is listed twice")
        return self

    @property
    def ciphertext_size(self) -> int:
        return self.size + self.n_chunks * TAG_SIZE

    def to_bytes(self) -> bytes:
        return rfc8785.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "manifest"
            raise SealError(f"{where}: {loc}: {first['msg']}") from None


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks for ``size`` bytes; an exact multiple (or zero) ends with an empty final chunk."""
    return size // chunk_size + 1


def digest_of(manifest_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()


def files_root(kind: str, files: list[FileEntry]) -> str:
    """The package's plaintext digest: a file's own SHA-256 (``sha256sum`` confirms it),
    or for a directory the SHA-256 of ``sha256sum``-style lines, one per file."""
    if kind == "file":
        return files[0].sha256
    lines = "".join(f"{f.sha256}  {f.path}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def owner_key_info(package_id: str) -> bytes:
    return b"sealroom.package-key.v1:" + package_id.encode()


def key_check(data_key: bytes, package_id: str) -> str:
    """A commitment to the data key in the signed manifest.

    It lets a wrong key be named as such (AES-GCM alone cannot tell a wrong key from
    tampering) and makes the package key-committing: no second key opens any chunk.
    """
    label = b"sealroom.key-check.v1:" + package_id.encode()
    return hmac.new(data_key, label, hashlib.sha256).hexdigest()
