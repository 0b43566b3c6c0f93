"""propose -> sign -> registered: the last signature records the contract in the ledger."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sealroom.contract import list_contracts, load_contract, propose_contract, sign_contract
from sealroom.contract.workflow import register
from sealroom.crypto.identity import Party, create_party
from sealroom.errors import ContractError, IdentityError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

Draft = Callable[..., Path]


def test_last_signature_registers_and_stores_the_receipt(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    proposed = propose_contract(workspace, draft(), "lab")
    assert proposed.signatures.keys() == {"lab"}
    assert proposed.missing_signers == ["hospital", "operator"]
    assert sign_contract(workspace, "mnist-demo", "hospital").receipt is None
    done = sign_contract(workspace, "mnist-demo", "operator")
    assert done.receipt is not None and done.complete
    assert (workspace.contracts / "mnist-demo.receipt.json").exists()
    with Ledger.open(workspace) as ledger:
        (entry,) = ledger.find("contract.registered", contract_id="mnist-demo")
        done.receipt.verify(ledger.public_key_b64)
    assert entry.payload["contract_digest"] == done.digest
    assert entry.seq == done.receipt.seq
    assert load_contract(workspace, "mnist-demo") == done
    assert [c.id for c in list_contracts(workspace)] == ["mnist-demo"]


def test_signatures_live_beside_the_contract_not_inside_it(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    propose_contract(workspace, draft(), "lab")
    stored = json.loads((workspace.contracts / "mnist-demo.json").read_text())
    assert "signatures" not in stored
    sigs = json.loads((workspace.contracts / "mnist-demo.signatures.json").read_text())
    assert list(sigs) == ["lab"]


def test_sole_party_contract_registers_on_proposal(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    signed = propose_contract(
        workspace,
        draft(parties=[{"name": "lab", "role": "consumer"}], datasets=[], model=None),
        "lab",
    )
    assert signed.receipt is not None


def test_proposer_must_be_a_party(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    create_party(workspace, "stranger", "consumer")
    with pytest.raises(ContractError, match="'stranger' is not one of its parties"):
        propose_contract(workspace, draft(), "stranger")


def test_unknown_signer_is_an_identity_error(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    with pytest.raises(IdentityError):
        propose_contract(workspace, draft(), "ghost")


def test_signer_keys_must_match_the_contract(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    other = Party.generate("hospital", "provider").identity
    listed = [
        {
            "name": "hospital",
            "role": "provider",
            "signing_key": other.signing_key,
            "encryption_key": other.encryption_key,
        },
        {"name": "lab", "role": "consumer"},
        {"name": "operator", "role": "operator"},
    ]
    propose_contract(workspace, draft(parties=listed), "lab")
    with pytest.raises(ContractError, match="keys it lists for 'hospital' are not hospital's"):
        sign_contract(workspace, "mnist-demo", "hospital")


def test_signing_twice_and_proposing_twice_are_refused(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    propose_contract(workspace, draft(), "lab")
    with pytest.raises(ContractError, match="'lab' has already signed contract mnist-demo"):
        sign_contract(workspace, "mnist-demo", "lab")
    with pytest.raises(ContractError, match="mnist-demo already exists"):
        propose_contract(workspace, draft(), "hospital")


def test_expired_draft_cannot_be_proposed(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    path = draft(not_before="2020-01-01T00:00:00Z", expires="2020-02-01T00:00:00Z")
    with pytest.raises(ContractError, match="expired at 2020-02-01"):
        propose_contract(workspace, path, "lab")


def test_unknown_and_malformed_ids_are_refused(workspace: Workspace) -> None:
    with pytest.raises(ContractError, match="no contract 'nope'"):
        load_contract(workspace, "nope")
    with pytest.raises(ContractError, match="not a valid contract id"):
        load_contract(workspace, "../../etc/passwd")


def test_registration_is_idempotent(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    propose_contract(workspace, draft(), "lab")
    sign_contract(workspace, "mnist-demo", "hospital")
    done = sign_contract(workspace, "mnist-demo", "operator")
    again = register(workspace, done.model_copy(update={"receipt": None}))
    assert again.receipt == done.receipt
    with Ledger.open(workspace) as ledger:
        assert len(ledger) == 1
