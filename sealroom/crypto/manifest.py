"""The signed manifest of a sealed package: what is inside, and who vouches for it.

The manifest is stored as RFC 8785 canonical JSON; its SHA-256 is the package
digest that contracts and key-release policies name, and the owner's Ed25519
signature covers exactly those bytes (with a domain label, so a manifest
signature can never be replayed as a signature on anything else).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.crypto.stream import MAX_CHUNKS, PREFIX_SIZE, TAG_SIZE
from sealroom.errors import SealError

SIGNATURE_DOMAIN = b"sealroom.manifest.v1\n"
Hex = str

# Chunk sizes an owner may choose. A reader holds one chunk (plus its ciphertext) in
# memory, and the owner is not trusted to be kind: 16 MiB bounds that at any size.
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 1 << 10, 16 << 20
# File paths inside a package: written to disk by whoever unseals it, shown in terminals.
MAX_PATH_BYTES = 1024
MAX_PATH_DEPTH = 32
# Character categories a path may not hold: control (NUL, newline, DEL, C1), format
# (bidirectional overrides that make a path display as another), separators, surrogates
# (undecodable file names), unassigned.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


PARTY_NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"  # as identity.py spells party names
FORMAT = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
MAX_NAME_BYTES = 255  # the sealed file or folder's own name, as a file system allows


def text_problem(text: str, limit: int) -> str | None:
    """Why ``text`` cannot be shown on one line or written as a name, or None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        return f"is {size} bytes long (at most {limit})"
    bad = next((c for c in text if unicodedata.category(c) in REFUSED_CATEGORIES), None)
    if bad is not None:
        return f"holds the control or invisible character U+{ord(bad):04X}"
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file inside a package, or None when it can."""
    if not path:
        return "is empty"
    problem = text_problem(path, MAX_PATH_BYTES)
    if problem:
        return problem
    if path.startswith("/"):
        return "is absolute"
    if "\\" in path:
        return "holds a backslash"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' component"
    if len(parts) > MAX_PATH_DEPTH:
        return f"is {len(parts)} folders deep (at most {MAX_PATH_DEPTH})"
    return None


class FileEntry(BaseModel):
    """One file of the package: where its bytes sit in the plaintext stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    offset: int = Field(ge=0)
    size: int = Field(ge=0)
    sha256: Hex = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _safe_relative_path(self) -> FileEntry:
        problem = path_problem(self.path)
        if problem:
            raise ValueError(f"file path {short_path(self.path)} {problem}")
        return self


def short_path(path: str) -> str:
    """A path quoted for a one-line message (repr shows control characters), cut if long."""
    return repr(path) if len(path) <= 120 else repr(path[:120]) + "..."


class Manifest(BaseModel):
    """Everything needed to check and read a package, signed by its owner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    cipher: Literal["AES-256-GCM/STREAM"] = "AES-256-GCM/STREAM"
    package_id: Hex = Field(pattern=r"^[0-9a-f]{32}$")
    nonce_prefix: Hex = Field(pattern=rf"^[0-9a-f]{{{2 * PREFIX_SIZE}}}$")
    owner: str = Field(pattern=PARTY_NAME)
    owner_fingerprint: Hex = Field(pattern=r"^[0-9a-f]{32}$")
    name: str
    kind: Literal["file", "directory"]
    format: str | None = Field(None, pattern=FORMAT)
    files: list[FileEntry]
    size: int = Field(ge=0)
    plaintext_sha256: Hex = Field(pattern=r"^[0-9a-f]{64}$")
    key_check: Hex = Field(pattern=r"^[0-9a-f]{64}$")
    chunk_size: int = Field(ge=MIN_CHUNK_SIZE)
    n_chunks: int = Field(ge=1, le=MAX_CHUNKS)
    created: str

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        problem = text_problem(self.name, MAX_NAME_BYTES)
        if problem:
            raise ValueError(f"name {short_path(self.name)} {problem}")
        if self.chunk_size > MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk size {self.chunk_size} bytes is over the "
                f"{MAX_CHUNK_SIZE >> 20} MiB maximum a reader accepts"
            )
        if self.n_chunks != chunk_count(self.size, self.chunk_size):
            raise ValueError("n_chunks does not match size and chunk_size")
        position = 0
        for entry in self.files:
            if entry.offset != position:
                raise ValueError(f"file {entry.path!r} does not start where the previous ends")
            position += entry.size
        if position != self.size:
            raise ValueError("file sizes do not add up to the package size")
        paths = {f.path for f in self.files}
        if len(paths) != len(self.files):
            raise ValueError("a file path is listed twice")
        for entry in self.files:  # "a" and "a/b" cannot both be files
            parts = entry.path.split("/")
            clash = next(
                ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in paths),
                None,
            )
            if clash is not None:
                raise ValueError(f"file path {short_path(clash)} is also a folder")
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
            message = first["msg"].removeprefix("Value error, ")
            raise SealError(f"{where}: {loc}: {message}") from None


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
