"""Sealing: a file or a directory streamed into a new package folder (see package.py)."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sealroom.crypto.hpke import seal_to
from sealroom.crypto.identity import Party
from sealroom.crypto.manifest import (
    FORMAT,
    MAX_CHUNK_SIZE,
    MAX_NAME_BYTES,
    MIN_CHUNK_SIZE,
    SIGNATURE_DOMAIN,
    FileEntry,
    Manifest,
    chunk_count,
    digest_of,
    files_root,
    key_check,
    owner_key_info,
    path_problem,
    short_path,
    text_problem,
)
from sealroom.crypto.signing import b64
from sealroom.crypto.stream import PREFIX_SIZE, ChunkCipher
from sealroom.errors import SealError

DEFAULT_CHUNK_SIZE = 4 << 20
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CHUNKS = "chunks.bin"
OWNER_KEY = "owner_key.hpke"

Progress = Callable[[int], None]  # called with the number of plaintext bytes just processed


@dataclass(frozen=True)
class SealResult:
    manifest: Manifest
    data_key: bytes
    digest: str
    path: Path


def _walk(source: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every regular file, sorted; symlinks are refused."""
    if source.is_symlink():
        raise SealError(f"{source}: symbolic links are not sealed")
    if source.is_file():
        return [(source.name, source)]
    if not source.is_dir():
        raise SealError(f"{source}: no such file or directory")
    found: list[tuple[str, Path]] = []
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            raise SealError(f"{path}: symbolic links are not sealed")
        if path.is_file():
            found.append((_package_path(path, source), path))
    if not found:
        raise SealError(f"{source}: the directory holds no files")
    return found


def _package_path(path: Path, source: Path) -> str:
    """The file's path inside the package, refused here if a reader would refuse it."""
    rel = path.relative_to(source).as_posix()
    problem = path_problem(rel)
    if problem:
        raise SealError(f"{source}: file path {short_path(rel)} {problem}; rename it")
    return rel


class _ChunkWriter:
    """Cuts the plaintext stream into chunks, seals each and appends it to chunks.bin."""

    def __init__(
        self, cipher: ChunkCipher, out: BinaryIO, chunk_size: int, n_chunks: int, total: int
    ):
        self._cipher, self._out = cipher, out
        # Sized to the data: 10 bytes sealed with 16 MiB chunks need a 10-byte buffer.
        # Until the buffer is a whole chunk it is never full (total < chunk_size).
        self._chunk_size = chunk_size
        self._buffer = bytearray(min(chunk_size, total))
        self._view = memoryview(self._buffer)
        self._fill = 0
        self._index = 0
        self._n_chunks = n_chunks

    def write_from(
        self, handle: BinaryIO, size: int, digest: hashlib._Hash, progress: Progress | None
    ) -> int:
        """Copy ``size`` bytes from ``handle`` into the stream; returns the bytes read."""
        remaining = size
        while remaining:
            room = min(len(self._buffer) - self._fill, remaining)
            if not room:  # more data than stat() reported when the buffer was sized
                raise SealError(f"{handle.name}: file grew while it was being sealed")
            got = handle.readinto(self._view[self._fill : self._fill + room])  # type: ignore[attr-defined]
            if not got:
                raise SealError(f"{handle.name}: file shrank while it was being sealed")
            digest.update(self._view[self._fill : self._fill + got])
            self._fill += got
            remaining -= got
            if progress:
                progress(got)
            if self._fill == self._chunk_size:
                self._emit(final=False)
        return size

    def _emit(self, final: bool) -> None:
        if self._index >= self._n_chunks:
            raise SealError("a file grew while it was being sealed")
        sealed = self._cipher.seal(self._index, final, self._view[: self._fill])
        self._out.write(sealed)
        self._index += 1
        self._fill = 0

    def finish(self) -> None:
        self._emit(final=True)
        if self._index != self._n_chunks:
            raise SealError("a file changed size while it was being sealed")


def seal(
    source: Path,
    owner: Party,
    out: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    format: str | None = None,
    wrap_for_owner: bool = True,
    progress: Progress | None = None,
) -> SealResult:
    """Seal ``source`` (a file or a directory) into the package folder ``out``.

    The package is built in a temporary folder beside ``out`` and renamed into
    place at the end, so a failure never leaves a half-written package.
    """
    if out.exists():
        raise SealError(f"{out}: already exists; choose another --out")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise SealError(
            f"chunk size {chunk_size} bytes: choose between 1 KiB and {MAX_CHUNK_SIZE >> 20} MiB"
        )
    if format is not None and not re.match(FORMAT, format):
        raise SealError(f"format {format!r}: lower-case letters, digits, '_', '.', '-'")
    problem = text_problem(source.name, MAX_NAME_BYTES)
    if problem:
        raise SealError(f"{source}: name {short_path(source.name)} {problem}; rename it")
    files = _walk(source)
    sizes = [path.stat().st_size for _, path in files]
    total = sum(sizes)
    package_id = secrets.token_bytes(16)
    prefix = secrets.token_bytes(PREFIX_SIZE)
    data_key = secrets.token_bytes(32)
    n_chunks = chunk_count(total, chunk_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        entries: list[FileEntry] = []
        with open(staging / CHUNKS, "wb") as chunks:
            writer = _ChunkWriter(
                ChunkCipher(data_key, package_id, prefix), chunks, chunk_size, n_chunks, total
            )
            offset = 0
            for (rel, path), size in zip(files, sizes, strict=True):
                digest = hashlib.sha256()
                with open(path, "rb", buffering=0) as handle:
                    writer.write_from(handle, size, digest, progress)
                    if handle.read(1):
                        raise SealError(f"{path}: file grew while it was being sealed")
                entries.append(
                    FileEntry(path=rel, offset=offset, size=size, sha256=digest.hexdigest())
                )
                offset += size
            writer.finish()
        kind = "file" if source.is_file() else "directory"
        manifest = Manifest(
            package_id=package_id.hex(),
            nonce_prefix=prefix.hex(),
            owner=owner.name,
            owner_fingerprint=owner.identity.fingerprint,
            name=source.name,
            kind=kind,
            format=format,
            files=entries,
            size=total,
            plaintext_sha256=files_root(kind, entries),
            key_check=key_check(data_key, package_id.hex()),
            chunk_size=chunk_size,
            n_chunks=n_chunks,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        raw = manifest.to_bytes()
        (staging / MANIFEST).write_bytes(raw)
        signature = owner.sign(SIGNATURE_DOMAIN + raw)
        (staging / SIGNATURE).write_text(b64(signature) + "\n")
        if wrap_for_owner:
            wrapped = seal_to(
                owner.identity.encryption_key, data_key, owner_key_info(manifest.package_id)
            )
            (staging / OWNER_KEY).write_bytes(wrapped)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SealResult(manifest, data_key, digest_of(raw), out)
