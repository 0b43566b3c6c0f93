"""The operator's end of a serving room's channel: it holds the secrets, the room holds none.

One ``ServeDesk`` per serving instance answers the room's calls (sealroom.room.channel):
``attest`` (evidence from :func:`sealroom.attest.select.room_attester`: software evidence
signed by the workspace's attestation key unless ``SEALROOM_ATTESTER`` says otherwise; one
for the startup attestation, one per ``/v1/attestation`` nonce), ``nonce`` (the key
service's, for this contract's current model only), ``release_model`` (the model key, for
this contract, its current model and this instance only, once), ``record`` (``inference.started``,
``inference.charged``, ``inference.receipts`` and ``inference.stopped`` of this instance
only, each checked) and ``counts`` (the latest ``inference.charged`` entry the ledger holds
for the contract). The room is untrusted: a call that names another contract, instance,
model or room key is refused, and so is a charged total that goes down (a budget may only
grow) or an ``inference.receipts`` entry that carries anything but roots (it is public).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from pydantic import ValidationError

from sealroom.attest.evidence import Attester
from sealroom.contract.signed import SignedContract
from sealroom.crypto.signing import b64
from sealroom.errors import SealroomError
from sealroom.ledger import Ledger, Receipt
from sealroom.room.channel import (
    AttestCall,
    ChannelError,
    CountsCall,
    ModelReleaseCall,
    NonceCall,
    RecordCall,
    Request,
)
from sealroom.room.desk_base import ChannelDesk, only_fields
from sealroom.room.failures import one_line
from sealroom.serve.budget import CHARGED_KIND, charged_totals
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.serve")

STARTED = "inference.started"
RECEIPTS = "inference.receipts"
CHARGED = CHARGED_KIND
STOPPED = "inference.stopped"
SERVE_KINDS = (STARTED, CHARGED, RECEIPTS, STOPPED)
_STARTED_FIELDS = {
    "contract_id",
    "instance",
    "room_key",
    "hpke_public_key",
    "model_digest",
    "attestation",
}
_RECEIPTS_FIELDS = {"contract_id", "instance", "room_key", "batches"}
_CHARGED_FIELDS = {"contract_id", "instance", "room_key", "charged"}
_BATCH_FIELDS = {"root", "size", "first_sequence"}
MAX_BATCHES_PER_ENTRY = 4096
NONCES_KEPT = 1024


def latest_counts(ledger: Any, contract_id: str) -> tuple[dict[str, Any], Receipt] | None:
    """The last ``inference.charged`` entry of a contract: its payload and ledger receipt
    (totals are cumulative: the last entry holds every client the contract charged)."""
    entries = ledger.find(CHARGED, contract_id=contract_id)
    if not entries:
        return None
    last = entries[-1]
    return dict(last.payload), last.receipt()


def _checked_totals(payload: dict[str, Any]) -> dict[str, int]:
    try:
        return charged_totals(payload)
    except SealroomError as exc:
        raise ChannelError(f"room channel: {exc}") from None


class ServeDesk(ChannelDesk):
    """Answers one serving instance's calls; ``finish`` records the stop."""

    def __init__(
        self, ws: Workspace, signed: SignedContract, instance: str, model_digest: str
    ) -> None:
        self.ws = ws
        self.signed = signed
        self.contract = signed.contract
        self.instance = instance
        self.model_digest = model_digest
        self.started: dict[str, Any] | None = None
        self.stopped = False
        self.released = False
        self.attestations = 0  # evidence signed for this instance (startup + per nonce)
        self._issued: deque[bytes] = deque(maxlen=NONCES_KEPT)
        self._service: Any = None
        self.attester: Attester | None = None
        with Ledger.open(ws) as ledger:
            last = latest_counts(ledger, signed.id)
            self.ledger_public_key = ledger.public_key_b64
        self.charged: dict[str, int] = _checked_totals(last[0]) if last else {}

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._service = None

    def _dispatch(self, request: Request) -> dict[str, Any]:
        call = request.call
        if isinstance(call, AttestCall):
            if self.attester is None:
                from sealroom.attest.select import room_attester

                self.attester = room_attester(self.ws)  # SEALROOM_ATTESTER, else software
            evidence = self.attester.attest(call.report_data)
            self.attestations += 1
            return {"evidence": evidence.model_dump(mode="json")}
        if isinstance(call, NonceCall):
            self._own_model(call.package_digest)
            nonce: bytes = self._keys().request_nonce()
            self._issued.append(nonce)
            return {"nonce": b64(nonce)}
        if isinstance(call, ModelReleaseCall):
            return {"sealed_key": b64(self._release(call.request))}
        if isinstance(call, RecordCall):
            return self._record(call.kind, call.payload)
        if isinstance(call, CountsCall):
            return self._counts(call.contract_id)
        raise ChannelError(f"room channel: a serving room may not call {call.op!r}")

    def _own_model(self, package_digest: str) -> None:
        if package_digest != self.model_digest:
            raise ChannelError(
                f"room channel: package {package_digest[:80]} is not the model this room serves"
            )

    def _keys(self) -> Any:
        if self._service is None:
            from sealroom.kms.service import KeyService

            self._service = KeyService(self.ws)
        return self._service

    # ------------------------------------------------------------------ the model key

    def _release(self, raw: dict[str, Any]) -> bytes:
        from sealroom.kms.models import ModelReleaseRequest

        try:
            request = ModelReleaseRequest.model_validate(raw)
        except ValidationError as exc:
            raise ChannelError(
                f"room channel: malformed release_model call: {_first(exc)}"
            ) from None
        if request.contract_id != self.contract.id:
            raise ChannelError("room channel: release_model names another contract")
        if request.instance != self.instance:
            raise ChannelError("room channel: release_model names another serving instance")
        self._own_model(request.package_digest)
        if self.released:
            raise ChannelError("room channel: this instance already has its model key")
        sealed: bytes = self._keys().release_model(request)
        self.released = True
        return sealed

    # ------------------------------------------------------------------ ledger

    def _record(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        if kind not in SERVE_KINDS:
            raise ChannelError(f"room channel: a serving room may not record {kind[:40]!r}")
        if payload.get("contract_id") != self.contract.id:
            raise ChannelError(f"room channel: {kind} names another contract")
        if payload.get("instance") != self.instance:
            raise ChannelError(f"room channel: {kind} names another serving instance")
        if self.stopped:
            raise ChannelError(f"room channel: instance {self.instance} already stopped")
        if kind == STARTED:
            payload = self._started(payload)
        elif self.started is None:
            raise ChannelError(f"room channel: {kind} before {STARTED}")
        elif kind == RECEIPTS:
            payload = self._receipts(payload)
        elif kind == CHARGED:
            payload = self._charged(payload)
        else:
            payload = {
                "contract_id": self.contract.id,
                "instance": self.instance,
                "reason": "room stopped",
                "recorded_by": "room",
            }
        receipt = self.append(kind, payload)
        if kind == STOPPED:
            self.stopped = True
        return {
            "receipt": receipt.model_dump(mode="json"),
            "ledger_public_key": self.ledger_public_key,
        }

    def _started(self, payload: dict[str, Any]) -> dict[str, Any]:
        from sealroom.attest.software import attestation_key
        from sealroom.serve.attestation import RoomAttestation, verify_room_attestation

        if self.started is not None:
            raise ChannelError(f"room channel: instance {self.instance} already started")
        payload = only_fields(payload, _STARTED_FIELDS, STARTED, complete=True)
        self._own_model(str(payload.get("model_digest")))
        try:
            att = RoomAttestation.model_validate(payload.get("attestation"))
        except ValidationError as exc:
            raise ChannelError(f"room channel: {STARTED}: attestation: {_first(exc)}") from None
        if att.nonce not in self._issued:
            raise ChannelError(f"room channel: {STARTED}: the attestation's nonce was not issued")
        if (att.room_key, att.hpke_public_key, att.instance, att.model_digest) != (
            payload.get("room_key"),
            payload.get("hpke_public_key"),
            self.instance,
            self.model_digest,
        ):
            raise ChannelError(f"room channel: {STARTED}: the attestation binds other keys")
        verify_room_attestation(
            att,
            nonce=att.nonce,
            contract=self.signed,
            model_digest=self.model_digest,
            trusted_signers={attestation_key(self.ws).public_b64},
        )
        clean = {**payload, "contract_digest": self.signed.digest}
        clean["attestation"] = att.model_dump(mode="json")
        self.started = clean
        return clean

    def _receipts(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Roots only: this payload is public (GET /v1/commitments), so no usage rides in it."""
        payload = self._own_room(
            only_fields(payload, _RECEIPTS_FIELDS, RECEIPTS, complete=True), RECEIPTS
        )
        batches = payload.get("batches")
        if not isinstance(batches, list) or len(batches) > MAX_BATCHES_PER_ENTRY:
            raise ChannelError(f"room channel: {RECEIPTS}: batches must be a bounded list")
        for batch in batches:
            if not isinstance(batch, dict) or set(batch) != _BATCH_FIELDS:
                raise ChannelError(f"room channel: {RECEIPTS}: a batch is malformed")
        return payload

    def _charged(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Cumulative totals that never go down, for every client the contract charged."""
        payload = self._own_room(
            only_fields(payload, _CHARGED_FIELDS, CHARGED, complete=True), CHARGED
        )
        charged = _checked_totals(payload)
        for name, before in self.charged.items():
            if charged.get(name, 0) < before:
                raise ChannelError(
                    f"room channel: {CHARGED}: charged total of {name[:80]} would go down "
                    f"({before} -> {charged.get(name, 0)})"
                )
        self.charged = charged
        return payload

    def _own_room(self, payload: dict[str, Any], kind: str) -> dict[str, Any]:
        assert self.started is not None
        if payload.get("room_key") != self.started["room_key"]:
            raise ChannelError(f"room channel: {kind} names another room key")
        return payload

    def _counts(self, contract_id: str) -> dict[str, Any]:
        if contract_id != self.contract.id:
            raise ChannelError("room channel: counts for another contract")
        with Ledger.open(self.ws) as ledger:
            last = latest_counts(ledger, contract_id)
        if last is None:
            return {"entries": []}
        payload, receipt = last
        return {"entries": [{"payload": payload, "receipt": receipt.model_dump(mode="json")}]}

    def append(self, kind: str, payload: dict[str, Any]) -> Receipt:
        with Ledger.open(self.ws) as ledger:
            return ledger.append(kind, payload)

    def finish(self, reason: str | None) -> None:
        """After the room is gone: record its stop, unless it did (or never started)."""
        if self.started is None or self.stopped:
            return
        payload = {
            "contract_id": self.contract.id,
            "instance": self.instance,
            "reason": one_line(reason or "stopped by the operator"),
            "recorded_by": "operator",
        }
        self.append(STOPPED, payload)
        self.stopped = True


def _first(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
