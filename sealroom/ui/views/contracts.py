"""The contracts page: each contract's parties, signatures (each verified here), registration
receipt, state, constraints and pins. Only what the contract files and the ledger publish.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from sealroom.contract.canonical import contract_digest
from sealroom.contract.provision import current_model
from sealroom.contract.revocation import (
    FILE_SUFFIX,
    REVOKED,
    Revocation,
    parse_revocation,
    stored_revocations,
)
from sealroom.contract.schema import ID_PATTERN, Contract
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import load_contract
from sealroom.crypto.rotation import fingerprint_of
from sealroom.errors import SealroomError
from sealroom.ledger import LedgerView
from sealroom.ui.views.ledger_state import ledger_key, open_ledger
from sealroom.workspace import Workspace

_ID = re.compile(ID_PATTERN)
EXPIRING_DAYS = 7


class PartyView(BaseModel):
    name: str
    role: str
    fingerprint: str
    signed: bool
    signature_verified: bool
    problem: str | None = None


class ReceiptView(BaseModel):
    """The registration receipt: present, signed by the ledger the contract pins, for this
    contract, and an entry this workspace's ledger holds (when it is that ledger)."""

    present: bool
    verified: bool = False
    in_ledger: bool | None = None  # None: registered with another ledger, not checked here
    seq: int | None = None
    problem: str | None = None


class RevocationView(BaseModel):
    party: str
    revoked_at: str
    reason: str | None
    where: str


class ContractSummary(BaseModel):
    id: str
    purpose: str
    state: str  # proposed, signed, registered, revoked, expired, not-yet, invalid, unreadable
    problems: list[str]
    parties: list[PartyView]
    receipt: ReceiptView
    not_before: str
    expires: str
    expiring_soon: bool
    kind: str  # training or inference


class ContractDetail(ContractSummary):
    digest: str
    revocations: list[RevocationView]
    datasets: list[dict[str, Any]]
    model: dict[str, Any] | None
    constraints: dict[str, Any]
    room: dict[str, Any]
    inference: dict[str, Any] | None
    ledger_public_key: str | None
    serving: dict[str, Any] | None  # the model a served contract serves, by owner statements
    policy_rego: bool


def every_field(model: BaseModel) -> dict[str, Any]:
    """All fields of a contract section, defaults included (the contract's own dump leaves
    out later-added fields at their default, which a reader still wants to see)."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = every_field(value)
        elif isinstance(value, list):
            out[name] = [every_field(v) if isinstance(v, BaseModel) else v for v in value]
        else:
            out[name] = value
    return json.loads(json.dumps(out, default=str))


def contract_ids(ws: Workspace) -> list[str]:
    """Every contract id stored in the workspace (the names store.list_contracts reads)."""
    if not ws.contracts.is_dir():
        return []
    names = (
        p.name[: -len(".json")]
        for p in ws.contracts.glob("*.json")
        if not p.name.endswith((".signatures.json", ".receipt.json", FILE_SUFFIX))
    )
    return sorted(n for n in names if _ID.match(n))


def _parties(signed: SignedContract) -> tuple[list[PartyView], list[str]]:
    views, problems = [], []
    for party in signed.contract.parties:
        problem = None
        ok = False
        if party.name in signed.signatures:
            try:
                signed.verify_signature_of(party.name)
                ok = True
            except SealroomError as exc:
                problem = str(exc)
                problems.append(problem)
        views.append(
            PartyView(
                name=party.name,
                role=party.role,
                fingerprint=fingerprint_of(party.signing_key, party.encryption_key),
                signed=party.name in signed.signatures,
                signature_verified=ok,
                problem=problem,
            )
        )
    strangers = sorted(set(signed.signatures) - {p.name for p in signed.contract.parties})
    problems += [f"a signature from {name!r}, who is not a party" for name in strangers]
    return views, problems


def _receipt(signed: SignedContract, view: LedgerView | None, ours: str | None) -> ReceiptView:
    if signed.receipt is None:
        return ReceiptView(present=False)
    key = signed.contract.ledger_public_key or ours
    out = ReceiptView(present=True, seq=signed.receipt.seq)
    if key is None:
        return out.model_copy(update={"problem": "no ledger public key to check it with"})
    try:
        signed.check_receipt(key)
    except SealroomError as exc:
        return out.model_copy(update={"problem": str(exc)})
    if key != ours or view is None:
        return out.model_copy(update={"verified": True})
    held = view.contains(signed.receipt)
    problem = None if held else f"ledger entry {signed.receipt.seq} is not in this ledger"
    return out.model_copy(update={"verified": True, "in_ledger": held, "problem": problem})


def _revocations(
    ws: Workspace, contract: Contract, view: LedgerView | None
) -> tuple[list[RevocationView], list[str]]:
    found: list[tuple[Revocation, str]] = []
    problems: list[str] = []
    try:
        found += [(r, "file beside the contract") for r in stored_revocations(ws, contract)]
    except SealroomError as exc:
        problems.append(str(exc))
    if view is not None and view.public_key_b64:
        for entry in view.entries(REVOKED):
            if entry.payload.get("contract_id") != contract.id:
                continue
            where = f"ledger entry {entry.seq}"
            try:
                revocation = parse_revocation(json.dumps(entry.payload).encode(), where)
                revocation.verify_for(contract, where)
                found.append((revocation, where))
            except SealroomError as exc:
                problems.append(str(exc))
    views = [
        RevocationView(party=r.party, revoked_at=r.when, reason=r.reason, where=where)
        for r, where in sorted(found, key=lambda f: f[0].revoked_at)
    ]
    return views, problems


def _state(
    signed: SignedContract, receipt: ReceiptView, revoked: bool, problems: list[str], now: datetime
) -> str:
    contract = signed.contract
    if revoked:
        return "revoked"
    if now >= contract.expires:
        return "expired"
    if problems or (receipt.present and not receipt.verified):
        return "invalid"
    if not signed.complete:
        return "proposed"
    if not receipt.present:
        return "signed"
    if now < contract.not_before:
        return "not-yet"
    return "registered"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(
    ws: Workspace, signed: SignedContract, view: LedgerView | None, now: datetime
) -> tuple[ContractSummary, list[RevocationView]]:
    contract = signed.contract
    parties, problems = _parties(signed)
    receipt = _receipt(signed, view, ledger_key(ws))
    if receipt.problem:
        problems.append(receipt.problem)
    revocations, revocation_problems = _revocations(ws, contract, view)
    problems += revocation_problems
    state = _state(signed, receipt, bool(revocations), problems, now)
    summary = ContractSummary(
        id=contract.id,
        purpose=contract.purpose,
        state=state,
        problems=problems,
        parties=parties,
        receipt=receipt,
        not_before=_iso(contract.not_before),
        expires=_iso(contract.expires),
        expiring_soon=now <= contract.expires < now + timedelta(days=EXPIRING_DAYS),
        kind="inference" if contract.inference is not None else "training",
    )
    return summary, revocations


def _unreadable(contract_id: str, problem: str) -> ContractSummary:
    return ContractSummary(
        id=contract_id, purpose="", state="unreadable", problems=[problem], parties=[],
        receipt=ReceiptView(present=False), not_before="", expires="", expiring_soon=False,
        kind="",
    )  # fmt: skip


def list_contract_views(ws: Workspace, now: datetime | None = None) -> list[ContractSummary]:
    """Every contract in the workspace; one that does not load is listed as unreadable."""
    moment = now or datetime.now(UTC)
    out = []
    with open_ledger(ws) as view:
        for contract_id in contract_ids(ws):
            try:
                signed = load_contract(ws, contract_id)
            except SealroomError as exc:
                out.append(_unreadable(contract_id, str(exc)))
                continue
            out.append(_summary(ws, signed, view, moment)[0])
    return out


def contract_detail(
    ws: Workspace, contract_id: str, now: datetime | None = None
) -> ContractDetail | None:
    """One contract in full; None when the workspace has no contract of that id."""
    if contract_id not in contract_ids(ws):
        return None
    moment = now or datetime.now(UTC)
    signed = load_contract(ws, contract_id)
    contract = signed.contract
    with open_ledger(ws) as view:
        summary, revocations = _summary(ws, signed, view, moment)
        serving = _serving(signed, view)
    return ContractDetail(
        **summary.model_dump(),
        digest=contract_digest(contract),
        revocations=revocations,
        datasets=[every_field(d) for d in contract.datasets],
        model=every_field(contract.model) if contract.model else None,
        constraints=every_field(contract.constraints),
        room=every_field(contract.room),
        inference=every_field(contract.inference) if contract.inference else None,
        ledger_public_key=contract.ledger_public_key,
        serving=serving,
        policy_rego=contract.policy_rego is not None,
    )


def _serving(signed: SignedContract, view: LedgerView | None) -> dict[str, Any] | None:
    """An inference contract's model state, replayed from its owner's ledger statements."""
    if signed.contract.inference is None or view is None or not view.public_key_b64:
        return None
    skipped: list[str] = []
    try:
        state = current_model(view, signed, skipped)
    except SealroomError as exc:
        return {"problem": str(exc)}
    return {
        "digest": state.serving,
        "retired": state.retired,
        "seq": state.seq,
        "skipped": skipped,
    }
