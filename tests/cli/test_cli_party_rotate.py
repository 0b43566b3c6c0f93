"""`sealroom party rotate`: new keys, the old ones archived, a statement signed by the old key."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.contract.revocation import ContractRevoked
from sealroom.contract.store import verify_contract
from sealroom.contract.workflow import revoke_contract
from sealroom.crypto.identity import Party, load_identity, load_party
from sealroom.crypto.rotation import (
    PREVIOUS_DIR,
    ROTATED,
    NoSuchKeys,
    RotationStatement,
    accept_rotation,
)
from sealroom.crypto.signing import b64
from sealroom.errors import IdentityError, SignatureError
from sealroom.ledger import Ledger
from sealroom.workspace import ENV_VAR, Workspace
from tests.kms.factories import CONTRACT_ID, make_parties, store_contract

runner = CliRunner()


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return make_parties(workspace)


def _rotate(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["party", "rotate", *args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_rotate_gives_new_keys_and_export_shows_them(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    old = parties["hospital"].identity
    done = _rotate("hospital")
    new = load_identity(workspace, "hospital")
    assert new.signing_key != old.signing_key and new.encryption_key != old.encryption_key
    assert done["old_fingerprint"] == old.fingerprint
    assert done["new_fingerprint"] == new.fingerprint
    exported = runner.invoke(app, ["party", "export", "hospital"])
    assert json.loads(exported.stdout) == new.document()
    assert load_party(workspace, "hospital").identity == new
    archived = workspace.parties / "hospital" / PREVIOUS_DIR / old.fingerprint
    assert json.loads((archived / "identity.json").read_text()) == old.document()
    for name in ("signing.pem", "encryption.pem"):
        assert stat.S_IMODE((archived / name).stat().st_mode) == 0o600
    shown = runner.invoke(app, ["party", "show", "hospital", "--json"])
    assert json.loads(shown.stdout)["previous_fingerprints"] == [old.fingerprint]


def test_the_ledger_entry_is_signed_by_the_old_key_over_the_new_keys(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    old = parties["lab"]
    _rotate("lab")
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries(ROTATED)
    statement = RotationStatement.model_validate(entry.payload)
    statement.verify()  # by the old key
    new = load_identity(workspace, "lab")
    assert statement.old_signing_key == old.identity.signing_key
    assert (statement.new_signing_key, statement.new_encryption_key) == (
        new.signing_key,
        new.encryption_key,
    )
    old.identity.verify(base64.b64decode(statement.signature), statement.signed_bytes())
    forged = statement.model_copy(update={"new_signing_key": b64(bytes(32))})
    with pytest.raises(SignatureError, match="does not verify"):
        forged.verify()


def test_a_contract_signed_with_the_old_key_stays_valid_and_revocable(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    store_contract(workspace, parties)
    _rotate("hospital")
    verify_contract(workspace, CONTRACT_ID)  # pinned keys, checked as signed
    revocation = revoke_contract(workspace, CONTRACT_ID, "hospital")  # with the archived key
    assert revocation.party == "hospital"
    with pytest.raises(ContractRevoked, match="revoked by hospital"):
        verify_contract(workspace, CONTRACT_ID)


def test_drop_old_keys_keeps_only_the_public_half(
    workspace: Workspace, parties: dict[str, Party]
) -> None:
    store_contract(workspace, parties)
    old = parties["operator"].identity
    _rotate("operator", "--drop-old-keys")
    archived = workspace.parties / "operator" / PREVIOUS_DIR / old.fingerprint
    assert (archived / "identity.json").exists()
    assert not (archived / "signing.pem").exists() and not (archived / "encryption.pem").exists()
    verify_contract(workspace, CONTRACT_ID)
    with pytest.raises(NoSuchKeys, match="dropped at rotation"):
        revoke_contract(workspace, CONTRACT_ID, "operator")


def test_new_contracts_use_the_new_key(workspace: Workspace, parties: dict[str, Party]) -> None:
    from tests.contract.conftest import template

    _rotate("lab")
    draft = workspace.home.parent / "draft.json"
    draft.write_text(json.dumps(template(), default=str))
    result = runner.invoke(app, ["contract", "propose", str(draft), "--as", "lab", "--json"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["contract", "show", json.loads(result.stdout)["id"], "--json"])
    [lab] = [p for p in json.loads(shown.stdout)["contract"]["parties"] if p["name"] == "lab"]
    assert lab["signing_key"] == load_identity(workspace, "lab").signing_key


def test_rotate_writes_a_statement_others_accept(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = tmp_path / "hospital.identity.json"
    runner.invoke(app, ["party", "export", "hospital", "--out", str(exported)])
    statement_file = tmp_path / "hospital.rotation.json"
    _rotate("hospital", "--out", str(statement_file))
    new = load_identity(workspace, "hospital")

    other = Workspace.create(tmp_path / "lab-ws")
    monkeypatch.setenv(ENV_VAR, str(other.home))
    assert runner.invoke(app, ["party", "import", str(exported)]).exit_code == 0
    result = runner.invoke(app, ["party", "accept-rotation", str(statement_file)])
    assert result.exit_code == 0, result.output
    assert load_identity(other, "hospital") == new
    assert new.fingerprint in result.output
    # Accepting the same statement twice is a no-op.
    assert accept_rotation(other, statement_file) == new


def test_a_statement_not_signed_by_the_old_key_is_refused(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path
) -> None:
    other = Workspace.create(tmp_path / "lab-ws")
    exported = tmp_path / "hospital.identity.json"
    exported.write_text(json.dumps(parties["hospital"].identity.document()))
    from sealroom.crypto.identity import import_identity

    import_identity(other, exported)
    statement_file = tmp_path / "s.json"
    _rotate("hospital", "--out", str(statement_file))
    statement = RotationStatement.model_validate_json(statement_file.read_text())
    # Mallory swaps in her own new keys and signs with them.
    mallory = Party.generate("hospital", "provider")
    forged = statement.model_copy(
        update={
            "new_signing_key": mallory.identity.signing_key,
            "new_encryption_key": mallory.identity.encryption_key,
            "new_fingerprint": mallory.identity.fingerprint,
        }
    )
    forged = forged.model_copy(update={"signature": b64(mallory.sign(forged.signed_bytes()))})
    statement_file.write_text(forged.model_dump_json())
    with pytest.raises(IdentityError, match="not signed by the old key of 'hospital'"):
        accept_rotation(other, statement_file)
    assert load_identity(other, "hospital") == parties["hospital"].identity


def test_an_imported_party_cannot_be_rotated(workspace: Workspace, tmp_path: Path) -> None:
    elsewhere = Workspace.create(tmp_path / "elsewhere")
    from sealroom.crypto.identity import create_party, import_identity

    party = create_party(elsewhere, "bank", "provider")
    doc = tmp_path / "bank.json"
    doc.write_text(json.dumps(party.identity.document()))
    import_identity(workspace, doc)
    result = runner.invoke(app, ["party", "rotate", "bank"])
    assert result.exit_code == 1 and "only its owner can rotate" in result.output


def test_unseal_of_a_package_sealed_before_rotation(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("a,b\n1,2\n")
    package = tmp_path / "rows.sealed"
    sealed = runner.invoke(app, ["seal", str(source), "--owner", "hospital", "--out", str(package)])
    assert sealed.exit_code == 0, sealed.output
    _rotate("hospital")
    out = tmp_path / "opened"
    result = runner.invoke(app, ["unseal", str(package), "--as", "hospital", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "rows.csv").read_text() == "a,b\n1,2\n"
