"""The private channel between the room and the operator: JSON lines over the room's pipes.

The room holds no long-term secret. Whatever needs one (the key service's root key, the
ledger's signing key, the software attestation key, the privacy budget book) stays in the
operator's process, which the room asks over this channel:

- operator → room, stdin: one ``RoomRequest`` line (public facts and the signed contract),
  then one ``Response`` line per call, matched by id;
- room → operator, stdout: ``RoomEvent`` lines (stage, progress, log, done, failed) and
  ``Request`` lines (``"type": "call"``), each answered before the room goes on.

Calls: ``attest`` (software evidence over 64 bytes of report data), ``nonce`` and
``release`` (a package's key service, embedded or the contract's ``key_service``),
``budget.reserve`` / ``budget.settle`` and ``record`` (run.started, run.failed or
run.completed of this run only). A serving room (sealroom.serve.room) uses ``attest``,
``nonce``, ``record`` (inference.* entries), ``release_model`` and ``counts``; its desk
(sealroom.serve.desk) refuses the training calls, and the training desk the serving ones.
Lines are capped at MAX_LINE_BYTES; the operator treats the room as untrusted and refuses
anything else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.attest.evidence import REPORT_DATA_SIZE, Evidence
from sealroom.contract.pipeline_signature import PipelineSignature
from sealroom.contract.signed import SignedContract
from sealroom.errors import (
    BudgetExceeded,
    KeyReleaseDenied,
    PrivacyError,
    RoomError,
    SealroomError,
)
from sealroom.kms.models import DIGEST_PATTERN, ReleaseRequest
from sealroom.ledger import Receipt
from sealroom.pipeline.declaration import SignedDeclaration
from sealroom.room.events import RoomEvent

MAX_LINE_BYTES = 1 << 20  # a release request carries the pipeline document; nothing is bigger
CALL = "call"


class ChannelError(RoomError):
    """A message on the room's channel is malformed, too long, unknown or refused."""


class _Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )


class RoomRequest(_Message):
    """What the operator hands the room: public facts only, no path into the workspace
    other than the sealed packages, the pipeline and the room's staging folder."""

    run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    contract: SignedContract
    ledger_public_key: str
    pipeline: Path
    staging: Path
    packages: dict[str, Path] = Field(default_factory=dict)  # package digest -> folder
    # The consumer's signature on the pipeline (read by the operator from the .sig file),
    # passed on to the key service with each release request.
    pipeline_signature: PipelineSignature | None = None
    # The providers' signed dataset declarations (read by the operator from the workspace
    # or --declaration files); the room uses those the contract pins, verified.
    declarations: list[SignedDeclaration] = Field(default_factory=list, max_length=64)
    # The operator's explicit choice to run where the kernel has no Landlock.
    allow_unsandboxed: bool = False
    # Workspace paths the sandbox must never grant (the key service's, the ledger's, parties').
    secret_paths: list[Path] = Field(default_factory=list)


class AttestCall(_Message):
    op: Literal["attest"]
    report_data: bytes = Field(min_length=REPORT_DATA_SIZE, max_length=REPORT_DATA_SIZE)


class NonceCall(_Message):
    op: Literal["nonce"]
    package_digest: str = Field(pattern=DIGEST_PATTERN)


class ReleaseCall(_Message):
    op: Literal["release"]
    request: ReleaseRequest


class ReserveCall(_Message):
    op: Literal["budget.reserve"]
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0, lt=1)


class SettleCall(_Message):
    op: Literal["budget.settle"]
    spent_epsilon: float = Field(ge=0)


class RecordCall(_Message):
    op: Literal["record"]
    kind: str  # checked by the operator against ROOM_KINDS, so that a refusal names it
    payload: dict[str, Any]


class ModelReleaseCall(_Message):
    """A serving room asks for its model's key (sealroom.kms.models.ModelReleaseRequest as
    JSON: the desk validates it, so that this module needs nothing of the serving code)."""

    op: Literal["release_model"]
    request: dict[str, Any]


class CountsCall(_Message):
    """A serving room asks for the charged query totals its contract's ledger holds."""

    op: Literal["counts"]
    contract_id: str = Field(min_length=1, max_length=128)


Call = Annotated[
    AttestCall
    | NonceCall
    | ReleaseCall
    | ReserveCall
    | SettleCall
    | RecordCall
    | ModelReleaseCall
    | CountsCall,
    Field(discriminator="op"),
]
OPS = (
    "attest",
    "nonce",
    "release",
    "budget.reserve",
    "budget.settle",
    "record",
    "release_model",
    "counts",
)


class Request(_Message):
    type: Literal["call"] = "call"
    id: int = Field(ge=1)
    call: Call


class Response(_Message):
    id: int
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    error_type: str = ""  # one of ERRORS; anything else reaches the room as ChannelError


ERRORS: dict[str, type[SealroomError]] = {
    "KeyReleaseDenied": KeyReleaseDenied,
    "BudgetExceeded": BudgetExceeded,
    "PrivacyError": PrivacyError,
}


# ------------------------------------------------------------------------ reading lines


class LineTooLong(ChannelError):
    """A line passed MAX_LINE_BYTES (the rest of it was discarded unread)."""


def read_line(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> bytes | None:
    """The next line (without its newline), None at end of stream; LineTooLong past ``limit``.

    Never holds more than ``limit`` bytes of one line, and refuses an over-long one at once
    rather than reading on to its end: a peer that never ends the line must not hold the
    reader (the conversation is over either way; the operator kills the room).
    """
    line = stream.readline(limit + 1)
    if not line:
        return None
    if line.endswith(b"\n") or len(line) <= limit:
        return line.rstrip(b"\n")
    raise LineTooLong(f"room channel: a line is longer than {limit} bytes")


def parse_room_line(line: bytes) -> Request | RoomEvent | None:
    """A call, an event, or None for noise; ChannelError for a malformed or unknown call."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("type") != CALL:
        return RoomEvent.from_line(line.decode("utf-8", "replace"))
    op = data.get("call", {}).get("op") if isinstance(data.get("call"), dict) else None
    if op not in OPS:
        raise ChannelError(f"room channel: unknown op {str(op)[:40]!r} refused")
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ChannelError(f"room channel: malformed {op} call: {where}: {first['msg']}") from None


def request_id(line: bytes) -> int | None:
    """The id of a refused call, if it names a usable one (so that the room gets an answer)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# ------------------------------------------------------------------------ the room's client


class RoomChannel:
    """The room's end: one call at a time, each answered before the next (a serving room
    calls from several threads: the lock keeps each call and its answer together)."""

    def __init__(self, write_line: Callable[[str], None], responses: IO[bytes]) -> None:
        self._write = write_line
        self._responses = responses
        self._next = 0
        self._lock = threading.Lock()

    def call(self, call: Call) -> dict[str, Any]:
        """The operator's result for ``call``; its refusal raised as a SealroomError."""
        with self._lock:
            return self._call(call)

    def _call(self, call: Call) -> dict[str, Any]:
        self._next += 1
        self._write(Request(id=self._next, call=call).model_dump_json() + "\n")
        line = read_line(self._responses)
        if line is None:
            raise ChannelError("room channel: the operator closed the channel")
        try:
            response = Response.model_validate_json(line)
        except ValidationError:
            raise ChannelError("room channel: malformed response from the operator") from None
        if response.id != self._next:
            raise ChannelError(f"room channel: response {response.id} to call {self._next}")
        if not response.ok:
            raise ERRORS.get(response.error_type, ChannelError)(response.error)
        return response.result

    # Typed helpers, one per op.

    def attest(self, report_data: bytes) -> Evidence:
        result = self.call(AttestCall(op="attest", report_data=report_data))
        return Evidence.model_validate(result["evidence"])

    def nonce(self, package_digest: str) -> bytes:
        result = self.call(NonceCall(op="nonce", package_digest=package_digest))
        return NonceResult.model_validate(result).nonce

    def release(self, request: ReleaseRequest) -> bytes:
        result = self.call(ReleaseCall(op="release", request=request))
        return ReleaseResult.model_validate(result).sealed_key

    def reserve(self, epsilon: float, delta: float) -> None:
        self.call(ReserveCall(op="budget.reserve", epsilon=epsilon, delta=delta))

    def settle(self, spent_epsilon: float) -> None:
        self.call(SettleCall(op="budget.settle", spent_epsilon=spent_epsilon))

    def record(self, kind: str, payload: dict[str, Any]) -> RecordResult:
        result = self.call(RecordCall(op="record", kind=kind, payload=payload))
        return RecordResult.model_validate(result)

    def release_model(self, request: dict[str, Any]) -> bytes:
        result = self.call(ModelReleaseCall(op="release_model", request=request))
        return ReleaseResult.model_validate(result).sealed_key

    def counts(self, contract_id: str) -> list[CountsEntry]:
        result = self.call(CountsCall(op="counts", contract_id=contract_id))
        return CountsResult.model_validate(result).entries


class NonceResult(_Message):
    nonce: bytes


class ReleaseResult(_Message):
    sealed_key: bytes


class RecordResult(_Message):
    receipt: Receipt
    ledger_public_key: str


class CountsEntry(_Message):
    """One ledger entry (payload and the ledger's receipt for it), verified by the room."""

    payload: dict[str, Any]
    receipt: Receipt


class CountsResult(_Message):
    entries: list[CountsEntry] = Field(default_factory=list, max_length=64)


class ChannelKeyService:
    """A KeyServiceAPI for one package: the operator forwards to that package's service."""

    def __init__(self, channel: RoomChannel, package_digest: str) -> None:
        self.channel = channel
        self.package_digest = package_digest

    def request_nonce(self) -> bytes:
        return self.channel.nonce(self.package_digest)

    def release(self, request: ReleaseRequest) -> bytes:
        return self.channel.release(request)


class ChannelAttester:
    """Software attestation signed by the operator's workspace key (INSECURE either way).

    A hardware attester runs inside the room instead; this one exists so that the room
    never holds the workspace's attestation key.
    """

    tee_type = "software"

    def __init__(self, channel: RoomChannel) -> None:
        self.channel = channel

    def attest(self, report_data: bytes) -> Evidence:
        return self.channel.attest(report_data)
