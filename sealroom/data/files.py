"""File trees: the only way loaders see bytes, so the room can feed them decrypted data in memory.

A loader never opens a path itself; it asks a :class:`FileTree` for bytes by a
relative posix path. ``DirectoryTree`` serves a folder (provider-side tools,
``train --local``); ``MemoryTree`` serves the plaintext files the room holds.
"""

from __future__ import annotations

import posixpath
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from sealroom.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
# Decompressed data larger than this is refused: a tiny .gz must not exhaust the room's memory.
MAX_DECOMPRESSED = 4 << 30


@runtime_checkable
class FileTree(Protocol):
    """Read-only view of a set of files addressed by relative posix paths."""

    def read_bytes(self, relpath: str) -> bytes: ...

    def list_files(self, prefix: str = "") -> list[str]: ...


def normalize_relpath(relpath: str) -> str:
    """Canonical relative posix path; refuses absolute paths and anything escaping the tree."""
    if not relpath or "\x00" in relpath:
        raise DataError(f"invalid file path {relpath!r}")
    path = posixpath.normpath(relpath.replace("\\", "/"))
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise DataError(f"file path {relpath!r} leaves the dataset")
    return path


def folder_prefix(prefix: str) -> str:
    """``"images"`` and ``"images/"`` both select files inside the folder ``images``."""
    if prefix in ("", ".", "./"):
        return ""
    return normalize_relpath(prefix).rstrip("/") + "/"


class MemoryTree:
    """Files held in memory, e.g. the room's decrypted package contents."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = {normalize_relpath(k): bytes(v) for k, v in files.items()}

    def read_bytes(self, relpath: str) -> bytes:
        path = normalize_relpath(relpath)
        try:
            return self._files[path]
        except KeyError:
            raise DataError(_not_found(relpath, sorted(self._files))) from None

    def list_files(self, prefix: str = "") -> list[str]:
        folder = folder_prefix(prefix)
        return sorted(p for p in self._files if p.startswith(folder))


class DirectoryTree:
    """Files under a folder on disk; paths resolving outside ``root`` (symlinks too) are refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise DataError(f"dataset folder not found: {root}")

    def _resolve(self, relpath: str) -> Path:
        path = (self.root / normalize_relpath(relpath)).resolve()
        if not path.is_relative_to(self.root):
            raise DataError(f"file path {relpath!r} leaves the dataset folder {self.root}")
        return path

    def read_bytes(self, relpath: str) -> bytes:
        path = self._resolve(relpath)
        if not path.is_file():
            where = f"{relpath} (under {self.root})"
            raise DataError(_not_found(where, self.list_files(), relpath))
        return path.read_bytes()

    def list_files(self, prefix: str = "") -> list[str]:
        folder = folder_prefix(prefix)
        base = self._resolve(folder) if folder else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            if path.is_file() and path.resolve().is_relative_to(self.root):
                found.append(path.relative_to(self.root).as_posix())
        return sorted(found)


class SubTree:
    """The files of ``tree`` under ``prefix``, addressed relative to it (one patient folder)."""

    def __init__(self, tree: FileTree, prefix: str) -> None:
        self._tree = tree
        self._prefix = folder_prefix(prefix)

    def read_bytes(self, relpath: str) -> bytes:
        return self._tree.read_bytes(self._prefix + normalize_relpath(relpath))

    def list_files(self, prefix: str = "") -> list[str]:
        inner = self._prefix + folder_prefix(prefix)
        return [p[len(self._prefix) :] for p in self._tree.list_files(inner)]


def _not_found(where: str, paths: list[str], relpath: str | None = None) -> str:
    """ "file not found in dataset: X; it holds a, b, … (did you mean 'X.gz'?)"."""
    from sealroom.pipeline.package_files import holdings, nearest

    guess = nearest(normalize_relpath(relpath or where), paths)
    hint = f" (did you mean '{guess}'?)" if guess else ""
    return f"file not found in dataset: {where}; it holds {holdings(paths)}{hint}"


def maybe_gunzip(data: bytes, name: str, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress gzip data (recognised by its magic, not its name); other bytes pass through."""
    if not data.startswith(GZIP_MAGIC):
        return data
    out = bytearray()
    rest = data
    try:
        while rest.startswith(GZIP_MAGIC):  # gzip files may hold several members
            inflater = zlib.decompressobj(wbits=31)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise DataError(f"{name}: decompresses to more than {limit} bytes")
            if not inflater.eof:
                raise DataError(f"{name}: truncated gzip data")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise DataError(f"{name}: corrupt gzip data ({exc})") from None
    return bytes(out)
