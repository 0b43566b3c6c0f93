"""Sealed requests and responses: round trips, and every malformed or hostile input refused."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto.hpke_context import ENC_SIZE, TAG_SIZE, RoomHpkeKey, seal_context
from sealroom.crypto.signing import SigningKey
from sealroom.serve.wire import (
    MAX_HEADER_BYTES,
    REQUEST_INFO,
    InferenceRequest,
    WireError,
    open_request,
    seal_request,
    verify_client_signature,
)

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def _request(client: str | None = "alice", array: np.ndarray | None = None) -> InferenceRequest:
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) if array is None else array
    return InferenceRequest.new(data, DIGEST, client)


def _raw_body(room: RoomHpkeKey, plaintext: bytes) -> bytes:
    """A body sealed correctly around an arbitrary (hostile) frame."""
    enc, ctx = seal_context(room.public_raw, REQUEST_INFO)
    return enc + ctx.seal(plaintext)


def _frame(header: dict[str, object], data: bytes) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack(">I", len(head)) + head + data


def _header(**over: object) -> dict[str, object]:
    header: dict[str, object] = {
        "request_id": "00" * 16,
        "issued_at": 1.5,
        "contract_digest": DIGEST,
        "client": None,
        "dtype": "float32",
        "shape": [2, 3],
        "signature": None,
    }
    header.update(over)
    return header


def test_round_trip_request_and_response() -> None:
    room, alice = RoomHpkeKey.generate(), SigningKey.generate()
    request = _request()
    body, response_key = seal_request(room.public_raw, request, alice)
    opened, sealer = open_request(room, body)
    assert opened.request_id == request.request_id
    assert opened.client == "alice" and opened.contract_digest == DIGEST
    assert opened.issued_at == request.issued_at
    np.testing.assert_array_equal(opened.array, request.array)
    assert opened.array.dtype == np.float32 and not opened.array.flags.writeable
    verify_client_signature(opened, alice.public_b64)
    assert response_key.open(sealer.seal(b'{"outputs": [1]}')) == b'{"outputs": [1]}'


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "uint8"])
def test_every_allowed_dtype_round_trips_byte_for_byte(dtype: str) -> None:
    room = RoomHpkeKey.generate()
    array = (np.arange(12) % 7).astype(dtype).reshape(3, 4)
    opened, _ = open_request(room, seal_request(room.public_raw, _request(None, array), None)[0])
    assert opened.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(opened.array, array)


def test_big_endian_and_non_contiguous_arrays_travel_as_their_values() -> None:
    room = RoomHpkeKey.generate()
    array = np.arange(12, dtype=">f4").reshape(3, 4).T
    opened, _ = open_request(room, seal_request(room.public_raw, _request(None, array), None)[0])
    np.testing.assert_array_equal(opened.array, array)


@pytest.mark.parametrize(
    "array",
    [
        np.array([object(), object()], dtype=object),
        np.ones(3, dtype=np.complex64),
        np.ones(3, dtype=np.float16),
        np.zeros(3, dtype=[("a", "<f4")]),
        np.array(["x"]),
    ],
    ids=["object", "complex", "float16", "structured", "string"],
)
def test_disallowed_dtypes_are_refused_when_sealing(array: np.ndarray) -> None:
    with pytest.raises(WireError, match=r"dtype .* is not allowed"):
        seal_request(RoomHpkeKey.generate().public_raw, _request(None, array), None)


def test_more_than_seven_axes_refused_when_sealing() -> None:
    with pytest.raises(WireError, match="8 axes"):
        seal_request(RoomHpkeKey.generate().public_raw, _request(None, np.ones([1] * 8)), None)


def test_request_id_must_be_16_bytes_when_sealing() -> None:
    request = replace(_request(), request_id=b"\x01" * 15)
    with pytest.raises(WireError, match="request id has 15 bytes"):
        seal_request(RoomHpkeKey.generate().public_raw, request, None)


# --- tampering and wrong keys ------------------------------------------------------------


@pytest.mark.parametrize("region", ["enc", "body", "tag"])
def test_tampered_ciphertext_is_refused(region: str) -> None:
    room = RoomHpkeKey.generate()
    body = bytearray(seal_request(room.public_raw, _request(), SigningKey.generate())[0])
    where = {"enc": 5, "body": ENC_SIZE + 10, "tag": len(body) - 3}[region]
    body[where] ^= 0x40
    with pytest.raises(WireError, match="does not open with this room's key"):
        open_request(room, bytes(body))


def test_request_sealed_to_another_key_is_refused() -> None:
    room, swapped = RoomHpkeKey.generate(), RoomHpkeKey.generate()
    body, _ = seal_request(swapped.public_raw, _request(), None)
    with pytest.raises(WireError, match="sealed to another key"):
        open_request(room, body)


def test_replayed_response_does_not_open_with_another_request_key() -> None:
    room = RoomHpkeKey.generate()
    body_a, key_a = seal_request(room.public_raw, _request(), None)
    _, key_b = seal_request(room.public_raw, _request(), None)
    _, sealer_a = open_request(room, body_a)
    response_a = sealer_a.seal(b'{"outputs": ["cat"]}')
    assert key_a.open(response_a) == b'{"outputs": ["cat"]}'
    with pytest.raises(WireError, match="the response to another request"):
        key_b.open(response_a)


@pytest.mark.parametrize("where", [0, 40, -1])
def test_tampered_response_is_refused(where: int) -> None:
    room = RoomHpkeKey.generate()
    body, key = seal_request(room.public_raw, _request(), None)
    response = bytearray(open_request(room, body)[1].seal(b"outputs"))
    response[where] ^= 1
    with pytest.raises(WireError, match="does not open"):
        key.open(bytes(response))


@pytest.mark.parametrize("size", [0, ENC_SIZE, ENC_SIZE + TAG_SIZE + 3])
def test_truncated_body_is_refused(size: int) -> None:
    room = RoomHpkeKey.generate()
    body, _ = seal_request(room.public_raw, _request(), None)
    with pytest.raises(WireError, match="shorter than"):
        open_request(room, body[:size])


def test_truncated_and_extended_ciphertext_are_refused() -> None:
    room = RoomHpkeKey.generate()
    body, _ = seal_request(room.public_raw, _request(), None)
    for hostile in (body[:-1], body + b"\x00"):
        with pytest.raises(WireError, match="does not open"):
            open_request(room, hostile)


def test_short_response_is_refused() -> None:
    room = RoomHpkeKey.generate()
    _, key = seal_request(room.public_raw, _request(), None)
    with pytest.raises(WireError, match="too short"):
        key.open(b"\x00" * 47)


# --- hostile frames inside a correctly sealed body ----------------------------------------


def test_header_length_over_64_kib_is_refused() -> None:
    room = RoomHpkeKey.generate()
    frame = struct.pack(">I", MAX_HEADER_BYTES + 1) + b" " * (MAX_HEADER_BYTES + 1)
    with pytest.raises(WireError, match="header length 65537 is over 65536"):
        open_request(room, _raw_body(room, frame))


def test_header_length_past_the_frame_is_refused() -> None:
    room = RoomHpkeKey.generate()
    with pytest.raises(WireError, match="runs past the end"):
        open_request(room, _raw_body(room, struct.pack(">I", 100) + b"{}"))


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (_header(shape=[2, 4]), b"\x00" * 24, "has 24 bytes; header dtype float32 and shape"),
        (_header(dtype="float64"), b"\x00" * 24, "need 48"),
        (_header(), b"\x00" * 25, "has 25 bytes"),
        (_header(dtype="object"), b"\x00" * 24, "field dtype: 'object' is not allowed"),
        (_header(dtype="complex64"), b"\x00" * 48, "field dtype: 'complex64' is not allowed"),
        (_header(shape=[1] * 8), b"\x00" * 4, "field shape: must list 1 to 7"),
        (_header(shape=[]), b"", "field shape: must list 1 to 7"),
        (_header(shape=[2, 0]), b"", "field shape: every axis size"),
        (_header(shape=[2, 3.0]), b"\x00" * 24, "field shape: every axis size"),
        (_header(shape=[True, 6]), b"\x00" * 24, "field shape: every axis size"),
        (_header(request_id="00" * 15), b"\x00" * 24, "field request_id: must be 16 bytes"),
        (_header(request_id="00" * 17), b"\x00" * 24, "field request_id: must be 16 bytes"),
        (_header(issued_at="now"), b"\x00" * 24, "field issued_at"),
        (_header(contract_digest="sha256:x"), b"\x00" * 24, "field contract_digest"),
        (_header(client="../bob"), b"\x00" * 24, "field client"),
        (_header(signature="!!"), b"\x00" * 24, "field signature"),
        ({**_header(), "pickle": 1}, b"\x00" * 24, "field 'pickle' is missing or unexpected"),
        ({k: v for k, v in _header().items() if k != "dtype"}, b"", "field 'dtype' is missing"),
    ],
    ids=[
        "shape-lies",
        "dtype-lies",
        "extra-byte",
        "object",
        "complex",
        "8-axes",
        "no-axes",
        "zero-axis",
        "float-axis",
        "bool-axis",
        "id-15",
        "id-17",
        "time",
        "digest",
        "client",
        "signature",
        "extra-field",
        "missing-field",
    ],
)
def test_hostile_header_is_refused(header: dict[str, object], data: bytes, message: str) -> None:
    room = RoomHpkeKey.generate()
    with pytest.raises(WireError, match=message):
        open_request(room, _raw_body(room, _frame(header, data)))


def test_header_that_is_not_a_json_object_is_refused() -> None:
    room = RoomHpkeKey.generate()
    for head in (b"[1, 2]", b"\xff\xfe", b"{not json"):
        frame = struct.pack(">I", len(head)) + head
        with pytest.raises(WireError, match="request header"):
            open_request(room, _raw_body(room, frame))


def test_well_formed_hand_built_frame_opens() -> None:
    """The hostile-header cases above fail for their stated reason, not for the framing."""
    room = RoomHpkeKey.generate()
    data = np.arange(6, dtype="<f4").tobytes()
    opened, _ = open_request(room, _raw_body(room, _frame(_header(), data)))
    assert opened.array.shape == (2, 3)


# --- client signatures ---------------------------------------------------------------------


def _opened(
    signer: SigningKey | None, client: str | None = "alice"
) -> tuple[RoomHpkeKey, InferenceRequest]:
    room = RoomHpkeKey.generate()
    body, _ = seal_request(room.public_raw, _request(client), signer)
    return room, open_request(room, body)[0]


def test_signature_by_another_clients_key_is_refused() -> None:
    alice, bob = SigningKey.generate(), SigningKey.generate()
    _, opened = _opened(bob, client="alice")  # bob signs, claiming to be alice
    with pytest.raises(WireError, match="does not verify with the key of client 'alice'"):
        verify_client_signature(opened, alice.public_b64)


def test_client_name_swapped_after_signing_is_refused() -> None:
    alice = SigningKey.generate()
    _, opened = _opened(alice)
    verify_client_signature(opened, alice.public_b64)
    with pytest.raises(WireError, match="does not verify"):
        verify_client_signature(replace(opened, client="bob"), alice.public_b64)


@pytest.mark.parametrize(
    "change",
    [
        {"contract_digest": OTHER_DIGEST},
        {"request_id": b"\x07" * 16},
        {"issued_at": 12.0},
        {"enc": b"\x09" * 32},
        {"array": np.zeros((2, 3, 4), dtype=np.float32)},
        {"array": np.arange(24, dtype=np.float32).reshape(4, 3, 2)},
        {"array": np.arange(24, dtype=np.int32).reshape(2, 3, 4)},
    ],
    ids=["contract-digest", "request-id", "time", "enc", "values", "shape", "dtype"],
)
def test_signature_covers_every_field(change: dict[str, object]) -> None:
    alice = SigningKey.generate()
    _, opened = _opened(alice)
    with pytest.raises(WireError, match="does not verify"):
        verify_client_signature(replace(opened, **change), alice.public_b64)  # type: ignore[arg-type]


def test_unsigned_request_is_refused_by_signature_check() -> None:
    _, opened = _opened(None)
    with pytest.raises(WireError, match="carries no signature"):
        verify_client_signature(opened, SigningKey.generate().public_b64)


def test_signing_key_without_client_name_is_refused() -> None:
    with pytest.raises(WireError, match="must name its client"):
        seal_request(RoomHpkeKey.generate().public_raw, _request(None), SigningKey.generate())


def test_nothing_readable_in_the_sealed_body() -> None:
    room = RoomHpkeKey.generate()
    array = np.full((1, 64), 7.25, dtype=np.float32)
    body, _ = seal_request(room.public_raw, _request("alice", array), SigningKey.generate())
    assert b"alice" not in body and DIGEST.encode() not in body
    assert array.tobytes()[:16] not in body


# --- properties -----------------------------------------------------------------------------

ROOM = RoomHpkeKey.generate()


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["float32", "float64", "int64", "int32", "uint8"]),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=7),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_allowed_array_round_trips(dtype: str, shape: list[int], seed: int) -> None:
    array = (np.random.default_rng(seed).random(shape) * 100).astype(dtype)
    request = InferenceRequest.new(array, DIGEST, None)
    opened, _ = open_request(ROOM, seal_request(ROOM.public_raw, request, None)[0])
    assert opened.array.dtype == np.dtype(dtype) and opened.array.shape == tuple(shape)
    np.testing.assert_array_equal(opened.array, array)


_SIGNED_BODY, _ = seal_request(ROOM.public_raw, _request(), SigningKey.generate())


@settings(max_examples=120, deadline=None)
@given(where=st.integers(0, len(_SIGNED_BODY) - 1), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_refused(where: int, bit: int) -> None:
    body = bytearray(_SIGNED_BODY)
    body[where] ^= 1 << bit
    with pytest.raises(WireError):
        open_request(ROOM, bytes(body))
