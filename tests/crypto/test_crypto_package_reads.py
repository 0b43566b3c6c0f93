"""Sealed packages against an unhelpful file system: short reads, a full disk."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

import sealroom.crypto.package as package_module
from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealedPackage, seal
from sealroom.errors import SealError

OWNER = Party.generate("hospital", "provider")
CHUNK = 1024


class _ShortReads(io.RawIOBase):
    """A raw file that hands out at most 100 bytes per read, as FUSE or NFS may."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        return self._inner.readinto(view[: min(len(view), 100)])

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._inner.close()
        super().close()


def _sealed(tmp_path: Path, size: int) -> tuple[bytes, SealedPackage, bytes]:
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    result = seal(tmp_path / "f.bin", OWNER, tmp_path / "f.sealed", chunk_size=CHUNK)
    return data, SealedPackage.open(result.path, OWNER.identity), result.data_key


def test_short_reads_are_not_mistaken_for_truncation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, package, key = _sealed(tmp_path, 3 * CHUNK + 7)

    def short_open(path: Any, mode: str = "r", buffering: int = -1, **kw: Any) -> Any:
        handle = builtins.open(path, mode, buffering=buffering, **kw)  # noqa: SIM115  # caller closes
        return _ShortReads(handle) if mode == "rb" and buffering == 0 else handle

    monkeypatch.setattr(package_module, "open", short_open, raising=False)
    assert package.read_all(key) == {"f.bin": data}
    package.unseal_to(tmp_path / "out", key)
    assert (tmp_path / "out" / "f.bin").read_bytes() == data


def test_full_disk_refused_before_decrypting_and_nothing_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, package, key = _sealed(tmp_path, 2 * CHUNK)

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(SealError, match="not enough disk space"):
        package.unseal_to(tmp_path / "out", key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "f.sealed"]


def test_file_systems_without_fallocate_still_unseal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, package, key = _sealed(tmp_path, CHUNK + 1)

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    package.unseal_to(tmp_path / "out", key)
    assert (tmp_path / "out" / "f.bin").read_bytes() == data
