"""HPKE contexts: RFC 9180 known answers through our wrapper, interop, tamper refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sealroom.crypto.hpke_context import (
    ROOM_SUITE,
    AEADId,
    HpkeSuite,
    RoomHpkeKey,
    open_context,
    seal_context,
)
from sealroom.errors import SealError, WrongKeyError

DATA = Path(__file__).parent / "data"
H = bytes.fromhex


def _vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


A1 = _vector("rfc9180_a1_base_x25519_sha256_aes128gcm.json")
SUITE_A1 = HpkeSuite(AEADId[A1["aead"]])


def test_rfc9180_a1_derive_key_pair_gives_the_published_private_keys() -> None:
    assert SUITE_A1.derive_private_key(H(A1["ikmR"])) == H(A1["skRm"])
    assert SUITE_A1.derive_private_key(H(A1["ikmE"])) == H(A1["skEm"])
    public = X25519PrivateKey.from_private_bytes(H(A1["skRm"])).public_key().public_bytes_raw()
    assert public == H(A1["pkRm"])


def test_rfc9180_a1_sender_gives_enc_ciphertexts_and_exports() -> None:
    enc, sender = SUITE_A1.seal_context(H(A1["pkRm"]), H(A1["info"]), ephemeral_ikm=H(A1["ikmE"]))
    assert enc == H(A1["enc"])
    wanted = {e["seq"]: e for e in A1["encryptions"]}
    assert len(wanted) == 6  # a lost row would silently check less
    for seq in range(max(wanted) + 1):
        if seq in wanted:
            e = wanted[seq]
            assert sender.seal(H(e["pt"]), H(e["aad"])) == H(e["ct"]), f"seq {seq}"
        else:
            sender.seal(b"", b"")  # advance the sequence as the RFC's sender did
    for e in A1["exports"]:
        assert sender.export(H(e["exporter_context"]), e["L"]) == H(e["exported_value"])


def test_rfc9180_a1_recipient_opens_the_published_ciphertexts_in_order() -> None:
    recipient = SUITE_A1.open_context(H(A1["skRm"]), H(A1["enc"]), H(A1["info"]))
    first_three = [e for e in A1["encryptions"] if e["seq"] < 3]
    for e in first_three:
        assert recipient.open(H(e["ct"]), H(e["aad"])) == H(e["pt"])
    for e in A1["exports"]:
        assert recipient.export(H(e["exporter_context"]), e["L"]) == H(e["exported_value"])


def test_rfc9180_a1_recipient_refuses_out_of_order_ciphertext() -> None:
    recipient = SUITE_A1.open_context(H(A1["skRm"]), H(A1["enc"]), H(A1["info"]))
    second = A1["encryptions"][1]
    with pytest.raises(WrongKeyError, match="does not open"):
        recipient.open(H(second["ct"]), H(second["aad"]))


def test_room_key_round_trip_and_export_agree() -> None:
    key = RoomHpkeKey.generate()
    enc, sender = seal_context(key.public_raw, b"info")
    ct = sender.seal(b"hello", b"aad")
    recipient = open_context(key, enc, b"info")
    assert recipient.open(ct, b"aad") == b"hello"
    assert sender.export(b"label", 32) == recipient.export(b"label", 32)


@pytest.mark.parametrize("region", ["body", "tag"])
def test_tampered_ciphertext_is_refused(region: str) -> None:
    key = RoomHpkeKey.generate()
    enc, sender = seal_context(key.public_raw, b"info")
    ct = bytearray(sender.seal(b"x" * 64))
    ct[0 if region == "body" else len(ct) - 1] ^= 1
    with pytest.raises(WrongKeyError):
        open_context(key, enc, b"info").open(bytes(ct))


def test_wrong_info_or_wrong_key_is_refused() -> None:
    key = RoomHpkeKey.generate()
    enc, sender = seal_context(key.public_raw, b"info")
    ct = sender.seal(b"secret")
    with pytest.raises(WrongKeyError):
        open_context(key, enc, b"other info").open(ct)
    with pytest.raises(WrongKeyError):
        open_context(RoomHpkeKey.generate(), enc, b"info").open(ct)


def test_malformed_keys_and_enc_are_refused() -> None:
    with pytest.raises(SealError, match="32"):
        seal_context(b"\x01" * 31, b"")
    with pytest.raises(WrongKeyError, match="enc has 31 bytes"):
        open_context(RoomHpkeKey.generate(), b"\x01" * 31, b"")
    with pytest.raises(WrongKeyError, match="not a usable"):
        open_context(RoomHpkeKey.generate(), b"\x00" * 32, b"")  # low-order point


def test_context_seal_interoperates_with_cryptography_one_shot() -> None:
    """Sequence 0 with empty aad is exactly RFC 9180 single-shot Seal: enc || ct."""
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    enc, sender = ROOM_SUITE.seal_context(public, b"sealroom interop")
    blob = enc + sender.seal(b"one shot")
    assert suite.decrypt(blob, private, info=b"sealroom interop") == b"one shot"
    with pytest.raises(InvalidTag):
        suite.decrypt(blob, private, info=b"another info")
    # ...and the other way round: cryptography's one-shot blob opens in our context.
    other = suite.encrypt(b"back", private.public_key(), info=b"i")
    recipient = ROOM_SUITE.open_context(private.private_bytes_raw(), other[:32], b"i")
    assert recipient.open(other[32:]) == b"back"
