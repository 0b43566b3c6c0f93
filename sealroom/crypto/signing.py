"""Ed25519 signatures for parties and services (ledger, attestation, key service)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealroom.crypto.keyfiles import create_once, read_private_key, write_private_key
from sealroom.errors import SignatureError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    """Strict, canonical base64 decoding with an error that names the field.

    Canonical: the unused low bits of the last character must be zero, so each value has
    exactly one spelling and no edit of an encoded signature or key goes unnoticed.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what}: not valid base64") from None
    if b64(raw) != text:
        raise SignatureError(f"{what}: not canonical base64")
    return raw


def raw_public_key(value: str) -> str:
    """A pydantic field check: ``value`` is canonical base64 of a raw 32-byte public key
    (Ed25519 or X25519); ValueError otherwise, so the schema error names the field."""
    try:
        raw = unb64(value, "key")
    except SignatureError as exc:
        raise ValueError(str(exc).removeprefix("key: ")) from None
    if len(raw) != 32:
        raise ValueError(f"expected a 32-byte raw public key, got {len(raw)} bytes")
    return value


class SigningKey:
    """An Ed25519 private key with its public half in the base64 form documents carry."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        key = read_private_key(path, Ed25519PrivateKey)
        assert isinstance(key, Ed25519PrivateKey)
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """A service key: created on first use (race-safe), the same key ever after."""
        create_once(path, lambda candidate: cls.generate().save(candidate))
        return cls.load(path)

    def save(self, path: Path) -> None:
        write_private_key(path, self._key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    @property
    def public_b64(self) -> str:
        return b64(self._key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_b64})"


def verify_signature(public_b64: str, signature: bytes, data: bytes, who: str) -> None:
    """Check an Ed25519 signature; the error names the signer ``who``."""
    raw = unb64(public_b64, f"public key of {who}")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except ValueError:
        raise SignatureError(f"public key of {who} is not an Ed25519 key") from None
    except InvalidSignature:
        raise SignatureError(f"signature by {who} does not verify") from None
