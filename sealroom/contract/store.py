"""Contracts on disk: ``contracts/<id>.json`` beside ``<id>.signatures.json`` and
``<id>.receipt.json``; plus the check every consumer of a contract runs, verify_contract.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from sealroom.contract.loading import describe_validation
from sealroom.contract.revocation import FILE_SUFFIX as REVOCATIONS_SUFFIX
from sealroom.contract.revocation import check_not_revoked
from sealroom.contract.schema import ID_PATTERN, Contract
from sealroom.contract.signed import SignedContract
from sealroom.errors import ContractError
from sealroom.files import write_atomic
from sealroom.ledger import Ledger, Receipt
from sealroom.workspace import Workspace

_ID = re.compile(ID_PATTERN)


def _paths(ws: Workspace, contract_id: str) -> tuple[Path, Path, Path]:
    if not _ID.match(contract_id):
        raise ContractError(f"{contract_id!r} is not a valid contract id")
    base = ws.contracts
    return (
        base / f"{contract_id}.json",
        base / f"{contract_id}.signatures.json",
        base / f"{contract_id}.receipt.json",
    )


def contract_exists(ws: Workspace, contract_id: str) -> bool:
    return _paths(ws, contract_id)[0].exists()


@contextmanager
def contract_lock(ws: Workspace, contract_id: str) -> Iterator[None]:
    """Serialise read-modify-write of one contract's files across processes."""
    _paths(ws, contract_id)
    ws.contracts.mkdir(parents=True, exist_ok=True)
    with open(ws.contracts / f".{contract_id}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_contract(ws: Workspace, signed: SignedContract) -> None:
    """Write contract, signatures and (if any) receipt; the contract file is never rewritten."""
    contract_path, sigs_path, receipt_path = _paths(ws, signed.id)
    if not contract_path.exists():
        write_atomic(contract_path, (signed.contract.model_dump_json(indent=2) + "\n").encode())
    write_atomic(
        sigs_path, (json.dumps(signed.signatures, indent=2, sort_keys=True) + "\n").encode()
    )
    if signed.receipt is not None:
        write_atomic(receipt_path, (signed.receipt.model_dump_json(indent=2) + "\n").encode())


def load_contract(ws: Workspace, contract_id: str) -> SignedContract:
    """The stored contract with its signatures and receipt; ContractError if absent or malformed."""
    contract_path, sigs_path, receipt_path = _paths(ws, contract_id)
    if not contract_path.exists():
        raise ContractError(f"no contract {contract_id!r} in {ws.contracts}")
    try:
        contract = Contract.model_validate_json(contract_path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ContractError(describe_validation(str(contract_path), exc)) from None
    if contract.id != contract_id:
        raise ContractError(f"{contract_path}: holds contract {contract.id!r}, not {contract_id!r}")
    signatures: dict[str, str] = {}
    if sigs_path.exists():
        try:
            raw = json.loads(sigs_path.read_text(encoding="utf-8"))
        except ValueError:
            raw = None
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ContractError(f"{sigs_path}: not a mapping of party name to signature")
        signatures = raw
    receipt = None
    if receipt_path.exists():
        try:
            receipt = Receipt.model_validate_json(receipt_path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ContractError(describe_validation(str(receipt_path), exc)) from None
    return SignedContract(contract=contract, signatures=signatures, receipt=receipt)


def list_contracts(ws: Workspace) -> list[SignedContract]:
    """Every contract stored in the workspace, by id."""
    ids = sorted(
        p.name[: -len(".json")]
        for p in ws.contracts.glob("*.json")
        if not p.name.endswith((".signatures.json", ".receipt.json", REVOCATIONS_SUFFIX))
    )
    return [load_contract(ws, contract_id) for contract_id in ids if _ID.match(contract_id)]


def verify_contract(ws: Workspace, contract_id: str, now: datetime | None = None) -> SignedContract:
    """Signatures complete and valid, in force at ``now``, registered in this ledger, and
    not revoked by any of its parties.

    The receipt is checked offline against the ledger's public key and must name an entry
    the ledger holds. A contract that pins another ledger (a provider's own key service,
    apart from the room's workspace) is registered there: its receipt must verify with the
    key every party signed for, and revocations are checked here too. This is the check the
    key service and the room run before anything else.
    """
    signed = load_contract(ws, contract_id)
    with Ledger.open(ws) as ledger:
        pinned = signed.contract.ledger_public_key
        if pinned is not None and pinned != ledger.public_key_b64:
            signed.verify(pinned, now)
            check_not_revoked(ws, signed.contract, ledger)
            return signed
        receipt = signed.verify(ledger.public_key_b64, now)
        if not ledger.contains(receipt):
            raise ContractError(
                f"contract {contract_id}: its receipt names ledger entry {receipt.seq}, "
                "which this ledger does not hold"
            )
        check_not_revoked(ws, signed.contract, ledger)
    return signed
