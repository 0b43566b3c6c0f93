"""Party private keys at rest: encrypted under a passphrase, legacy plain files still load."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto import keyfiles
from sealroom.crypto.identity import (
    ENCRYPTION_FILE,
    SIGNING_FILE,
    UNENCRYPTED_MARKER,
    Party,
    create_party,
    key_protection,
    load_party,
    protect_party,
)
from sealroom.crypto.passphrase import (
    ENV_VAR,
    PassphraseError,
    WrongPassphrase,
    forget_passphrases,
    passphrase_in_effect,
)
from sealroom.errors import IdentityError
from sealroom.workspace import Workspace

runner = CliRunner()


def _raw_private(party: Party) -> list[bytes]:
    """Every spelling of the party's private keys that a careless file could contain."""
    found = []
    for key in (party._signing, party._encryption):
        raw = key.private_bytes_raw()
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        found += [raw, der, der[-32:]]
    return found


def test_key_files_never_contain_the_raw_keys(workspace: Workspace) -> None:
    party = create_party(workspace, "hospital", "provider")
    folder = workspace.parties / "hospital"
    for name in (SIGNING_FILE, ENCRYPTION_FILE):
        data = (folder / name).read_bytes()
        assert data.startswith(keyfiles.BEGIN)
        assert b"PRIVATE KEY-----" in data and b"BEGIN PRIVATE KEY" not in data
        for secret in _raw_private(party):
            assert secret not in data
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert key_protection(workspace, "hospital") == "encrypted"
    assert not (folder / UNENCRYPTED_MARKER).exists()


def test_the_right_passphrase_loads_the_same_keys(workspace: Workspace) -> None:
    party = create_party(workspace, "hospital", "provider")
    loaded = load_party(workspace, "hospital")
    assert loaded.identity == party.identity
    assert loaded.sign(b"x") == party.sign(b"x")  # Ed25519 is deterministic


def test_wrong_passphrase_is_one_line_naming_the_party(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_party(workspace, "hospital", "provider")
    monkeypatch.setenv(ENV_VAR, "not the passphrase")
    with pytest.raises(WrongPassphrase, match="party 'hospital': wrong passphrase") as caught:
        load_party(workspace, "hospital")
    assert "\n" not in str(caught.value)


def test_wrong_passphrase_through_the_cli_is_one_line_no_traceback(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_party(workspace, "hospital", "provider")
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("guess\n")
    source = tmp_path / "data.txt"
    source.write_text("rows")
    out = str(tmp_path / "p.sealed")
    result = runner.invoke(
        app,
        ["seal", str(source), "--owner", "hospital", "--out", out, "--passphrase-file", str(wrong)],
    )
    assert result.exit_code == 1
    assert "party 'hospital': wrong passphrase" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "p.sealed").exists()


def test_passphrase_file_wins_over_the_environment(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.pass"
    good.write_text("file passphrase\n")
    monkeypatch.setenv(ENV_VAR, "env passphrase")
    result = runner.invoke(
        app,
        ["party", "create", "lab", "--role", "consumer", "--passphrase-file", str(good)],
    )
    assert result.exit_code == 0, result.output
    forget_passphrases()  # the file was this one command's source, as in its own process
    with pytest.raises(WrongPassphrase):
        load_party(workspace, "lab")
    assert load_party(workspace, "lab", b"file passphrase").name == "lab"


def test_no_passphrase_and_no_terminal_refuses_saying_how(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    result = runner.invoke(app, ["party", "create", "lab", "--role", "consumer"])
    assert result.exit_code == 1
    assert "--passphrase-file" in result.output and ENV_VAR in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (workspace.parties / "lab").exists()


def test_loading_without_a_passphrase_refuses_rather_than_prompting(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_party(workspace, "lab", "consumer")
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(PassphraseError, match="party 'lab': its private keys are encrypted"):
        load_party(workspace, "lab")


def test_a_prompt_is_used_when_stdin_is_a_terminal(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealroom.crypto import passphrase

    create_party(workspace, "lab", "consumer")
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr(passphrase, "_interactive", lambda: True)
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return "test passphrase, not a secret"

    monkeypatch.setattr(passphrase.getpass, "getpass", typed)
    assert load_party(workspace, "lab").name == "lab"
    assert asked == ["passphrase for party lab: "]


def test_no_passphrase_stores_plain_keys_loudly_labelled(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR)
    result = runner.invoke(app, ["party", "create", "lab", "--role", "consumer", "--no-passphrase"])
    assert result.exit_code == 0, result.output
    assert "UNENCRYPTED" in result.output
    assert (workspace.parties / "lab" / UNENCRYPTED_MARKER).exists()
    assert b"BEGIN PRIVATE KEY" in (workspace.parties / "lab" / SIGNING_FILE).read_bytes()
    assert load_party(workspace, "lab").name == "lab"  # no passphrase needed
    listed = runner.invoke(app, ["party", "list"], terminal_width=200)
    assert "UNENCRYPTED" in listed.output
    shown = runner.invoke(app, ["party", "show", "lab", "--json"])
    assert '"keys": "unencrypted"' in shown.output


def _legacy_party(ws: Workspace) -> Party:
    """A party as sealroom wrote it before encryption at rest: plain PEM, no marker."""
    party = Party.generate("hospital", "provider")
    party.save(ws.parties / "hospital", None)
    (ws.parties / "hospital" / UNENCRYPTED_MARKER).unlink()
    return party


def test_legacy_plain_keys_still_load_with_a_warning(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    party = _legacy_party(workspace)
    with caplog.at_level(logging.WARNING, logger="sealroom.identity"):
        loaded = load_party(workspace, "hospital")
    assert loaded.identity == party.identity
    assert "UNENCRYPTED" in caplog.text and "party protect hospital" in caplog.text
    assert key_protection(workspace, "hospital") == "legacy"
    listed = runner.invoke(app, ["party", "list", "--json"])
    assert '"keys": "legacy"' in listed.output


def test_protect_encrypts_legacy_keys_in_place(workspace: Workspace) -> None:
    party = _legacy_party(workspace)
    protect_party(workspace, "hospital")
    assert key_protection(workspace, "hospital") == "encrypted"
    data = (workspace.parties / "hospital" / SIGNING_FILE).read_bytes()
    assert all(secret not in data for secret in _raw_private(party))
    assert load_party(workspace, "hospital").identity == party.identity
    with pytest.raises(IdentityError, match="already encrypted"):
        protect_party(workspace, "hospital")


def test_an_altered_cost_parameter_is_refused(workspace: Workspace) -> None:
    create_party(workspace, "hospital", "provider")
    path = workspace.parties / "hospital" / SIGNING_FILE
    body = path.read_bytes()[len(keyfiles.BEGIN) :].strip()[: -len(keyfiles.END)]
    import base64

    blob = bytearray(base64.b64decode(b"".join(body.split())))
    blob[4] = 14  # ask for a cheaper scrypt: still in range, but bound into the GCM tag
    path.write_bytes(keyfiles.BEGIN + b"\n" + base64.encodebytes(bytes(blob)) + keyfiles.END)
    with pytest.raises(WrongPassphrase):
        load_party(workspace, "hospital")


def test_service_keys_without_passphrase_stay_plain_pem(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    keyfiles.write_private_key(tmp_path / "k.pem", key)
    assert not keyfiles.is_encrypted(tmp_path / "k.pem")
    loaded = keyfiles.read_private_key(tmp_path / "k.pem", Ed25519PrivateKey)
    assert loaded.private_bytes_raw() == key.private_bytes_raw()  # type: ignore[union-attr]


def test_a_demo_passphrase_scope_overrides_and_restores(workspace: Workspace) -> None:
    with passphrase_in_effect(b"demo"):
        create_party(workspace, "lab", "consumer")
        assert load_party(workspace, "lab").name == "lab"
    with pytest.raises(WrongPassphrase):
        load_party(workspace, "lab")


def test_no_passphrase_and_a_passphrase_file_together_are_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    given = tmp_path / "p.pass"
    given.write_text("x\n")
    args = ["party", "create", "lab", "--role", "consumer", "--no-passphrase"]
    result = runner.invoke(app, [*args, "--passphrase-file", str(given)])
    assert result.exit_code == 1 and "not both" in result.output
    assert not (workspace.parties / "lab").exists()


def test_a_missing_passphrase_file_is_one_line(workspace: Workspace, tmp_path: Path) -> None:
    missing = tmp_path / "none.pass"
    result = runner.invoke(
        app, ["party", "create", "lab", "--role", "consumer", "--passphrase-file", str(missing)]
    )
    assert result.exit_code == 1
    assert f"{missing}: cannot read passphrase file" in result.output
    assert len(result.output.strip().splitlines()) == 1
