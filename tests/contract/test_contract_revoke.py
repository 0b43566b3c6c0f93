"""`contract revoke`: any party withdraws consent; every verify_contract then refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.contract.revocation import (
    DOMAIN,
    REVOKED,
    ContractRevoked,
    RevocationError,
    revocations_path,
)
from sealroom.contract.store import list_contracts, verify_contract
from sealroom.contract.workflow import import_revocation, revoke_contract, sign_contract
from sealroom.crypto.identity import Party, create_party, import_identity
from sealroom.errors import ContractError
from sealroom.ledger import Ledger
from sealroom.workspace import ENV_VAR, Workspace
from tests.kms.factories import CONTRACT_ID, make_parties, store_contract

runner = CliRunner()


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return make_parties(workspace)


@pytest.fixture
def registered(workspace: Workspace, parties: dict[str, Party]) -> str:
    store_contract(workspace, parties)
    verify_contract(workspace, CONTRACT_ID)
    return CONTRACT_ID


@pytest.mark.parametrize("who", ["hospital", "lab", "operator"])
def test_any_party_revokes_and_verify_refuses(
    workspace: Workspace, registered: str, who: str
) -> None:
    revocation = revoke_contract(workspace, registered, who, reason="consent withdrawn")
    with pytest.raises(ContractRevoked) as caught:
        verify_contract(workspace, registered)
    message = str(caught.value)
    assert message.startswith(f"contract {registered} was revoked by {who} at {revocation.when}")
    assert "consent withdrawn" in message


def test_revocation_is_a_ledger_entry_and_a_file_beside_the_contract(
    workspace: Workspace, registered: str
) -> None:
    revocation = revoke_contract(workspace, registered, "hospital")
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries(REVOKED)
    assert entry.payload == revocation.model_dump(mode="json")
    stored = json.loads(revocations_path(workspace, registered).read_text())
    assert stored == [revocation.model_dump(mode="json")]
    assert [c.id for c in list_contracts(workspace)] == [registered]  # not a contract


def test_revoking_twice_returns_the_first_and_logs_once(
    workspace: Workspace, registered: str
) -> None:
    first = revoke_contract(workspace, registered, "lab", reason="one")
    again = revoke_contract(workspace, registered, "lab", reason="two")
    assert again == first
    with Ledger.open(workspace) as ledger:
        assert len(ledger.entries(REVOKED)) == 1


def test_deleting_the_file_does_not_revive_the_contract(
    workspace: Workspace, registered: str
) -> None:
    revoke_contract(workspace, registered, "hospital")
    revocations_path(workspace, registered).unlink()
    with pytest.raises(ContractRevoked, match="revoked by hospital"):
        verify_contract(workspace, registered)


def test_a_non_party_cannot_revoke(workspace: Workspace, registered: str) -> None:
    create_party(workspace, "mallory", "consumer")
    with pytest.raises(ContractError, match="'mallory' is not one of its parties"):
        revoke_contract(workspace, registered, "mallory")
    verify_contract(workspace, registered)


def test_the_signature_is_domain_separated(workspace: Workspace, registered: str) -> None:
    revocation = revoke_contract(workspace, registered, "hospital")
    assert revocation.signed_bytes().startswith(DOMAIN)


def test_a_revoked_proposal_cannot_be_signed(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    store_contract(workspace, parties, signers=["lab"], registered=False)
    revoke_contract(workspace, CONTRACT_ID, "lab")
    with pytest.raises(ContractRevoked, match="revoked by lab"):
        sign_contract(workspace, CONTRACT_ID, "hospital")


def test_export_and_import_into_another_workspace(
    workspace: Workspace, registered: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider's own key service: a second workspace holding the same contract.
    bundle = tmp_path / "contract.json"
    assert (
        runner.invoke(app, ["contract", "export", registered, "--out", str(bundle)]).exit_code == 0
    )
    out = tmp_path / "revoked.json"
    result = runner.invoke(
        app,
        ["contract", "revoke", registered, "--as", "lab", "--reason", "done", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert f"contract {registered} revoked by lab" in result.output

    other = Workspace.create(tmp_path / "provider-kms")
    monkeypatch.setenv(ENV_VAR, str(other.home))
    assert runner.invoke(app, ["contract", "import", str(bundle)]).exit_code == 0
    result = runner.invoke(app, ["contract", "import-revocation", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["party"] == "lab"
    assert revocations_path(other, registered).exists()
    with Ledger.open(other) as ledger:
        assert len(ledger.entries(REVOKED)) == 1


def test_import_refuses_a_revocation_with_a_bad_signature(
    workspace: Workspace, registered: str, tmp_path: Path
) -> None:
    revocation = revoke_contract(workspace, registered, "hospital", reason="a")
    edited = revocation.model_copy(update={"reason": "b"})
    path = tmp_path / "edited.json"
    path.write_text(edited.model_dump_json())
    with pytest.raises(RevocationError, match="signature of 'hospital' does not verify"):
        import_revocation(workspace, path)


def test_import_refuses_a_revocation_of_another_contract_version(
    workspace: Workspace, registered: str, tmp_path: Path
) -> None:
    revocation = revoke_contract(workspace, registered, "hospital")
    edited = revocation.model_copy(update={"contract_digest": "sha256:" + "0" * 64})
    path = tmp_path / "other.json"
    path.write_text(edited.model_dump_json())
    with pytest.raises(RevocationError, match="another version"):
        import_revocation(workspace, path)


def test_import_of_junk_is_one_line(workspace: Workspace, registered: str, tmp_path: Path) -> None:
    path = tmp_path / "junk.json"
    path.write_bytes(b"\xff\xfe not json")
    result = runner.invoke(app, ["contract", "import-revocation", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["contract", "import-revocation", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "cannot read revocation" in result.output


def test_a_damaged_revocations_file_fails_closed(workspace: Workspace, registered: str) -> None:
    revocations_path(workspace, registered).write_text("{not a list")
    with pytest.raises(RevocationError, match="not a list of revocations"):
        verify_contract(workspace, registered)


def test_imported_parties_cannot_revoke_without_private_keys(
    workspace: Workspace, registered: str, tmp_path: Path
) -> None:
    elsewhere = Workspace.create(tmp_path / "elsewhere")
    create_party(elsewhere, "auditor", "provider")
    doc = tmp_path / "auditor.json"
    doc.write_text((elsewhere.parties / "auditor" / "identity.json").read_text())
    import_identity(workspace, doc)
    with pytest.raises(ContractError, match="not one of its parties"):
        revoke_contract(workspace, registered, "auditor")


def test_offline_verify_with_a_ledger_key_also_refuses_a_revoked_contract(
    workspace: Workspace, registered: str
) -> None:
    with Ledger.open(workspace) as ledger:
        key = ledger.public_key_b64
    ok = runner.invoke(app, ["contract", "verify", registered, "--ledger-key", key])
    assert ok.exit_code == 0, ok.output
    revoke_contract(workspace, registered, "operator")
    result = runner.invoke(app, ["contract", "verify", registered, "--ledger-key", key])
    assert result.exit_code == 1
    assert f"contract {registered} was revoked by operator" in result.output
