"""Parties in different workspaces exchange contract bundles; signatures merge, digests match."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sealroom.contract import (
    import_contract,
    load_contract,
    propose_contract,
    sign_contract,
    verify_contract,
)
from sealroom.crypto.identity import Party, create_party
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

Draft = Callable[..., Path]


def _listed(party: Party) -> dict[str, str]:
    identity = party.identity
    return {
        "name": identity.name,
        "role": identity.role,
        "signing_key": identity.signing_key,
        "encryption_key": identity.encryption_key,
    }


def _export(ws: Workspace, path: Path) -> Path:
    path.write_text(load_contract(ws, "mnist-demo").model_dump_json())
    return path


@pytest.fixture
def two(tmp_path: Path, draft: Draft) -> tuple[Workspace, Workspace, Path]:
    lab_ws = Workspace.create(tmp_path / "lab")
    hospital_ws = Workspace.create(tmp_path / "hospital")
    lab = create_party(lab_ws, "lab", "consumer")
    others = [
        create_party(hospital_ws, "hospital", "provider"),
        create_party(hospital_ws, "operator", "operator"),
    ]
    path = draft(parties=[_listed(lab)] + [_listed(p) for p in others])
    return lab_ws, hospital_ws, path


def test_bundle_round_trip_registers_where_it_completes(
    two: tuple[Workspace, Workspace, Path], tmp_path: Path
) -> None:
    lab_ws, hospital_ws, path = two
    with Ledger.open(hospital_ws) as ledger:  # the workspace that will register it
        registering = ledger.public_key_b64
    propose_contract(lab_ws, path, "lab", ledger_key=registering)
    merged = import_contract(hospital_ws, _export(lab_ws, tmp_path / "b1.json"))
    assert merged.signatures.keys() == {"lab"}
    sign_contract(hospital_ws, "mnist-demo", "hospital")
    done = sign_contract(hospital_ws, "mnist-demo", "operator")
    assert done.receipt is not None
    verify_contract(hospital_ws, "mnist-demo")

    back = import_contract(lab_ws, _export(hospital_ws, tmp_path / "b2.json"))
    assert back.receipt == done.receipt and back.complete
    with Ledger.open(hospital_ws) as ledger:
        back.verify(ledger.public_key_b64)  # offline, with the registering ledger's key
    # Another workspace (e.g. a provider's own key service) accepts it on the receipt the
    # pinned ledger signed; a receipt that ledger did not sign is refused.
    assert verify_contract(lab_ws, "mnist-demo").receipt == done.receipt
    forged = back.receipt.model_copy(update={"signature": done.receipt.signature[::-1]})
    assert forged is not None
    (lab_ws.contracts / "mnist-demo.receipt.json").write_text(forged.model_dump_json())
    with pytest.raises(ContractError):
        verify_contract(lab_ws, "mnist-demo")


def test_a_contract_pinning_another_ledger_is_not_registered(
    two: tuple[Workspace, Workspace, Path], tmp_path: Path
) -> None:
    lab_ws, hospital_ws, path = two
    propose_contract(lab_ws, path, "lab")  # pins the lab's own ledger
    import_contract(hospital_ws, _export(lab_ws, tmp_path / "b1.json"))
    sign_contract(hospital_ws, "mnist-demo", "hospital")
    with pytest.raises(ContractError, match=r"pins ledger key .*, not the ledger in use"):
        sign_contract(hospital_ws, "mnist-demo", "operator")
    assert load_contract(hospital_ws, "mnist-demo").receipt is None
    with Ledger.open(hospital_ws) as ledger:
        assert len(ledger) == 0


def test_a_different_contract_under_the_same_id_is_refused(
    two: tuple[Workspace, Workspace, Path], tmp_path: Path, draft: Draft
) -> None:
    lab_ws, hospital_ws, path = two
    propose_contract(lab_ws, path, "lab")
    bundle = _export(lab_ws, tmp_path / "b.json")
    create_party(hospital_ws, "lab", "consumer")
    propose_contract(hospital_ws, draft(purpose="something else"), "hospital")
    with pytest.raises(ContractError, match="differs from the one in this workspace"):
        import_contract(hospital_ws, bundle)


def test_forged_signature_in_a_bundle_is_refused(
    two: tuple[Workspace, Workspace, Path], tmp_path: Path
) -> None:
    lab_ws, hospital_ws, path = two
    propose_contract(lab_ws, path, "lab")
    bundle = _export(lab_ws, tmp_path / "b.json")
    text = bundle.read_text().replace('"max_epochs":5', '"max_epochs":50')
    bundle.write_text(text)
    with pytest.raises(ContractError, match="signature from 'lab' does not verify"):
        import_contract(hospital_ws, bundle)


def test_unreadable_bundle_is_named(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="cannot read contract bundle"):
        import_contract(workspace, tmp_path / "absent.json")
    junk = tmp_path / "junk.json"
    junk.write_text('{"contract": {}}')
    with pytest.raises(ContractError, match=r"junk\.json: contract\.id: Field required"):
        import_contract(workspace, junk)
