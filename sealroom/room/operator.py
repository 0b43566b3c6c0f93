"""The operator's end of the room channel: it holds the secrets, the room holds none.

One ``OperatorDesk`` per run answers the room's calls (see channel.py) with the workspace's
key service (or the contract's own ``key_service`` per dataset), the ledger, the software
attestation key and the privacy budget book. The room is untrusted: every call is checked
(the run id, the contract, which ledger entries and how often) before anything is signed.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from sealroom.contract.signed import SignedContract
from sealroom.errors import SealroomError
from sealroom.kms.service import KeyServiceAPI
from sealroom.ledger import Ledger, Receipt
from sealroom.room.channel import (
    ERRORS,
    AttestCall,
    ChannelError,
    NonceCall,
    RecordCall,
    ReleaseCall,
    Request,
    ReserveCall,
    Response,
    SettleCall,
    parse_room_line,
    request_id,
)
from sealroom.room.events import RoomEvent
from sealroom.room.failures import CATEGORIES, one_line
from sealroom.room.receipt import COMPLETED, FAILED, ROOM_KINDS, STARTED, RunRecord
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.room")

_STARTED_FIELDS = {"run_id", "contract_id", "pipeline_digest"}
_FAILED_FIELDS = {"run_id", "contract_id", "pipeline_digest", "stage", "reason"}


class OperatorDesk:
    """Answers one run's calls; ``finish`` settles what the room left open."""

    def __init__(self, ws: Workspace, run_id: str, signed: SignedContract) -> None:
        self.ws = ws
        self.run_id = run_id
        self.signed = signed
        self.contract = signed.contract
        self._services: dict[str, Any] = {}  # "" for the embedded one, else the URL
        self.recorded: dict[str, dict[str, Any]] = {}
        self.completed: RunRecord | None = None
        self.reserved: float | None = None  # ε of an open budget reservation
        self.releases: list[str] = []  # package digests released through this desk

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        for service in self._services.values():
            service.close()
        self._services.clear()

    def answer(self, line: bytes) -> Response | RoomEvent | None:
        """A response for a call line, the event of an event line, None for noise.

        ChannelError when the line is a call that cannot even be answered (no usable id).
        """
        try:
            message = parse_room_line(line)
        except ChannelError as exc:
            ident = request_id(line)
            if ident is None:
                raise
            return _refusal(ident, exc)
        if isinstance(message, Request):
            return self.handle(message)
        return message

    def handle(self, request: Request) -> Response:
        try:
            result = self._dispatch(request)
        except SealroomError as exc:
            return _refusal(request.id, exc)
        return Response(id=request.id, ok=True, result=result)

    def _dispatch(self, request: Request) -> dict[str, Any]:
        call = request.call
        if isinstance(call, AttestCall):
            from sealroom.attest.software import SoftwareAttester

            evidence = SoftwareAttester(self.ws).attest(call.report_data)
            return {"evidence": evidence.model_dump(mode="json")}
        if isinstance(call, NonceCall):
            nonce = self._service(call.package_digest).request_nonce()
            return {"nonce": _b64(nonce)}
        if isinstance(call, ReleaseCall):
            if call.request.contract_id != self.contract.id:
                raise ChannelError(
                    f"room channel: release under contract {call.request.contract_id!r}, "
                    f"not this run's {self.contract.id!r}"
                )
            sealed = self._service(call.request.package_digest).release(call.request)
            self.releases.append(call.request.package_digest)
            return {"sealed_key": _b64(sealed)}
        if isinstance(call, ReserveCall):
            return self._reserve(call)
        if isinstance(call, SettleCall):
            self._settle(call.spent_epsilon)
            return {}
        assert isinstance(call, RecordCall)
        return self._record(call)

    # ------------------------------------------------------------------ key services

    def _service(self, package_digest: str) -> KeyServiceAPI:
        """The key service holding this package's key: the dataset's own, else the embedded."""
        urls = {d.package_digest: d.key_service for d in self.contract.datasets}
        model = self.contract.model
        if package_digest not in urls and (model is None or model.package_digest != package_digest):
            raise ChannelError(
                f"room channel: package {package_digest} is not named by contract "
                f"{self.contract.id}"
            )
        url = urls.get(package_digest) or ""
        if url not in self._services:
            self._services[url] = self._open_service(url)
        service: KeyServiceAPI = self._services[url]
        return service

    def _open_service(self, url: str) -> Any:
        if url:
            from sealroom.kms.client import KmsClient

            return KmsClient(url)
        from sealroom.kms.service import KeyService
        from sealroom.privacy.budget import reservation_guard

        return KeyService(self.ws, guards=[reservation_guard(self.ws)])

    # ------------------------------------------------------------------ budget

    def _reserve(self, call: ReserveCall) -> dict[str, Any]:
        from sealroom.privacy.budget import BudgetBook

        if self.reserved is not None:
            raise ChannelError(f"room channel: run {self.run_id} already reserved its budget")
        with BudgetBook(self.ws) as book:
            book.reserve(self.run_id, self.contract, call.epsilon, call.delta)
        self.reserved = call.epsilon
        return {}

    def _settle(self, spent_epsilon: float) -> None:
        from sealroom.privacy.budget import BudgetBook

        if self.reserved is None:
            raise ChannelError(f"room channel: run {self.run_id} has no open reservation")
        with BudgetBook(self.ws) as book:
            book.settle(self.run_id, spent_epsilon)
        self.reserved = None

    # ------------------------------------------------------------------ ledger

    def _record(self, call: RecordCall) -> dict[str, Any]:
        kind, payload = call.kind, call.payload
        if kind not in ROOM_KINDS:
            raise ChannelError(f"room channel: a room may not record {kind!r} entries")
        if payload.get("run_id") != self.run_id:
            raise ChannelError(
                f"room channel: {kind} for run {str(payload.get('run_id'))[:80]!r}, "
                f"not this run {self.run_id!r}"
            )
        if payload.get("contract_id") != self.contract.id:
            raise ChannelError(f"room channel: {kind} names another contract")
        if kind in self.recorded or FAILED in self.recorded or COMPLETED in self.recorded:
            raise ChannelError(f"room channel: run {self.run_id} cannot record {kind} now")
        if kind == STARTED:
            payload = _only(payload, _STARTED_FIELDS, kind)
        elif kind == FAILED:
            payload = _only(payload, _FAILED_FIELDS, kind)
            if payload.get("stage") not in {*CATEGORIES, "start"}:
                raise ChannelError("room channel: run.failed names an unknown stage")
            payload["reason"] = one_line(str(payload.get("reason", "")))
            payload["recorded_by"] = "room"
        else:
            payload = self._completed(payload)
        receipt = self.append(kind, payload)
        self.recorded[kind] = payload
        with Ledger.open(self.ws) as ledger:
            key = ledger.public_key_b64
        return {"receipt": receipt.model_dump(mode="json"), "ledger_public_key": key}

    def _completed(self, payload: dict[str, Any]) -> dict[str, Any]:
        from sealroom.attest.software import attestation_key

        if STARTED not in self.recorded:
            raise ChannelError("room channel: run.completed before run.started")
        try:
            record = RunRecord.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ChannelError(f"room channel: run.completed: {where}: {first['msg']}") from None
        record.check_room_signature()
        if record.contract_digest != self.signed.digest:
            raise ChannelError("room channel: run.completed names another contract digest")
        evidence = record.room_evidence
        if (
            evidence.tee_type == "software"
            and evidence.signer != attestation_key(self.ws).public_b64
        ):
            raise ChannelError(
                "room channel: run.completed evidence is not signed by this workspace's "
                "attestation key"
            )
        self.completed = record
        return record.model_dump(mode="json")

    def append(self, kind: str, payload: dict[str, Any]) -> Receipt:
        with Ledger.open(self.ws) as ledger:
            return ledger.append(kind, payload)

    # ------------------------------------------------------------------ the end

    @property
    def failure(self) -> dict[str, Any] | None:
        return self.recorded.get(FAILED)

    def finish(self, reason: str | None) -> None:
        """After the room is gone: charge an open reservation in full (the room may have
        trained before it died), and record the failure if the room did not."""
        try:
            if self.reserved is not None:
                self._settle(self.reserved)
        finally:
            if reason is not None and not ({FAILED, COMPLETED} & set(self.recorded)):
                payload = {
                    "run_id": self.run_id,
                    "contract_id": self.contract.id,
                    "stage": "room",
                    "reason": reason,
                    "recorded_by": "operator",
                }
                self.append(FAILED, payload)
                self.recorded[FAILED] = payload


def _only(payload: dict[str, Any], allowed: set[str], kind: str) -> dict[str, Any]:
    extra = sorted(set(payload) - allowed)
    if extra:
        raise ChannelError(f"room channel: {kind} may not carry {extra[0][:40]!r}")
    return dict(payload)


def _refusal(ident: int, exc: SealroomError) -> Response:
    name = type(exc).__name__
    return Response(
        id=ident,
        ok=False,
        error=one_line(str(exc)),
        error_type=name if name in ERRORS else "ChannelError",
    )


def _b64(data: bytes) -> str:
    from sealroom.crypto.signing import b64

    return b64(data)
