"""Contract verification names the missing or bad signer, and checks time and registration."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealroom.contract import (
    SignedContract,
    canonical_bytes,
    load_contract,
    propose_contract,
    sign_contract,
    verify_contract,
)
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import SigningKey
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.crypto.respell import respelled

Draft = Callable[..., Path]


@pytest.fixture
def registered(workspace: Workspace, parties: dict[str, Party], draft: Draft) -> SignedContract:
    propose_contract(workspace, draft(), "lab")
    sign_contract(workspace, "mnist-demo", "hospital")
    return sign_contract(workspace, "mnist-demo", "operator")


def _edit_signatures(ws: Workspace, change: Callable[[dict[str, str]], object]) -> None:
    path = ws.contracts / "mnist-demo.signatures.json"
    signatures = json.loads(path.read_text())
    change(signatures)
    path.write_text(json.dumps(signatures))


def test_fully_signed_contract_verifies(workspace: Workspace, registered: SignedContract) -> None:
    signed = verify_contract(workspace, "mnist-demo")
    assert signed.digest == registered.digest
    assert sorted(signed.signatures) == ["hospital", "lab", "operator"]


def test_missing_signer_is_named(workspace: Workspace, registered: SignedContract) -> None:
    _edit_signatures(workspace, lambda s: s.pop("hospital"))
    with pytest.raises(ContractError, match="missing signature from 'hospital'"):
        verify_contract(workspace, "mnist-demo")


def test_partly_signed_contract_names_every_missing_signer(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    signed = propose_contract(workspace, draft(), "lab")
    assert signed.receipt is None
    with pytest.raises(ContractError, match="missing signatures from 'hospital', 'operator'"):
        verify_contract(workspace, "mnist-demo")


def test_bad_signature_is_named(workspace: Workspace, registered: SignedContract) -> None:
    def corrupt(signatures: dict[str, str]) -> None:
        raw = bytearray(base64.b64decode(signatures["operator"]))
        raw[0] ^= 1
        signatures["operator"] = base64.b64encode(bytes(raw)).decode()

    _edit_signatures(workspace, corrupt)
    with pytest.raises(ContractError, match="signature from 'operator' does not verify"):
        verify_contract(workspace, "mnist-demo")


def test_respelled_signature_is_refused(workspace: Workspace, registered: SignedContract) -> None:
    _edit_signatures(workspace, lambda s: s.update(hospital=respelled(s["hospital"])))
    with pytest.raises(ContractError, match="signature from 'hospital' does not verify"):
        verify_contract(workspace, "mnist-demo")


def test_signature_by_the_wrong_key_is_named(
    workspace: Workspace, registered: SignedContract
) -> None:
    impostor = SigningKey.generate().sign(canonical_bytes(registered.contract))
    _edit_signatures(workspace, lambda s: s.update(hospital=base64.b64encode(impostor).decode()))
    with pytest.raises(ContractError, match="signature from 'hospital' does not verify"):
        verify_contract(workspace, "mnist-demo")


def test_signature_from_an_outsider_is_refused(registered: SignedContract) -> None:
    outsider = registered.with_signature("mallory", b"\x00" * 64)
    with pytest.raises(ContractError, match="'mallory', who is not one of its parties"):
        outsider.verify_signatures()


def test_edited_contract_no_longer_matches_its_signatures(
    workspace: Workspace, registered: SignedContract
) -> None:
    path = workspace.contracts / "mnist-demo.json"
    path.write_text(path.read_text().replace('"max_epochs": 5', '"max_epochs": 500'))
    with pytest.raises(ContractError, match="signature from 'hospital' does not verify"):
        verify_contract(workspace, "mnist-demo")


def test_expired_and_not_yet_valid_contracts_are_refused(
    workspace: Workspace, registered: SignedContract
) -> None:
    contract = registered.contract
    with pytest.raises(ContractError, match="mnist-demo expired at"):
        verify_contract(workspace, "mnist-demo", now=contract.expires)
    with pytest.raises(ContractError, match="not in force before"):
        verify_contract(workspace, "mnist-demo", now=contract.not_before - timedelta(seconds=1))
    verify_contract(workspace, "mnist-demo", now=contract.expires - timedelta(seconds=1))


def test_future_contract_can_be_signed_but_not_used_yet(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    start = datetime.now(UTC) + timedelta(days=1)
    propose_contract(workspace, draft(not_before=start.isoformat(), expires="1d"), "lab")
    sign_contract(workspace, "mnist-demo", "hospital")
    sign_contract(workspace, "mnist-demo", "operator")
    with pytest.raises(ContractError, match="not in force before"):
        verify_contract(workspace, "mnist-demo")
    verify_contract(workspace, "mnist-demo", now=start + timedelta(hours=1))


def test_unregistered_contract_is_refused(workspace: Workspace, registered: SignedContract) -> None:
    (workspace.contracts / "mnist-demo.receipt.json").unlink()
    with pytest.raises(ContractError, match="mnist-demo is not registered in the ledger"):
        verify_contract(workspace, "mnist-demo")


def test_receipt_from_another_ledger_is_refused(
    workspace: Workspace, registered: SignedContract, tmp_path: Path
) -> None:
    other = Workspace.create(tmp_path / "elsewhere")
    with Ledger.open(other) as ledger:
        fake = ledger.append("contract.registered", registered.registration_payload())
    (workspace.contracts / "mnist-demo.receipt.json").write_text(fake.model_dump_json())
    with pytest.raises(ContractError, match="signature does not verify with the ledger public key"):
        verify_contract(workspace, "mnist-demo")


def test_receipt_for_another_entry_is_refused(
    workspace: Workspace, registered: SignedContract
) -> None:
    with Ledger.open(workspace) as ledger:
        other = ledger.append("contract.registered", {"contract_id": "something-else"})
    (workspace.contracts / "mnist-demo.receipt.json").write_text(other.model_dump_json())
    with pytest.raises(ContractError, match="payload does not match"):
        verify_contract(workspace, "mnist-demo")


def test_receipt_checks_offline_with_only_the_public_key(
    workspace: Workspace, registered: SignedContract
) -> None:
    with Ledger.open(workspace) as ledger:
        public = ledger.public_key_b64
    signed = load_contract(workspace, "mnist-demo")
    receipt = signed.check_receipt(public)
    assert receipt.seq == 1
    with pytest.raises(ContractError, match="pins ledger key"):
        signed.check_receipt(SigningKey.generate().public_b64)
    unpinned = signed.model_copy(
        update={"contract": signed.contract.model_copy(update={"ledger_public_key": None})}
    )
    with pytest.raises(ContractError, match="does not verify"):
        unpinned.check_receipt(SigningKey.generate().public_b64)


def test_receipt_for_an_entry_the_ledger_lost_is_refused(
    workspace: Workspace, registered: SignedContract
) -> None:
    workspace.ledger_db.unlink()
    for suffix in ("-wal", "-shm"):
        workspace.ledger_db.with_name(workspace.ledger_db.name + suffix).unlink(missing_ok=True)
    with pytest.raises(ContractError, match="ledger entry 1, which this ledger does not hold"):
        verify_contract(workspace, "mnist-demo")


def test_auditor_verifies_a_contract_bundle_offline(
    workspace: Workspace, registered: SignedContract
) -> None:
    with Ledger.open(workspace) as ledger:
        public = ledger.public_key_b64
    bundle = SignedContract.model_validate_json(registered.model_dump_json())
    assert bundle.verify(public).seq == 1
    with pytest.raises(ContractError, match="expired"):
        bundle.verify(public, now=bundle.contract.expires)
