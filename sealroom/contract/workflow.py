"""Propose, sign, register: a draft becomes a contract every party signed and the ledger holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from sealroom.contract.canonical import canonical_bytes
from sealroom.contract.loading import describe_validation, load_contract_file
from sealroom.contract.revocation import (
    REVOKED,
    Revocation,
    RevocationError,
    check_stored_revocations,
    make_revocation,
    parse_revocation,
    store_revocation,
    stored_revocations,
)
from sealroom.contract.schema import Contract
from sealroom.contract.signed import (
    REGISTERED,
    SignedContract,
    check_ledger_pin,
    check_not_expired,
)
from sealroom.contract.store import contract_exists, contract_lock, load_contract, save_contract
from sealroom.crypto.identity import Party, load_identity, load_party
from sealroom.crypto.rotation import fingerprint_of, load_party_with_keys
from sealroom.errors import ContractError, IdentityError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace


def _workspace_keys(ws: Workspace, name: str) -> tuple[str, str] | None:
    try:
        identity = load_identity(ws, name)
    except IdentityError:
        return None
    return identity.signing_key, identity.encryption_key


def _check_signer(contract: Contract, party: Party) -> None:
    name = party.identity.name
    try:
        listed = contract.party(name)
    except KeyError:
        raise ContractError(f"contract {contract.id}: {name!r} is not one of its parties") from None
    if (listed.signing_key, listed.encryption_key) != (
        party.identity.signing_key,
        party.identity.encryption_key,
    ):
        raise ContractError(
            f"contract {contract.id}: the keys it lists for {name!r} are not {name}'s keys "
            "in this workspace"
        )


def register(ws: Workspace, signed: SignedContract) -> SignedContract:
    """Record a fully signed contract in the ledger and attach the receipt (idempotent)."""
    signed.verify_signatures()
    with Ledger.open(ws) as ledger:
        check_ledger_pin(signed.contract, ledger.public_key_b64)
        payload = signed.registration_payload()
        earlier = ledger.find(REGISTERED, contract_id=signed.id, contract_digest=signed.digest)
        receipt = earlier[0].receipt() if earlier else ledger.append(REGISTERED, payload)
    return signed.model_copy(update={"receipt": receipt})


def propose_contract(
    ws: Workspace,
    path: Path,
    as_name: str,
    now: datetime | None = None,
    ledger_key: str | None = None,
) -> SignedContract:
    """Validate a draft, store it and sign it as its proposer (a sole party registers it).

    The contract pins the ledger that will register it: the draft's ``ledger_public_key``,
    else ``ledger_key`` (when another workspace's ledger registers it), else this workspace's.
    """
    moment = now or datetime.now(UTC)
    party = load_party(ws, as_name)
    contract = load_contract_file(path, lambda name: _workspace_keys(ws, name), moment)
    contract = _pin_ledger(ws, contract, ledger_key, path)
    _check_signer(contract, party)
    check_not_expired(contract, moment)
    with contract_lock(ws, contract.id):
        if contract_exists(ws, contract.id):
            raise ContractError(f"contract {contract.id} already exists in {ws.contracts}")
        signed = SignedContract(contract=contract).with_signature(
            as_name, party.sign(canonical_bytes(contract))
        )
        if signed.complete:
            signed = register(ws, signed)
        save_contract(ws, signed)
    return signed


def _pin_ledger(ws: Workspace, contract: Contract, ledger_key: str | None, path: Path) -> Contract:
    pinned = contract.ledger_public_key
    if pinned is not None:
        if ledger_key is not None and ledger_key != pinned:
            raise ContractError(
                f"{path}: ledger_public_key {pinned[:12]}… differs from the ledger key given "
                f"({ledger_key[:12]}…)"
            )
        return contract
    if ledger_key is None:
        with Ledger.open(ws) as ledger:
            ledger_key = ledger.public_key_b64
    try:
        return Contract.model_validate({**contract.model_dump(), "ledger_public_key": ledger_key})
    except ValidationError as exc:
        raise ContractError(describe_validation("ledger key given", exc)) from None


def sign_contract(
    ws: Workspace, contract_id: str, as_name: str, now: datetime | None = None
) -> SignedContract:
    """Add one party's signature; the last signature registers the contract in the ledger."""
    moment = now or datetime.now(UTC)
    party = load_party(ws, as_name)
    with contract_lock(ws, contract_id):
        signed = load_contract(ws, contract_id)
        _check_signer(signed.contract, party)
        check_not_expired(signed.contract, moment)
        if as_name in signed.signatures:
            raise ContractError(f"{as_name!r} has already signed contract {contract_id}")
        check_stored_revocations(ws, signed.contract)
        signed = signed.with_signature(as_name, party.sign(canonical_bytes(signed.contract)))
        signed.verify_signature_of(as_name)
        if signed.complete:
            signed = register(ws, signed)
        save_contract(ws, signed)
    return signed


def import_contract(ws: Workspace, path: Path) -> SignedContract:
    """Merge a contract bundle (``contract export``) signed elsewhere into this workspace.

    Every signature in the bundle must verify; a local copy must be the same contract (same
    digest). A receipt in the bundle is kept (it names the ledger that registered the contract,
    checked offline with that ledger's key); a complete contract without one is registered in
    this workspace's ledger.
    """
    try:
        bundle = SignedContract.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ContractError(f"{path}: cannot read contract bundle ({exc.strerror})") from None
    except ValidationError as exc:
        raise ContractError(describe_validation(str(path), exc)) from None
    for name in sorted(bundle.signatures):
        bundle.verify_signature_of(name)
    with contract_lock(ws, bundle.id):
        merged = bundle
        if contract_exists(ws, bundle.id):
            local = load_contract(ws, bundle.id)
            if local.digest != bundle.digest:
                raise ContractError(
                    f"{path}: contract {bundle.id} differs from the one in this workspace "
                    f"({bundle.digest} vs {local.digest})"
                )
            signatures = {**local.signatures, **bundle.signatures}
            receipt = local.receipt or bundle.receipt
            merged = local.model_copy(update={"signatures": signatures, "receipt": receipt})
        if merged.complete and merged.receipt is None:
            merged = register(ws, merged)
        save_contract(ws, merged)
    return merged


def revoke_contract(
    ws: Workspace,
    contract_id: str,
    as_name: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Revocation:
    """Withdraw ``as_name``'s consent: sign a revocation with the key the contract pins for
    it (current or archived by a rotation), keep it beside the contract and in the ledger.

    Revoking twice returns the first revocation unchanged.
    """
    with contract_lock(ws, contract_id):
        contract = load_contract(ws, contract_id).contract
        try:
            listed = contract.party(as_name)
        except KeyError:
            raise ContractError(
                f"contract {contract_id}: {as_name!r} is not one of its parties"
            ) from None
        for earlier in stored_revocations(ws, contract):
            if earlier.party == as_name:
                return earlier
        party = load_party_with_keys(
            ws, as_name, fingerprint_of(listed.signing_key, listed.encryption_key)
        )
        revocation = make_revocation(
            contract, as_name, party.sign, reason, now or datetime.now(UTC)
        )
        revocation.verify_for(contract, f"revocation of {contract_id} by {as_name}")
        _record(ws, contract, revocation)
    return revocation


def import_revocation(ws: Workspace, path: Path) -> Revocation:
    """Accept a revocation made in another workspace (``contract revoke --out``).

    The contract must be known here, and the revocation signed by one of its parties with
    the key the contract pins for it; anything else is refused.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RevocationError(f"{path}: cannot read revocation ({exc.strerror})") from None
    revocation = parse_revocation(data, str(path))
    with contract_lock(ws, revocation.contract_id):
        contract = load_contract(ws, revocation.contract_id).contract
        revocation.verify_for(contract, str(path))
        _record(ws, contract, revocation)
    return revocation


def _record(ws: Workspace, contract: Contract, revocation: Revocation) -> None:
    """Store the revocation and log it once (the ledger entry is the document itself)."""
    store_revocation(ws, contract, revocation)
    payload = revocation.model_dump(mode="json")
    with Ledger.open(ws) as ledger:
        if not ledger.find(REVOKED, **payload):
            ledger.append(REVOKED, payload)
