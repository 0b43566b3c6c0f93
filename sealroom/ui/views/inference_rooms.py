"""A contract's rooms and committed receipt batches, checked as a client's ``sealroom receipt
verify`` checks them: each entry against the contract's pinned ledger key, the chain (its
hashes up to the signed head), the room key its instance attested at start, and that
startup attestation's evidence and binding."""

from __future__ import annotations

from pydantic import ValidationError

from sealroom.contract.signed import SignedContract
from sealroom.errors import SealroomError
from sealroom.ledger import LedgerView
from sealroom.ledger.entries import Entry
from sealroom.serve.desk import RECEIPTS, STARTED, STOPPED
from sealroom.ui.views.inference import (
    ChainStatus,
    Commitment,
    InferenceDetail,
    RoomInstance,
    of_contract,
    receipt_count,
    served_model,
    verify_commands,
)
from sealroom.workspace import Workspace

COMMITMENTS_SHOWN = 50  # newest first on a contract's page; the count covers all of them


def detail(ws: Workspace, signed: SignedContract) -> InferenceDetail:
    """A contract's page: its model, rooms and commitments, each entry checked."""
    model = served_model(ws, signed)
    empty = InferenceDetail(
        model=model,
        chain=ChainStatus(ok=False, entries=0, first_bad=None, message=model.problem or ""),
        instances=[],
        commitments=[],
        commitments_total=0,
        receipts_total=0,
        verify=verify_commands(signed.id),
    )
    if model.ledger_key is None or not ws.ledger_db.exists():
        return empty
    with LedgerView.open_copy(ws.ledger_db, model.ledger_key) as ledger:
        chain = chain_status(ledger)
        started = of_contract(ledger.entries(STARTED), signed.id)
        stopped = {
            e.payload.get("instance"): e for e in of_contract(ledger.entries(STOPPED), signed.id)
        }
        commitments = of_contract(ledger.entries(RECEIPTS), signed.id)
    room_keys = {str(e.payload.get("instance")): str(e.payload.get("room_key")) for e in started}
    instances = [room_instance(signed, e, stopped.get(e.payload.get("instance"))) for e in started]
    checked = [
        check_commitment(e, model.ledger_key, chain, room_keys)
        for e in reversed(commitments[-COMMITMENTS_SHOWN:])
    ]
    return empty.model_copy(
        update={
            "chain": chain,
            "instances": list(reversed(instances)),
            "commitments": checked,
            "commitments_total": len(commitments),
            "receipts_total": sum(receipt_count(e) for e in commitments),
        }
    )


def open_room_started(ws: Workspace, signed: SignedContract) -> str | None:
    """When the contract's newest room that has not stopped started (ledger time), if any."""
    key = signed.contract.ledger_public_key
    if key is None or not ws.ledger_db.exists():
        return None
    with LedgerView.open_copy(ws.ledger_db, key) as ledger:
        started = of_contract(ledger.entries(STARTED), signed.id)
        stopped = {
            e.payload.get("instance") for e in of_contract(ledger.entries(STOPPED), signed.id)
        }
    open_rooms = [e for e in started if e.payload.get("instance") not in stopped]
    return open_rooms[-1].timestamp if open_rooms else None


def chain_status(ledger: LedgerView) -> ChainStatus:
    """The whole chain walked once (hashes up to the signed head): intact, or the first
    entry that is not."""
    from sealroom.ledger.errors import ChainBroken

    try:
        count = ledger.verify_links()
    except ChainBroken as exc:
        return ChainStatus(ok=False, entries=len(ledger), first_bad=exc.seq, message=str(exc))
    except SealroomError as exc:
        return ChainStatus(ok=False, entries=0, first_bad=None, message=str(exc))
    return ChainStatus(ok=True, entries=count, first_bad=None, message=f"{count} entries verify")


def check_commitment(
    entry: Entry, ledger_key: str, chain: ChainStatus, room_keys: dict[str, str]
) -> Commitment:
    """One ``inference.receipts`` entry with its three checks (each one on its own)."""
    problems: list[str] = []
    try:
        receipt = entry.receipt()
        receipt.verify(ledger_key)
        receipt.check_payload(entry.payload)
        signature_ok = True
    except (SealroomError, ValueError) as exc:
        signature_ok = False
        problems.append(str(exc))
    chain_ok = chain.ok or (chain.first_bad is not None and entry.seq < chain.first_bad)
    if not chain_ok:
        problems.append(f"ledger chain: {chain.message}")
    instance = str(entry.payload.get("instance", ""))
    room_key = str(entry.payload.get("room_key", ""))
    room_ok = room_keys.get(instance) == room_key
    if not room_ok:
        problems.append("no inference.started entry of this instance attests this room key")
    batches = entry.payload.get("batches")
    first = batches[0] if isinstance(batches, list) and batches else None
    root = first.get("root") if isinstance(first, dict) else None
    return Commitment(
        seq=entry.seq,
        recorded_at=entry.timestamp,
        instance=instance,
        room_key=room_key,
        batches=len(batches) if isinstance(batches, list) else 0,
        receipts=receipt_count(entry),
        first_root=root if isinstance(root, str) else None,
        signature_ok=signature_ok,
        chain_ok=chain_ok,
        room_ok=room_ok,
        problem="; ".join(problems) or None,
    )


def room_instance(signed: SignedContract, started: Entry, stopped: Entry | None) -> RoomInstance:
    payload = started.payload
    stop = stopped.payload if stopped is not None else {}
    reason = stop.get("reason")
    return RoomInstance(
        instance=str(payload.get("instance", "")),
        started_seq=started.seq,
        started_at=started.timestamp,
        model_digest=str(payload.get("model_digest", "")),
        room_key=str(payload.get("room_key", "")),
        stopped_at=stopped.timestamp if stopped is not None else None,
        stop_reason=str(reason) if reason is not None else None,
        attestation=_attestation(signed, payload),
    )


def _attestation(signed: SignedContract, payload: dict[str, object]) -> str:
    """What the room's startup evidence proves: its signature (software evidence: INSECURE,
    whoever holds the host's attestation key can forge it), that it binds the room key, this
    contract and this model, and that its measurement is one the contract allows."""
    from sealroom.serve.attestation import RoomAttestation, check_binding, evidence_claims_of

    try:
        att = RoomAttestation.model_validate(payload.get("attestation"))
        claims = evidence_claims_of(att, None)
        check_binding(att, claims)
    except ValidationError:
        return "FAIL: the attestation is malformed"
    except SealroomError as exc:
        return f"FAIL: {exc}"
    if att.room_key != payload.get("room_key") or att.model_digest != payload.get("model_digest"):
        return "FAIL: the attestation binds another room key or model"
    if att.contract_digest != signed.digest:
        return "FAIL: the attestation is for another version of the contract"
    allowed = signed.contract.room.measurements
    if allowed and claims.measurement not in allowed:
        return f"FAIL: measurement {claims.measurement[:16]}… is not one the contract allows"
    insecure = " (INSECURE: software evidence)" if claims.insecure else ""
    signer = f", signed by {att.evidence.signer[:12]}…" if att.evidence.signer else ""
    return (
        f"ok: {att.evidence.tee_type} evidence binds room key, model and contract{signer}{insecure}"
    )
