"""HPKE (RFC 9180, DHKEM-X25519 / HKDF-SHA256 / AES-256-GCM) for wrapping data keys.

Keys travel to a party or a room only HPKE-sealed to its X25519 public key; ``info``
binds the wrapped key to its purpose so a key sealed for one use cannot be replayed
as another.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from sealroom.crypto.signing import b64, unb64
from sealroom.errors import SealError, WrongKeyError

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def public_key_from_b64(public_key_b64: str) -> X25519PublicKey:
    raw = unb64(public_key_b64, "X25519 public key")
    try:
        return X25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SealError("X25519 public key must be 32 bytes") from None


def seal_to(public_key_b64: str, plaintext: bytes, info: bytes) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of the matching private key opens it."""
    return SUITE.encrypt(plaintext, public_key_from_b64(public_key_b64), info=info)


def open_sealed(private_key: X25519PrivateKey, blob: bytes, info: bytes) -> bytes:
    """Open an HPKE blob; a wrong key, wrong ``info`` or any edit raises WrongKeyError."""
    try:
        return SUITE.decrypt(blob, private_key, info=info)
    except (InvalidTag, ValueError):
        raise WrongKeyError(
            "this key does not open the sealed key (wrong recipient or edited)"
        ) from None


def generate_ephemeral() -> tuple[X25519PrivateKey, str]:
    """A fresh key pair for one room run; the private half never leaves memory."""
    key = X25519PrivateKey.generate()
    return key, b64(key.public_key().public_bytes_raw())
