"""The key service's root key: AES-256-GCM, wraps every data key at rest (file mode 0600).

Wrapped form: 12-byte nonce || ciphertext+tag, with AAD naming the package and contract so a
wrapped key copied onto another record does not unwrap.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealroom.crypto.keyfiles import create_once
from sealroom.errors import SealroomError

ROOT_KEY_FILE = "kms-root.key"


class RootKeyError(SealroomError):
    """The root key is missing, malformed or does not unwrap a stored key."""


def _aad(package_digest: str, contract_id: str) -> bytes:
    return f"sealroom kms v1|{package_digest}|{contract_id}".encode()


class RootKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise RootKeyError(f"root key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> RootKey:
        path = keys_dir / ROOT_KEY_FILE
        create_once(path, lambda candidate: candidate.write_bytes(secrets.token_bytes(32)))
        return cls(path.read_bytes())

    def wrap(self, data_key: bytes, package_digest: str, contract_id: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, data_key, _aad(package_digest, contract_id))

    def unwrap(self, wrapped: bytes, package_digest: str, contract_id: str) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _aad(package_digest, contract_id))
        except (InvalidTag, ValueError):
            raise RootKeyError(
                f"stored key for {package_digest} (contract {contract_id}) does not unwrap "
                "under this root key"
            ) from None
