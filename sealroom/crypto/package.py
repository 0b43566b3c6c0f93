"""Sealed packages: a file or a directory as one signed manifest plus encrypted chunks.

On disk a package is a folder ``<name>.sealed/``::

    manifest.json     canonical JSON (see manifest.py); its SHA-256 is the package digest
    manifest.sig      the owner's Ed25519 signature (base64) over the manifest
    chunks.bin        the sealed chunks back to back (stream.py), chunk i at i * (chunk_size + 16)
    owner_key.hpke    optional: the data key HPKE-sealed to the owner, for ``unseal --as OWNER``

Both directions stream: memory holds a couple of chunks whatever the package size,
and one file or chunk can be read without decrypting the rest.
"""

from __future__ import annotations

import errno
import hmac
import os
import shutil
import tempfile
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import BinaryIO

from sealroom.crypto.identity import Party, PublicIdentity
from sealroom.crypto.manifest import (
    SIGNATURE_DOMAIN,
    FileEntry,
    Manifest,
    digest_of,
    key_check,
    owner_key_info,
)
from sealroom.crypto.sealing import (
    CHUNKS,
    DEFAULT_CHUNK_SIZE,
    MANIFEST,
    OWNER_KEY,
    SIGNATURE,
    Progress,
    SealResult,
    seal,
)
from sealroom.crypto.signing import unb64
from sealroom.crypto.stream import TAG_SIZE, ChunkCipher, ChunkError
from sealroom.errors import SealError, SignatureError, WrongKeyError

__all__ = ["DEFAULT_CHUNK_SIZE", "SealResult", "SealedPackage", "owner_data_key", "seal"]

# A manifest lists every file (about 150 bytes each): 64 MiB is some 400,000 files.
MAX_MANIFEST_BYTES = 64 << 20
MAX_SIGNATURE_BYTES = 4096  # an Ed25519 signature in base64 is 88 characters


class SealedPackage:
    """A package whose manifest signature has been checked against its owner."""

    def __init__(self, path: Path, manifest: Manifest, raw: bytes) -> None:
        self.path = path
        self.manifest = manifest
        self.digest = digest_of(raw)

    @classmethod
    def read_manifest(cls, path: Path) -> Manifest:
        """The manifest without checking who signed it (to learn the owner's name)."""
        raw = _read(path / MANIFEST, MAX_MANIFEST_BYTES)
        return Manifest.from_bytes(raw, str(path / MANIFEST))

    @classmethod
    def open(cls, path: Path, owner: PublicIdentity) -> SealedPackage:
        """Check the owner's signature and the ciphertext length; reads no chunk."""
        raw = _read(path / MANIFEST, MAX_MANIFEST_BYTES)
        text = (
            _read(path / SIGNATURE, MAX_SIGNATURE_BYTES).decode("ascii", errors="replace").strip()
        )
        signature = unb64(text, str(path / SIGNATURE))
        owner.verify(signature, SIGNATURE_DOMAIN + raw)
        manifest = Manifest.from_bytes(raw, str(path / MANIFEST))
        if manifest.owner != owner.name or manifest.owner_fingerprint != owner.fingerprint:
            raise SignatureError(
                f"{path}: manifest names owner {manifest.owner!r}, not {owner.name!r}"
            )
        actual = (path / CHUNKS).stat().st_size if (path / CHUNKS).exists() else -1
        if actual != manifest.ciphertext_size:
            raise SealError(
                f"{path / CHUNKS}: {max(actual, 0)} bytes, the manifest says "
                f"{manifest.ciphertext_size} (truncated, extended or missing)"
            )
        return cls(path, manifest, raw)

    # ---------------------------------------------------------------- reading

    def _cipher(self, key: bytes) -> ChunkCipher:
        m = self.manifest
        if not hmac.compare_digest(key_check(key, m.package_id), m.key_check):
            raise WrongKeyError(f"{self.path}: this is not the package's data key")
        return ChunkCipher(key, bytes.fromhex(m.package_id), bytes.fromhex(m.nonce_prefix))

    def _chunks(self, key: bytes, first: int, last: int) -> Iterator[memoryview]:
        """Decrypt chunks ``first..last`` in order, yielding a view reused for the next one."""
        m = self.manifest
        cipher = self._cipher(key)
        stride = m.chunk_size + TAG_SIZE
        # Buffers sized to the data from chunk ``first`` on, never to a chunk size the
        # owner chose: a 10-byte package with big chunks costs 26 bytes, not 2 chunks.
        capacity = min(stride, m.size - first * m.chunk_size + TAG_SIZE)
        sealed = bytearray(capacity)
        plain = bytearray(capacity - TAG_SIZE)
        with open(self.path / CHUNKS, "rb", buffering=0) as handle:
            handle.seek(first * stride)
            for index in range(first, last + 1):
                final = index == m.n_chunks - 1
                want = (m.size - index * m.chunk_size + TAG_SIZE) if final else stride
                got = _read_into(handle, memoryview(sealed)[:want])
                if got != want:
                    raise SealError(f"{self.path}: chunk {index} is truncated")
                try:
                    n = cipher.open_into(index, final, memoryview(sealed)[:want], memoryview(plain))
                except ChunkError as exc:
                    raise SealError(f"{self.path}: {exc}") from None
                yield memoryview(plain)[:n]

    def read_chunk(self, index: int, key: bytes) -> bytes:
        if not 0 <= index < self.manifest.n_chunks:
            raise SealError(f"{self.path}: no chunk {index} (package has {self.manifest.n_chunks})")
        return bytes(next(self._chunks(key, index, index)))

    def _entry(self, relpath: str) -> FileEntry:
        for entry in self.manifest.files:
            if entry.path == relpath:
                return entry
        raise SealError(f"{self.path}: no file {relpath!r} in the package")

    def read_file(self, relpath: str, key: bytes) -> bytes:
        """Decrypt only the chunks holding ``relpath``."""
        entry = self._entry(relpath)
        out = bytearray()
        for piece in self._file_pieces(entry, key):
            out += piece
        return bytes(out)

    def _file_pieces(self, entry: FileEntry, key: bytes) -> Iterator[memoryview]:
        cs = self.manifest.chunk_size
        first = entry.offset // cs
        last = max(first, (entry.offset + entry.size - 1) // cs) if entry.size else first
        position = first * cs
        for plain in self._chunks(key, first, last):
            lo = max(entry.offset - position, 0)
            hi = min(entry.offset + entry.size - position, len(plain))
            if hi > lo:
                yield plain[lo:hi]
            position += len(plain)

    def iter_stream(self, key: bytes) -> Iterator[tuple[FileEntry, memoryview]]:
        """Every piece of every file in order, each chunk authenticated before it is yielded.

        A consumer that must not act on unverified data should collect first (iter_files).
        """
        files = iter(self.manifest.files)
        entry = next(files, None)
        base = 0  # stream offset of the current chunk's first byte
        for plain in self._chunks(key, 0, self.manifest.n_chunks - 1):
            start = 0
            while entry is not None:
                stop = entry.offset + entry.size - base
                if stop > len(plain):
                    if start < len(plain):
                        yield entry, plain[start:]
                    break
                yield entry, plain[start:stop]  # empty for an empty file
                start = stop
                entry = next(files, None)
            base += len(plain)

    def iter_files(self, key: bytes) -> Iterator[tuple[str, bytes]]:
        """(path, bytes) per file, each complete and authenticated, in memory only."""
        for entry, pieces in groupby(self.iter_stream(key), key=lambda item: item[0]):
            yield entry.path, b"".join(bytes(piece) for _, piece in pieces)

    def read_all(self, key: bytes) -> dict[str, bytes]:
        """Every file in memory, returned only after every chunk authenticated."""
        return dict(self.iter_files(key))

    def unseal_to(self, target: Path, key: bytes, progress: Progress | None = None) -> list[Path]:
        """Write every file under ``target``; all-or-nothing.

        Files go to a private (0700) staging folder beside ``target`` that is renamed
        into place only after the last chunk authenticated; on any failure it is removed.
        """
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise SealError(f"{target}: already exists and is not empty; choose another --out")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        written: list[Path] = []
        try:
            for entry, pieces in groupby(self.iter_stream(key), key=lambda item: item[0]):
                path = staging / entry.path
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as handle:
                    _preallocate(handle, entry.size, target / entry.path)
                    for _, piece in pieces:
                        handle.write(piece)
                        if progress:
                            progress(len(piece))
                written.append(target / entry.path)
            if target.exists():
                target.rmdir()
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return written


def owner_data_key(package: Path, party: Party) -> bytes:
    """The data key from ``owner_key.hpke``, opened with the owner's private key."""
    manifest = SealedPackage.read_manifest(package)
    wrapped = package / OWNER_KEY
    if not wrapped.exists():
        raise WrongKeyError(f"{package}: no owner key in the package (sealed without one)")
    try:
        return party.decrypt_key(
            _read(wrapped, MAX_SIGNATURE_BYTES), owner_key_info(manifest.package_id)
        )
    except WrongKeyError:
        # Name the keys, not just the names: a party re-created under the same name
        # (or a swapped key file) would otherwise read "sealed to 'x', not to 'x'".
        sealed_to = f"{manifest.owner!r} (key {manifest.owner_fingerprint})"
        offered = f"{party.name!r} (key {party.identity.fingerprint})"
        if manifest.owner_fingerprint == party.identity.fingerprint:
            raise WrongKeyError(
                f"{package}: {OWNER_KEY} does not open with {offered}, the key it names "
                "(damaged or replaced)"
            ) from None
        raise WrongKeyError(
            f"{package}: the data key is sealed to {sealed_to}, not to {offered}"
        ) from None


def _read_into(handle: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` unless the file ends first: one read may return less (FUSE, NFS,
    signals), which must not be mistaken for a truncated chunk."""
    filled = 0
    while filled < len(view):
        got = handle.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


def _preallocate(handle: BinaryIO, size: int, path: Path) -> None:
    """Reserve a file's blocks before writing it.

    One extent allocation instead of one per write makes unsealing to disk about a fifth
    cheaper in CPU on ext4, and a full disk is reported before anything is decrypted.
    """
    if not size or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise SealError(f"{path}: not enough disk space ({size} bytes)") from None
        # Any other refusal (a filesystem without fallocate) only costs the speed-up.


def _read(path: Path, limit: int) -> bytes:
    """A package's small file, refused rather than read whole when it is over ``limit``."""
    try:
        with open(path, "rb") as handle:
            # read(n) allocates n bytes up front: ask for what is there, capped
            present = os.fstat(handle.fileno()).st_size
            data = handle.read(min(present, limit) + 1)
    except FileNotFoundError:
        raise SealError(f"{path}: missing (is this a sealed package folder?)") from None
    except IsADirectoryError:
        raise SealError(f"{path}: is a directory") from None
    except NotADirectoryError:
        raise SealError(f"{path.parent}: not a sealed package folder") from None
    except OSError as exc:
        raise SealError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise SealError(f"{path}: larger than {limit:,} bytes")
    return data
