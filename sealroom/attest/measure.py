"""The software measurement: SHA-256 over the installed sealroom runtime, reproducibly.

Files are the package's ``.py`` and ``.rego`` sources in sorted POSIX relative-path order;
each contributes ``len(path) || path || len(content) || content`` (8-byte big-endian lengths)
so that no two different file sets hash to the same framing.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import sealroom

MEASURED_SUFFIXES = (".py", ".rego")


def package_root() -> Path:
    return Path(sealroom.__file__).resolve().parent


def runtime_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every measured file, in measurement order."""
    base = (root or package_root()).resolve()
    found = [
        (path.relative_to(base).as_posix(), path)
        for path in base.rglob("*")
        if path.is_file() and path.suffix in MEASURED_SUFFIXES and "__pycache__" not in path.parts
    ]
    return sorted(found)


def measure_files(root: Path) -> str:
    """Hex SHA-256 over the runtime files under ``root`` (uncached; see measure_runtime)."""
    digest = hashlib.sha256(b"sealroom-runtime-measurement-v1\0")
    for relpath, path in runtime_files(root):
        name = relpath.encode("utf-8")
        content = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def measure_runtime() -> str:
    """The measurement of the sealroom package this process runs (``sealroom attest measure``)."""
    return measure_files(package_root())
