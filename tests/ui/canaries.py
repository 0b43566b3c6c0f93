"""Canaries for the dashboard's "nothing private" scan: a string planted in a provider's raw
data before it is sealed, and every secret a workspace holds, each in the forms a leak would
take (raw bytes, base64, URL-safe base64, hex).

A plain module (not the conftest) so that test files import it by its package path.
"""

from __future__ import annotations

import base64
import gzip
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sealroom.room.story import Story, _Sealed
from sealroom.workspace import Workspace

IMAGES = "train-images-idx3-ubyte.gz"
PLANT_AT = 16 + 28 * 28 * 7 + 28 * 10  # digit 7, from row 10: pixels the model trains on


@dataclass(frozen=True)
class Secret:
    """One secret by name, and the byte strings whose presence anywhere would leak it."""

    name: str
    forms: tuple[bytes, ...]


def forms_of(name: str, value: bytes) -> Secret:
    """``value`` raw, in base64 (padded and URL-safe unpadded) and in hex (both cases)."""
    std = base64.b64encode(value)
    urlsafe = base64.urlsafe_b64encode(value).rstrip(b"=")
    hexed = value.hex().encode()
    return Secret(
        name, tuple(dict.fromkeys([value, std, std.rstrip(b"="), urlsafe, hexed, hexed.upper()]))
    )


def new_canary() -> bytes:
    return b"SEALROOM-CANARY-" + secrets.token_hex(12).encode()


# Planted in the shared ``dp_story`` fixture's raw images (tests/ui/conftest.py); fresh for
# each test session, so no file of the repository can hold it.
DP_STORY_CANARY = new_canary()


def plant(data_dir: Path, canary: bytes) -> None:
    """Write ``canary`` over pixels of one training image of an IDX (gzip) dataset."""
    path = data_dir / IMAGES
    images = bytearray(gzip.decompress(path.read_bytes()))
    images[PLANT_AT : PLANT_AT + len(canary)] = canary
    path.write_bytes(gzip.compress(bytes(images), mtime=0))


class CanaryStory(Story):
    """The story with ``canary`` planted in each provider's raw data just before sealing."""

    def __init__(self, *args: object, canary: bytes, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.canary = canary

    def _seal(self, source: Path, owner: str, out: Path, fmt: str) -> _Sealed:
        if fmt == "dataset":
            plant(source, self.canary)
        return super()._seal(source, owner, out, fmt)


def workspace_secrets(ws: Workspace, passphrase: bytes) -> list[Secret]:
    """Every private key, root key and token the workspace holds: parties' private keys
    (opened with ``passphrase``), the service keys (ledger, attestation, KMS root, import
    keys) and tokens in ``keys/`` and ``serve/``."""
    from sealroom.crypto.identity import key_protection, load_party

    found = []
    for party_dir in sorted(p for p in ws.parties.iterdir() if p.is_dir()):
        if key_protection(ws, party_dir.name) == "imported":
            continue  # its private keys are in its own home (see homes_under)
        party = load_party(ws, party_dir.name, passphrase)
        for kind, key in (("signing", party._signing), ("encryption", party._encryption)):
            found.append(forms_of(f"party {party_dir.name} {kind} key", key.private_bytes_raw()))
    for path in sorted(ws.keys.iterdir()):
        found += _key_file(path)
    serve = ws.home / "serve"
    for path in sorted(serve.glob("*token*")) if serve.is_dir() else []:
        found.append(forms_of(f"serve/{path.name}", path.read_bytes().strip()))
    return found


def _key_file(path: Path) -> list[Secret]:
    """The secret a file of ``keys/`` holds; nothing for public ones (trusted keys lists)."""
    data = path.read_bytes()
    name = f"keys/{path.name}"
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None)
        assert isinstance(key, Ed25519PrivateKey | X25519PrivateKey), name
        body = b"".join(line for line in data.splitlines() if not line.startswith(b"-----"))
        return [forms_of(name, key.private_bytes_raw()), Secret(name + " (PEM)", (body,))]
    if "token" in path.name:
        return [forms_of(name, data.strip())]
    if path.suffix == ".key" and len(data) >= 16:
        return [forms_of(name, data)]
    return []


def leaks(body: bytes, found: list[Secret]) -> list[str]:
    """The names of the secrets any of whose forms ``body`` contains."""
    return [s.name for s in found if any(form in body for form in s.forms)]


def homes_under(folder: Path) -> list[Workspace]:
    """Every workspace in a demo folder (the operator's and each party's own home)."""
    return [Workspace.find(marker.parent) for marker in sorted(folder.rglob("workspace.json"))]
