"""Parties: key files, identity documents, import/export and their refusals."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sealroom.crypto.hpke import seal_to
from sealroom.crypto.identity import (
    Party,
    create_party,
    import_identity,
    list_identities,
    load_identity,
    load_party,
)
from sealroom.errors import IdentityError, SignatureError, WrongKeyError
from sealroom.workspace import Workspace


def test_private_keys_are_0600_and_round_trip(workspace: Workspace) -> None:
    party = create_party(workspace, "hospital", "provider")
    folder = workspace.parties / "hospital"
    for name in ("signing.pem", "encryption.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    loaded = load_party(workspace, "hospital")
    assert loaded.identity == party.identity
    signature = loaded.sign(b"payload")
    party.identity.verify(signature, b"payload")
    wrapped = seal_to(party.identity.encryption_key, b"k" * 32, b"info")
    assert loaded.decrypt_key(wrapped, b"info") == b"k" * 32


def test_private_key_never_in_repr_or_document(workspace: Workspace) -> None:
    party = create_party(workspace, "lab", "consumer")
    pem = (workspace.parties / "lab" / "signing.pem").read_text()
    secret_line = pem.splitlines()[1]
    assert secret_line not in repr(party)
    assert secret_line not in json.dumps(party.identity.document())


def test_signature_by_other_party_names_the_claimed_signer(workspace: Workspace) -> None:
    alice = create_party(workspace, "alice", "provider")
    mallory = Party.generate("mallory", "provider")
    with pytest.raises(SignatureError, match="alice"):
        alice.identity.verify(mallory.sign(b"x"), b"x")


def test_wrong_recipient_cannot_open_a_wrapped_key(workspace: Workspace) -> None:
    alice = create_party(workspace, "alice", "provider")
    bob = create_party(workspace, "bob", "consumer")
    wrapped = seal_to(alice.identity.encryption_key, b"secret", b"info")
    with pytest.raises(WrongKeyError):
        bob.decrypt_key(wrapped, b"info")
    with pytest.raises(WrongKeyError):
        alice.decrypt_key(wrapped, b"other info")


def test_duplicate_name_bad_name_and_bad_role_refused(workspace: Workspace) -> None:
    create_party(workspace, "hospital", "provider")
    with pytest.raises(IdentityError, match="already exists"):
        create_party(workspace, "hospital", "consumer")
    with pytest.raises(IdentityError, match="party name"):
        create_party(workspace, "../evil", "provider")
    with pytest.raises(IdentityError, match="role"):
        create_party(workspace, "x", "admin")  # type: ignore[arg-type]


def test_unknown_party_is_named(workspace: Workspace) -> None:
    with pytest.raises(IdentityError, match="unknown party 'ghost'"):
        load_identity(workspace, "ghost")


def test_import_export_between_workspaces(workspace: Workspace, tmp_path: Path) -> None:
    other = Workspace.create(tmp_path / "lab")
    lab = create_party(other, "lab", "consumer")
    doc = tmp_path / "lab.json"
    doc.write_text(json.dumps(lab.identity.document()))
    imported = import_identity(workspace, doc)
    assert imported == lab.identity
    assert import_identity(workspace, doc) == lab.identity  # idempotent
    assert [i.name for i in list_identities(workspace)] == ["lab"]
    with pytest.raises(IdentityError, match="imported"):
        load_party(workspace, "lab")


def test_import_refuses_conflicting_keys_and_bad_fingerprint(
    workspace: Workspace, tmp_path: Path
) -> None:
    create_party(workspace, "lab", "consumer")
    impostor = Party.generate("lab", "consumer").identity
    doc = tmp_path / "lab.json"
    doc.write_text(json.dumps(impostor.document()))
    with pytest.raises(IdentityError, match="other keys"):
        import_identity(workspace, doc)
    forged = {**Party.generate("x", "provider").identity.document(), "fingerprint": "00" * 16}
    doc.write_text(json.dumps(forged))
    with pytest.raises(IdentityError, match="fingerprint"):
        import_identity(workspace, doc)


def test_import_names_the_bad_field(workspace: Workspace, tmp_path: Path) -> None:
    doc = tmp_path / "bad.json"
    doc.write_text(
        json.dumps(
            {"name": "x", "role": "provider", "signing_key": "AAAA", "encryption_key": "AAAA"}
        )
    )
    with pytest.raises(IdentityError, match="signing_key"):
        import_identity(workspace, doc)


def test_mismatched_private_key_detected(workspace: Workspace) -> None:
    create_party(workspace, "a", "provider")
    create_party(workspace, "b", "provider")
    (workspace.parties / "a" / "signing.pem").unlink()
    (workspace.parties / "b" / "signing.pem").rename(workspace.parties / "a" / "signing.pem")
    with pytest.raises(IdentityError, match="do not match"):
        load_party(workspace, "a")
