"""Private key files: created 0600 from the first byte, PEM (PKCS#8), never printed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sealroom.errors import IdentityError

PrivateKey = Ed25519PrivateKey | X25519PrivateKey


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write ``key`` so that no other user can ever read it, not even briefly."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def read_private_key(path: Path, kind: type[PrivateKey]) -> PrivateKey:
    """Load a PEM private key of the expected type; refuse anything else by file name."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise IdentityError(f"{path}: private key file is missing") from None
    except (ValueError, TypeError):
        raise IdentityError(f"{path}: not a PEM private key") from None
    if not isinstance(key, kind):
        raise IdentityError(f"{path}: expected an {kind.__name__.removesuffix('PrivateKey')} key")
    return key


def create_once(path: Path, write: Callable[[Path], object]) -> None:
    """Create the key file ``path`` exactly once, even when processes race for it.

    ``write`` fills a private temporary file that is hard-linked into place: one process
    wins, the others keep its file, and nobody ever reads a half-written key.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        candidate = Path(tmp) / path.name
        write(candidate)
        os.chmod(candidate, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(candidate, path)
