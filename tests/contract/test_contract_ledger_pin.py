"""Contract.ledger_public_key: signed when set, absent from the signed bytes when not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import rfc8785

from sealroom.contract import canonical_bytes, load_contract_file, propose_contract
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import SigningKey
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

Draft = Callable[..., Path]


def test_an_unset_key_leaves_the_signed_bytes_as_they_were(draft: Draft) -> None:
    contract = load_contract_file(draft(), lambda name: ("A" * 43 + "=", "A" * 43 + "="))
    assert contract.ledger_public_key is None
    before = contract.model_dump(mode="json")
    assert "ledger_public_key" not in before
    assert canonical_bytes(contract) == rfc8785.dumps(before)
    assert b"ledger_public_key" not in canonical_bytes(contract)
    key = SigningKey.generate().public_b64
    pinned = contract.model_copy(update={"ledger_public_key": key})
    assert json.loads(canonical_bytes(pinned))["ledger_public_key"] == key


def test_a_malformed_key_is_refused(draft: Draft) -> None:
    path = draft(ledger_public_key="bm90IGEga2V5")
    with pytest.raises(ContractError, match=r"ledger_public_key: .*32-byte raw public key"):
        load_contract_file(path, lambda name: ("A" * 43 + "=", "A" * 43 + "="))


def test_propose_pins_this_workspace_ledger_or_the_one_given(
    workspace: Workspace, parties: dict[str, Party], draft: Draft
) -> None:
    with Ledger.open(workspace) as ledger:
        own = ledger.public_key_b64
    signed = propose_contract(workspace, draft(), "lab")
    assert signed.contract.ledger_public_key == own
    other = SigningKey.generate().public_b64
    given = propose_contract(workspace, draft(id="pinned-elsewhere"), "lab", ledger_key=other)
    assert given.contract.ledger_public_key == other
    with pytest.raises(ContractError, match="differs from the ledger key given"):
        propose_contract(
            workspace, draft(id="clash", ledger_public_key=own), "lab", ledger_key=other
        )
