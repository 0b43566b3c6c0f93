"""Run receipts: the room's and the ledger's signed word on what a run read, ran and released.

``runs/<run id>/receipt.json`` holds the ``run.completed`` payload (a RunRecord, signed by
the room's per-run key, which its attestation evidence binds), the ledger's receipt for it
(the countersignature) and the ledger public key that signed it. An auditor checks it
offline: the ledger signature over the entry hash, the payload against the digest the
entry recorded, the room signature and its binding in the evidence, then (when the sealed
outputs are at hand) each file against its digest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.attest.evidence import Evidence
from sealroom.errors import AttestationError, SealroomError
from sealroom.ledger import Receipt
from sealroom.ledger.errors import ReceiptInvalid
from sealroom.room.outputs import SealedOutput, check_sealed
from sealroom.room.runkey import check_room_signature
from sealroom.workspace import Workspace

RECEIPT_FILE = "receipt.json"
COMPLETED = "run.completed"
FAILED = "run.failed"
STARTED = "run.started"
ROOM_KINDS = (STARTED, FAILED, COMPLETED)  # the only ledger entries a room may ask for

EMBEDDED_CUSTODY = "embedded: keys in the operator's workspace; no protection from the operator"
EXTERNAL_CUSTODY = "external key service(s): "


class ReceiptError(SealroomError):
    """A run receipt is missing, malformed or does not verify."""


class RoomInfo(BaseModel):
    """What attested the room: TEE type, runtime measurement, and whether that proves anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tee_type: str
    measurement: str
    insecure: bool


class RunRecord(BaseModel):
    """The ``run.completed`` ledger payload, signed by the room's per-run key.

    ``metrics`` holds only the contract's public metrics; every released metric is in the
    sealed ``metrics.json``, whose plaintext digest is ``metrics_sha256``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    contract_id: str
    contract_digest: str
    pipeline: str
    pipeline_digest: str
    datasets: dict[str, str]  # dataset id -> package digest
    model_digest: str | None
    room: RoomInfo
    insecure: bool
    consumer: str
    consumer_fingerprint: str
    outputs: list[SealedOutput]
    outputs_key_sha256: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    metrics_sha256: str | None = None
    privacy: dict[str, Any] | None = None
    key_custody: str
    sandbox: str
    started: str
    ended: str
    room_key: str  # base64 Ed25519 public key, generated in the room for this run only
    room_evidence: Evidence
    room_signature: str = ""  # by room_key over the canonical record without this field

    def started_at(self) -> datetime | None:
        """When the run started (its hardware evidence was fresh then), None if unreadable."""
        try:
            moment = datetime.fromisoformat(self.started)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def check_room_signature(self) -> None:
        """ReceiptError unless the room key signed this record and its evidence binds the key."""
        try:
            claims = check_room_signature(
                self.model_dump(mode="json"),
                self.run_id,
                self.room_key,
                self.room_evidence,
                now=self.started_at(),
            )
        except AttestationError as exc:
            raise ReceiptError(f"run {self.run_id}: {exc}") from None
        if claims.measurement != self.room.measurement or claims.insecure != self.insecure:
            raise ReceiptError(f"run {self.run_id}: the room facts differ from its evidence")


class RunReceipt(BaseModel):
    """receipt.json: the record, the ledger receipt for it and the key that signed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: RunRecord
    receipt: Receipt
    ledger_public_key: str

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def verify(self, ledger_public_key: str | None = None) -> None:
        """ReceiptError unless the ledger signed this entry, it records exactly this run and
        the room's per-run key (bound into its evidence) signed the record."""
        key = ledger_public_key or self.ledger_public_key
        if key != self.ledger_public_key:
            raise ReceiptError(
                f"run {self.run_id}: receipt names a ledger key that is not the trusted one"
            )
        if self.receipt.kind != COMPLETED:
            raise ReceiptError(f"run {self.run_id}: receipt is for a {self.receipt.kind} entry")
        try:
            self.receipt.verify(key)
            self.receipt.check_payload(self.record.model_dump(mode="json"))
        except ReceiptInvalid as exc:
            raise ReceiptError(f"run {self.run_id}: {exc}") from None
        self.record.check_room_signature()

    def verify_outputs(self, run_dir: Path) -> None:
        """Also check the sealed files on disk against the digests the ledger recorded."""
        try:
            check_sealed(run_dir, self.record.outputs, self.record.outputs_key_sha256)
        except SealroomError as exc:
            raise ReceiptError(f"run {self.run_id}: {exc}") from None

    def save(self, run_dir: Path) -> Path:
        path = run_dir / RECEIPT_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def run_dir_of(ws: Workspace | None, run: str) -> Path:
    """A run given as an id (in ``ws.runs``), a run folder, or a receipt file's folder."""
    path = Path(run)
    if path.is_file():
        return path.parent
    if path.is_dir():
        return path
    if ws is not None and (ws.runs / run).is_dir():
        return ws.runs / run
    raise ReceiptError(f"no run {run!r}: not a run id in this workspace nor a run folder")


def load_receipt(run_dir: Path) -> RunReceipt:
    path = run_dir / RECEIPT_FILE
    try:
        return RunReceipt.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ReceiptError(f"{path}: missing (did the run complete?)") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReceiptError(f"{path}: {where}: {first['msg']}") from None
