"""HPKE contexts (RFC 9180, base mode) for sealed inference: seal, open and export.

``cryptography``'s HPKE is one-shot only (no context, no ``export``); serving needs the
exporter interface (the response key is exported from the request's context, the OHTTP
pattern), so this module wraps ``pyhpke``. The suite is fixed for serving:
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. Other AEADs exist only so the RFC
9180 appendix A vectors (AES-128-GCM) can check this very code path.

Invariant: a context is single-use per direction; its sequence number advances on every
seal/open, so a message can be opened only once and only in order.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pyhpke import (
    AEADId,
    CipherSuite,
    KDFId,
    KEMId,
    KEMKey,
    KEMKeyInterface,
    KEMKeyPair,
    PyHPKEError,
)
from pyhpke import ContextInterface as _Ctx

from sealroom.errors import SealError, WrongKeyError

PUBLIC_KEY_SIZE = 32
ENC_SIZE = 32  # DHKEM(X25519): the encapsulated key is the ephemeral public key
TAG_SIZE = 16


class SenderContext:
    """The client's half: seals messages to the recipient and exports shared secrets."""

    def __init__(self, ctx: _Ctx) -> None:
        self._ctx = ctx

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        return self._ctx.seal(plaintext, aad)

    def export(self, label: bytes, length: int) -> bytes:
        return self._ctx.export(label, length)


class RecipientContext:
    """The room's half: opens messages in order; any edit or wrong key raises WrongKeyError."""

    def __init__(self, ctx: _Ctx) -> None:
        self._ctx = ctx

    def open(self, ciphertext: bytes, aad: bytes = b"") -> bytes:
        try:
            return self._ctx.open(ciphertext, aad)
        except PyHPKEError:
            raise WrongKeyError(
                "sealed message does not open (edited, wrong room key or wrong context)"
            ) from None

    def export(self, label: bytes, length: int) -> bytes:
        return self._ctx.export(label, length)


class HpkeSuite:
    """One HPKE cipher suite over X25519 / HKDF-SHA256; serving uses :data:`ROOM_SUITE`."""

    def __init__(self, aead: AEADId) -> None:
        self._suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, aead)

    def derive_private_key(self, ikm: bytes) -> bytes:
        """DeriveKeyPair(ikm) of RFC 9180 section 7.1.3: the raw X25519 private key."""
        pair = self._suite.kem.derive_key_pair(ikm)
        return pair.private_key.to_private_bytes()

    def seal_context(
        self, public_key_raw: bytes, info: bytes, *, ephemeral_ikm: bytes | None = None
    ) -> tuple[bytes, SenderContext]:
        """(enc, sender context) to the X25519 key; ``ephemeral_ikm`` only for known answers."""
        if len(public_key_raw) != PUBLIC_KEY_SIZE:
            raise SealError(
                f"HPKE public key has {len(public_key_raw)} bytes, expected {PUBLIC_KEY_SIZE}"
            )
        try:
            pkr = self._suite.kem.deserialize_public_key(public_key_raw)
            eks: KEMKeyPair | None = None
            if ephemeral_ikm is not None:
                eks = self._suite.kem.derive_key_pair(ephemeral_ikm)
            enc, ctx = self._suite.create_sender_context(pkr, info, eks=eks)
        except (PyHPKEError, ValueError):
            raise SealError("HPKE public key is not a usable X25519 key") from None
        return enc, SenderContext(ctx)

    def open_context(
        self, private_key_raw: bytes | KEMKeyInterface, enc: bytes, info: bytes
    ) -> RecipientContext:
        """The recipient context for ``enc``; a malformed ``enc`` raises WrongKeyError."""
        if len(enc) != ENC_SIZE:
            raise WrongKeyError(f"HPKE enc has {len(enc)} bytes, expected {ENC_SIZE}")
        try:
            skr = (
                self._suite.kem.deserialize_private_key(private_key_raw)
                if isinstance(private_key_raw, bytes)
                else private_key_raw
            )
            ctx = self._suite.create_recipient_context(enc, skr, info)
        except (PyHPKEError, ValueError):
            # cryptography refuses low-order points (an all-zero shared secret) here.
            raise WrongKeyError("HPKE enc is not a usable X25519 public key") from None
        return RecipientContext(ctx)


ROOM_SUITE = HpkeSuite(AEADId.AES256_GCM)


class RoomHpkeKey:
    """The serving room's X25519 key: generated in the room, never stored, bound by attestation."""

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._key = KEMKey.from_pyca_cryptography_key(private_key)  # parsed once, not per request
        self._public = private_key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> RoomHpkeKey:
        return cls(X25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return self._public

    def open_context(self, enc: bytes, info: bytes) -> RecipientContext:
        return ROOM_SUITE.open_context(self._key, enc, info)

    def __repr__(self) -> str:
        return f"RoomHpkeKey(public={self._public.hex()})"


def seal_context(public_key_raw: bytes, info: bytes) -> tuple[bytes, SenderContext]:
    """Start a request to the room key ``public_key_raw``: (enc, sender context)."""
    return ROOM_SUITE.seal_context(public_key_raw, info)


def open_context(key: RoomHpkeKey, enc: bytes, info: bytes) -> RecipientContext:
    """The room's context for a request's ``enc`` (WrongKeyError if unusable)."""
    return key.open_context(enc, info)


__all__ = [
    "ENC_SIZE",
    "ROOM_SUITE",
    "AEADId",
    "HpkeSuite",
    "RecipientContext",
    "RoomHpkeKey",
    "SenderContext",
    "open_context",
    "seal_context",
]
