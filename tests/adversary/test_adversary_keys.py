"""Attacks on party keys and consent: stolen key files, revoked contracts, forged revocations.

Each test plays the attacker and asserts the attack fails and nothing leaks.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealroom.attest import SoftwareAttester
from sealroom.contract.canonical import canonical_bytes
from sealroom.contract.revocation import RevocationError, make_revocation
from sealroom.contract.store import load_contract, verify_contract
from sealroom.contract.workflow import import_revocation, revoke_contract, sign_contract
from sealroom.crypto import keyfiles
from sealroom.crypto.identity import SIGNING_FILE, Party, load_party
from sealroom.crypto.passphrase import ENV_VAR, PassphraseError, WrongPassphrase
from sealroom.crypto.signing import b64
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, make_parties, store_contract


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return make_parties(workspace)


@pytest.fixture
def data_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def service(
    workspace: Workspace, parties: dict[str, Party], data_key: bytes
) -> Iterator[KeyService]:
    """The embedded key service with the contract registered and the dataset key imported."""
    store_contract(workspace, parties)
    with KeyService(workspace) as svc:
        svc.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
        yield svc


@pytest.fixture
def room(workspace: Workspace) -> Room:
    return Room(workspace, SoftwareAttester(workspace))


def _stolen(workspace: Workspace, tmp_path: Path, name: str) -> Workspace:
    """The attacker's workspace: a byte-for-byte copy of ``name``'s party folder."""
    theirs = Workspace.create(tmp_path / "attacker")
    shutil.copytree(workspace.parties / name, theirs.parties / name)
    return theirs


# ------------------------------------------------------------------ stolen key files


def test_a_stolen_key_file_holds_no_usable_key(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path
) -> None:
    party = parties["hospital"]
    stolen = (workspace.parties / "hospital" / SIGNING_FILE).read_bytes()
    assert party._signing.private_bytes_raw() not in stolen
    copy = tmp_path / "signing.pem"
    copy.write_bytes(stolen)
    with pytest.raises(PassphraseError, match="encrypted"):
        keyfiles.read_private_key(copy, Ed25519PrivateKey)
    for guess in (b"", b"password", b"hospital", b"sealroom"):
        with pytest.raises(WrongPassphrase):
            keyfiles.read_private_key(copy, Ed25519PrivateKey, lambda g=guess: g)


def test_a_stolen_party_folder_cannot_sign_a_contract(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_contract(workspace, parties, signers=["lab", "operator"], registered=False)
    theirs = _stolen(workspace, tmp_path, "hospital")
    shutil.copytree(workspace.contracts, theirs.contracts, dirs_exist_ok=True)
    monkeypatch.setenv(ENV_VAR, "the attacker's guess")
    with pytest.raises(WrongPassphrase, match="party 'hospital': wrong passphrase"):
        sign_contract(theirs, CONTRACT_ID, "hospital")
    assert "hospital" not in load_contract(theirs, CONTRACT_ID).signatures
    monkeypatch.delenv(ENV_VAR)  # no passphrase at all, no terminal: refused, not prompted
    with pytest.raises(PassphraseError, match="its private keys are encrypted"):
        sign_contract(theirs, CONTRACT_ID, "hospital")


def test_a_stolen_party_folder_cannot_revoke_either(
    workspace: Workspace, parties: dict[str, Party], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_contract(workspace, parties)
    theirs = _stolen(workspace, tmp_path, "lab")
    shutil.copytree(workspace.contracts, theirs.contracts, dirs_exist_ok=True)
    monkeypatch.setenv(ENV_VAR, "wrong")
    with pytest.raises(WrongPassphrase):
        revoke_contract(theirs, CONTRACT_ID, "lab")
    with pytest.raises(WrongPassphrase):
        load_party(theirs, "lab")


# ------------------------------------------------------------------ revocation and release


def test_a_revoked_contract_gets_no_key(
    workspace: Workspace, service: KeyService, room: Room, data_key: bytes
) -> None:
    assert room.open(service.release(room.request(service))) == data_key  # before: released
    revocation = revoke_contract(workspace, CONTRACT_ID, "hospital", reason="withdrawn")
    with pytest.raises(KeyReleaseDenied) as caught:
        service.release(room.request(service))
    message = str(caught.value)
    expected = f"contract {CONTRACT_ID} was revoked by hospital at {revocation.when}"
    assert expected in message
    assert data_key.hex() not in message
    with Ledger.open(workspace) as ledger:
        denied = ledger.entries("key.denied")
    assert expected in denied[-1].payload["reason"]


def test_revocation_by_the_operator_party_works(
    workspace: Workspace, service: KeyService, room: Room
) -> None:
    revoke_contract(workspace, CONTRACT_ID, "operator")
    with pytest.raises(KeyReleaseDenied, match="was revoked by operator"):
        service.release(room.request(service))


def test_a_forged_revocation_is_refused_and_the_key_still_flows(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
    tmp_path: Path,
) -> None:
    contract = load_contract(workspace, CONTRACT_ID).contract
    mallory = Party.generate("hospital", "provider")  # same name, her own key
    now = datetime.now(UTC)
    forged = make_revocation(contract, "hospital", mallory.sign, "forged", now)
    outsider = make_revocation(contract, "operator", Party.generate("x", "operator").sign, "", now)
    # A revocation by someone who is not a party at all, signed with her own key.
    stranger = make_revocation(contract, "hospital", mallory.sign, None, now).model_copy(
        update={"party": "mallory"}
    )
    for i, bad in enumerate((forged, outsider, stranger)):
        path = tmp_path / f"forged-{i}.json"
        path.write_text(bad.model_dump_json())
        with pytest.raises(RevocationError):
            import_revocation(workspace, path)
    # A contract signature replayed as a revocation signature does not verify either.
    replayed = forged.model_copy(
        update={"signature": signed_contract_signature(workspace, parties)}
    )
    path = tmp_path / "replayed.json"
    path.write_text(replayed.model_dump_json())
    with pytest.raises(RevocationError, match="does not verify"):
        import_revocation(workspace, path)
    verify_contract(workspace, CONTRACT_ID)
    assert room.open(service.release(room.request(service))) == data_key


def signed_contract_signature(workspace: Workspace, parties: dict[str, Party]) -> str:
    contract = load_contract(workspace, CONTRACT_ID).contract
    return b64(parties["hospital"].sign(canonical_bytes(contract)))


def test_deleting_the_revocation_file_does_not_bring_keys_back(
    workspace: Workspace, service: KeyService, room: Room
) -> None:
    revoke_contract(workspace, CONTRACT_ID, "lab")
    (workspace.contracts / f"{CONTRACT_ID}.revocations.json").unlink()
    with pytest.raises(KeyReleaseDenied, match="was revoked by lab"):
        service.release(room.request(service))
