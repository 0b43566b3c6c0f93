"""Files read with a size cap and written atomically: a hostile file cannot make a reader
hold more than it expects, and a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sealroom.errors import SealroomError


def read_capped(path: Path, limit: int, what: str, error: type[SealroomError]) -> bytes:
    """The bytes of ``path``, refused with ``error`` (one line naming the file and ``what``
    it should hold) when unreadable or larger than ``limit``; at most limit + 1 bytes read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(raw) > limit:
        raise error(f"{path}: larger than {limit:,} bytes; not {what}")
    return raw


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
