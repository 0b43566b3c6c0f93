"""Key grants: a provider in another workspace hands its key to this key service."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import Party
from sealroom.errors import SignatureError
from sealroom.kms import KeyService
from sealroom.kms.grant import KeyGrantError, make_grant, service_public_document
from sealroom.workspace import Workspace
from tests.kms.conftest import default_policy
from tests.kms.factories import DATASET_DIGEST, MODEL_DIGEST, store_contract


@pytest.fixture
def service_key(workspace: Workspace) -> str:
    return service_public_document(workspace.keys)["import_key"]


def test_grant_from_the_owner_imports_and_releases_the_same_key(
    workspace: Workspace, parties: dict[str, Party], service_key: str
) -> None:
    store_contract(workspace, parties)
    data_key = secrets.token_bytes(32)
    grant = make_grant(parties["hospital"], data_key, default_policy(), service_key)
    with KeyService(workspace) as service:
        record = service.import_grant(grant)
        assert record.owner == "hospital"
        assert service.keys(DATASET_DIGEST)[0].policy == default_policy()
    assert data_key.hex() not in grant.model_dump_json()


def test_grant_by_someone_other_than_the_contracts_owner_is_refused(
    workspace: Workspace, parties: dict[str, Party], service_key: str
) -> None:
    store_contract(workspace, parties)
    grant = make_grant(parties["lab"], secrets.token_bytes(32), default_policy(), service_key)
    with KeyService(workspace) as service, pytest.raises(KeyGrantError, match="names hospital"):
        service.import_grant(grant)


def test_grant_signed_by_an_impostor_with_the_owners_name_is_refused(
    workspace: Workspace, parties: dict[str, Party], service_key: str
) -> None:
    store_contract(workspace, parties)
    impostor = Party.generate("hospital", "provider")
    grant = make_grant(impostor, secrets.token_bytes(32), default_policy(), service_key)
    with KeyService(workspace) as service, pytest.raises(SignatureError, match="hospital"):
        service.import_grant(grant)


def test_edited_policy_breaks_the_signature(
    workspace: Workspace, parties: dict[str, Party], service_key: str
) -> None:
    store_contract(workspace, parties)
    grant = make_grant(parties["hospital"], secrets.token_bytes(32), default_policy(), service_key)
    loosened = grant.model_copy(update={"policy": default_policy(measurements=["ab" * 32])})
    with KeyService(workspace) as service, pytest.raises(SignatureError):
        service.import_grant(loosened)


def test_grant_for_another_service_or_package_is_refused(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path
) -> None:
    store_contract(workspace, parties)
    elsewhere = service_public_document(Workspace.create(tmp_path / "other").keys)["import_key"]
    grant = make_grant(parties["hospital"], secrets.token_bytes(32), default_policy(), elsewhere)
    with KeyService(workspace) as service, pytest.raises(KeyGrantError, match="another key"):
        service.import_grant(grant)
    ours = service_public_document(workspace.keys)["import_key"]
    stray = default_policy(package_digest="sha256:" + "0" * 64)
    grant = make_grant(parties["hospital"], secrets.token_bytes(32), stray, ours)
    with KeyService(workspace) as service, pytest.raises(KeyGrantError, match="does not name"):
        service.import_grant(grant)
    model_policy = default_policy(package_digest=MODEL_DIGEST)
    grant = make_grant(parties["lab"], secrets.token_bytes(32), model_policy, ours)
    with KeyService(workspace) as service:
        assert service.import_grant(grant).owner == "lab"


def test_cli_public_key_and_a_broken_grant_file(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["kms", "public-key", "--out", str(tmp_path / "kms.pub.json")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "kms.pub.json").read_text())
    assert document["import_key"] == service_public_document(workspace.keys)["import_key"]
    (tmp_path / "grant.json").write_text('{"package_digest": "nope"}')
    result = runner.invoke(app, ["keys", "import-grant", str(tmp_path / "grant.json")])
    assert result.exit_code == 1
    assert "grant.json: package_digest" in result.output
