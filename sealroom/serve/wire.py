"""The sealed inference wire format: HPKE-sealed requests, responses under an exported key.

Request body: ``enc (32) || HPKE ciphertext`` (RFC 9180 base mode, suite of
:mod:`sealroom.crypto.hpke_context`, info :data:`REQUEST_INFO`, sequence 0). Plaintext frame:
``u32 header length (big-endian) || header JSON || raw array bytes`` (C order, little-endian,
dtype and shape from the header; decoded with ``np.frombuffer`` only, never pickle).

Response body (the OHTTP pattern, RFC 9458 section 4.4): ``secret = ctx.export(RESPONSE_LABEL,
32)``; ``response_nonce`` = 32 random bytes; ``key || nonce = HKDF-SHA256(secret, salt = enc ||
response_nonce, info = RESPONSE_INFO)``; body = ``response_nonce || AES-256-GCM(key, nonce,
plaintext)``. Only the sender of the request (who holds its context) and the room derive the
key, and each request has its own: a response replayed to another request does not open.

A restricted contract's client signs inside the sealed request (Ed25519 over
:func:`signed_message`: domain, contract digest, request id, time, client name, enc, dtype,
shape and SHA-256 of the array bytes), so only the room sees who asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealroom.crypto.hpke_context import (
    ENC_SIZE,
    TAG_SIZE,
    RecipientContext,
    RoomHpkeKey,
    SenderContext,
    seal_context,
)
from sealroom.crypto.signing import SigningKey, b64, unb64, verify_signature
from sealroom.errors import SealroomError, SignatureError, WrongKeyError

REQUEST_INFO = b"sealroom inference request v1"
RESPONSE_LABEL = b"sealroom inference response"
RESPONSE_INFO = b"sealroom inference response key v1"
SIGNATURE_DOMAIN = b"sealroom.serve.request.v1\0"
REQUEST_ID_SIZE = 16
RESPONSE_NONCE_SIZE = 32
MAX_HEADER_BYTES = 64 * 1024
MAX_AXES = 7
# Plain numeric dtypes only: object, complex, structured and string dtypes never decode.
DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
}
_HEADER_FIELDS = ("request_id", "issued_at", "contract_digest", "client", "dtype", "shape")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MIN_BODY = ENC_SIZE + TAG_SIZE + 4


class WireError(SealroomError):
    """A sealed request or response is malformed, tampered with or not ours to open."""


@dataclass(frozen=True)
class InferenceRequest:
    """One request as the room reads it (``enc`` is set once sealed or opened)."""

    request_id: bytes
    issued_at: float
    contract_digest: str
    client: str | None
    array: np.ndarray = field(repr=False)
    signature: bytes | None = None
    enc: bytes = b""

    @classmethod
    def new(
        cls, array: np.ndarray, contract_digest: str, client: str | None = None
    ) -> InferenceRequest:
        """A fresh request: random 16-byte id, issued now."""
        return cls(os.urandom(REQUEST_ID_SIZE), time.time(), contract_digest, client, array)

    @property
    def examples(self) -> int:
        return int(self.array.shape[0])


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def signed_message(request: InferenceRequest) -> bytes:
    """What a client signs: every field the room acts on, bound to this request's enc."""
    array = _wire_array(request.array)
    dtype = _dtype_name(array)
    shape = b"".join(struct.pack(">Q", size) for size in array.shape)  # u64be per axis
    return (
        SIGNATURE_DOMAIN
        + _lp(request.contract_digest.encode("utf-8"))
        + _lp(request.request_id)
        + struct.pack(">d", request.issued_at)
        + _lp((request.client or "").encode("utf-8"))
        + _lp(request.enc)
        + _lp(dtype.encode("ascii"))
        + _lp(shape)
        + _lp(hashlib.sha256(array.tobytes()).digest())
    )


def verify_client_signature(request: InferenceRequest, public_key_b64: str) -> None:
    """WireError unless the client named in the request signed it with ``public_key_b64``."""
    who = request.client or "anonymous client"
    if request.signature is None:
        raise WireError(f"request from client {who!r} carries no signature")
    if not request.enc:
        raise WireError(f"request from client {who!r} was never sealed (no enc)")
    try:
        verify_signature(public_key_b64, request.signature, signed_message(request), who)
    except SignatureError:
        raise WireError(
            f"request signature does not verify with the key of client {who!r}"
        ) from None


def _dtype_name(array: np.ndarray) -> str:
    name = array.dtype.name  # byte order aside: '>f4' and '<f4' are both float32
    if name not in DTYPES:
        raise WireError(f"array dtype {name} is not allowed (allowed: {', '.join(DTYPES)})")
    return name


def _wire_array(array: np.ndarray) -> np.ndarray:
    """The array as it travels: an allowed dtype, little-endian, C order, 1..7 axes."""
    if not isinstance(array, np.ndarray):
        raise WireError(f"request array must be a numpy array, got {type(array).__name__}")
    name = _dtype_name(array)
    if not 1 <= array.ndim <= MAX_AXES:
        raise WireError(f"array has {array.ndim} axes; 1 to {MAX_AXES} allowed (batch first)")
    return np.ascontiguousarray(array, dtype=DTYPES[name])


def seal_request(
    room_public_key: bytes, request: InferenceRequest, client_key: SigningKey | None
) -> tuple[bytes, ResponseKey]:
    """Seal ``request`` to the room's attested HPKE key; the client signs inside when keyed.

    Returns the body to POST and the key that alone opens this request's response.
    """
    if len(request.request_id) != REQUEST_ID_SIZE:
        raise WireError(f"request id has {len(request.request_id)} bytes, expected 16")
    if client_key is not None and not request.client:
        raise WireError("a request signed by a client key must name its client")
    array = _wire_array(request.array)
    enc, ctx = seal_context(room_public_key, REQUEST_INFO)
    sealed = replace(request, array=array, enc=enc, signature=None)
    if client_key is not None:
        sealed = replace(sealed, signature=client_key.sign(signed_message(sealed)))
    body = enc + ctx.seal(_frame(sealed))
    return body, ResponseKey(ctx, enc, request.request_id, hashlib.sha256(body).hexdigest())


def _frame(request: InferenceRequest) -> bytes:
    header = {
        "request_id": request.request_id.hex(),
        "issued_at": request.issued_at,
        "contract_digest": request.contract_digest,
        "client": request.client,
        "dtype": _dtype_name(request.array),
        "shape": list(request.array.shape),
        "signature": None if request.signature is None else b64(request.signature),
    }
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"request header is {len(head)} bytes, over {MAX_HEADER_BYTES}")
    return struct.pack(">I", len(head)) + head + request.array.tobytes()


def open_request(room_key: RoomHpkeKey, body: bytes) -> tuple[InferenceRequest, ResponseSealer]:
    """Open a sealed request (WireError naming what is wrong); the sealer answers it."""
    if len(body) < _MIN_BODY:
        raise WireError(
            f"sealed request is {len(body)} bytes, shorter than the {_MIN_BODY} minimum"
        )
    enc = bytes(body[:ENC_SIZE])
    try:
        ctx = room_key.open_context(enc, REQUEST_INFO)
        plaintext = ctx.open(bytes(body[ENC_SIZE:]))
    except WrongKeyError:
        raise WireError(
            "sealed request does not open with this room's key (edited in transit, "
            "or sealed to another key)"
        ) from None
    request = replace(_parse_frame(plaintext), enc=enc)
    return request, ResponseSealer(ctx, enc)


def _parse_frame(plaintext: bytes) -> InferenceRequest:
    if len(plaintext) < 4:
        raise WireError("request frame is truncated (no header length)")
    (size,) = struct.unpack(">I", plaintext[:4])
    if size > MAX_HEADER_BYTES:
        raise WireError(f"request header length {size} is over {MAX_HEADER_BYTES} bytes")
    if 4 + size > len(plaintext):
        raise WireError(f"request header length {size} runs past the end of the frame")
    try:
        header = json.loads(plaintext[4 : 4 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WireError("request header is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("request header must be a JSON object")
    fields = set(header)
    expected = {*_HEADER_FIELDS, "signature"}
    if fields != expected:
        odd = sorted(fields ^ expected)
        raise WireError(f"request header field {odd[0]!r} is missing or unexpected")
    return _request_from_header(header, plaintext[4 + size :])


def _request_from_header(header: dict[str, Any], data: bytes) -> InferenceRequest:
    def bad(name: str, why: str) -> WireError:
        return WireError(f"request header field {name}: {why}")

    rid = header["request_id"]
    if not isinstance(rid, str) or not re.fullmatch(r"[0-9a-f]{32}", rid):
        raise bad("request_id", "must be 16 bytes as 32 lowercase hex digits")
    issued = header["issued_at"]
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise bad("issued_at", "must be a number (unix seconds)")
    if not math.isfinite(issued):
        raise bad("issued_at", "must be finite")
    digest = header["contract_digest"]
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise bad("contract_digest", "must be sha256:<64 hex digits>")
    client = header["client"]
    if client is not None and (not isinstance(client, str) or not _CLIENT.match(client)):
        raise bad("client", "must be null or a client name (letters, digits, . _ -)")
    dtype_name = header["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise bad("dtype", f"{str(dtype_name)[:32]!r} is not allowed ({', '.join(DTYPES)})")
    shape = header["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_AXES:
        raise bad("shape", f"must list 1 to {MAX_AXES} axis sizes (batch first)")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise bad("shape", "every axis size must be an integer of at least 1")
    signature = header["signature"]
    sig: bytes | None = None
    if signature is not None:
        if not isinstance(signature, str):
            raise bad("signature", "must be null or base64")
        try:
            sig = unb64(signature, "request signature")
        except SignatureError as exc:
            raise bad("signature", str(exc)) from None
    dtype = DTYPES[dtype_name]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(
            f"request array has {len(data)} bytes; header dtype {dtype_name} and shape "
            f"{shape} need {expected}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return InferenceRequest(bytes.fromhex(rid), float(issued), digest, client, array, sig)


def _response_key(secret: bytes, enc: bytes, response_nonce: bytes) -> tuple[AESGCM, bytes]:
    okm = HKDF(
        algorithm=hashes.SHA256(), length=32 + 12, salt=enc + response_nonce, info=RESPONSE_INFO
    ).derive(secret)
    return AESGCM(okm[:32]), okm[32:]


class ResponseSealer:
    """The room's side of one request: seals its response under the exported key."""

    def __init__(self, ctx: RecipientContext, enc: bytes) -> None:
        self._secret = ctx.export(RESPONSE_LABEL, 32)
        self._enc = enc

    def seal(self, plaintext: bytes) -> bytes:
        response_nonce = os.urandom(RESPONSE_NONCE_SIZE)
        aead, nonce = _response_key(self._secret, self._enc, response_nonce)
        return response_nonce + aead.encrypt(nonce, plaintext, None)


class ResponseKey:
    """The client's side of one request: opens its response and nothing else."""

    def __init__(
        self, ctx: SenderContext, enc: bytes, request_id: bytes, request_sha256: str
    ) -> None:
        self._secret = ctx.export(RESPONSE_LABEL, 32)
        self._enc = enc
        self.request_id = request_id
        self.request_sha256 = request_sha256  # hex SHA-256 of the sealed body, as receipts name it

    def open(self, body: bytes) -> bytes:
        if len(body) < RESPONSE_NONCE_SIZE + TAG_SIZE:
            raise WireError(f"sealed response is {len(body)} bytes, too short to be one")
        aead, nonce = _response_key(self._secret, self._enc, bytes(body[:RESPONSE_NONCE_SIZE]))
        try:
            return aead.decrypt(nonce, bytes(body[RESPONSE_NONCE_SIZE:]), None)
        except InvalidTag:
            raise WireError(
                f"response does not open with the key of request {self.request_id.hex()} "
                "(edited, or the response to another request)"
            ) from None
