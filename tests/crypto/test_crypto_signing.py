"""Service signing keys and HPKE wrapping."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealroom.crypto.hpke import generate_ephemeral, open_sealed, seal_to
from sealroom.crypto.signing import SigningKey, verify_signature
from sealroom.errors import SealError, SignatureError, WrongKeyError


def test_service_key_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "ledger.pem"
    first = SigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load_or_create(path).public_b64 == first.public_b64


@given(data=st.binary(max_size=64), flip=st.integers(min_value=0, max_value=63 * 8))
def test_any_bit_flip_of_a_signature_is_rejected(data: bytes, flip: int) -> None:
    key = SigningKey.generate()
    signature = bytearray(key.sign(data))
    signature[flip // 8] ^= 1 << (flip % 8)
    with pytest.raises(SignatureError, match="by ledger"):
        verify_signature(key.public_b64, bytes(signature), data, "ledger")


def test_garbage_public_key_is_named() -> None:
    with pytest.raises(SignatureError, match="public key of auditor"):
        verify_signature("not base64!", b"", b"", "auditor")


@given(st.binary(max_size=256))
def test_hpke_round_trip(plaintext: bytes) -> None:
    key, public = generate_ephemeral()
    assert open_sealed(key, seal_to(public, plaintext, b"i"), b"i") == plaintext


def test_hpke_tampered_blob_rejected() -> None:
    key, public = generate_ephemeral()
    blob = bytearray(seal_to(public, b"data key", b"i"))
    blob[-1] ^= 1
    with pytest.raises(WrongKeyError):
        open_sealed(key, bytes(blob), b"i")


def test_hpke_short_public_key_refused() -> None:
    with pytest.raises(SealError, match="32 bytes"):
        seal_to("AAAA", b"x", b"i")


def test_non_canonical_base64_of_a_valid_key_is_refused() -> None:
    from sealroom.crypto.signing import unb64
    from tests.crypto.respell import respelled

    key = SigningKey.generate().public_b64  # 32 bytes: the last character has 2 unused bits
    with pytest.raises(SignatureError, match="not canonical"):
        unb64(respelled(key), "key")
