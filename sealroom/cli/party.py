"""`sealroom party`: create, list, show, export, import, rotate and protect parties."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    emit_json,
    err_console,
    refusals,
)

app = typer.Typer(help="Parties: providers, consumers and operators.", no_args_is_help=True)

ROLE_HELP = "provider | consumer | operator"
UNENCRYPTED_BANNER = "UNENCRYPTED private keys: anyone who can read the workspace can sign as"


def _keys_label(protection: str) -> str:
    """What `party list` / `party show` say about a party's private keys."""
    return {
        "encrypted": "own (encrypted)",
        "unencrypted": "own, UNENCRYPTED (--no-passphrase)",
        "legacy": "own, UNENCRYPTED (older sealroom; run `party protect`)",
        "imported": "imported",
    }[protection]


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Party name (letters, digits, '-', '_')."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    no_passphrase: bool = typer.Option(
        False, "--no-passphrase", help="Store the private keys UNENCRYPTED (tests, throwaway)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a party with an Ed25519 signing key and an X25519 (HPKE) key pair.

    Private keys are written 0600 into the workspace, encrypted under a passphrase
    (--passphrase-file, $SEALROOM_PASSPHRASE or a prompt), and never printed.

    Example: sealroom party create hospital --role provider --passphrase-file hospital.pass
    """
    from sealroom.crypto.identity import create_party, key_protection
    from sealroom.crypto.passphrase import PassphraseError
    from sealroom.workspace import Workspace

    with refusals():
        if no_passphrase and passphrase_file is not None:
            raise PassphraseError("give either --no-passphrase or --passphrase-file, not both")
        ws = Workspace.find()
        party = create_party(
            ws,
            name,
            role,  # type: ignore[arg-type]  # checked inside
            unencrypted=no_passphrase,
        )
    if no_passphrase:
        err_console.print(f"[bold yellow]warning: {UNENCRYPTED_BANNER} {name}[/]")
    if json_out:
        emit_json(party.identity.document())
    else:
        console.print(
            f"created {party.identity.role} [bold]{name}[/] (fingerprint "
            f"{party.identity.fingerprint}; keys {_keys_label(key_protection(ws, name))})",
            highlight=False,
        )


@app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """List the parties this workspace knows (own and imported).

    Example: sealroom party list --json
    """
    from rich.table import Table

    from sealroom.crypto.identity import key_protection, list_identities
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        rows = [(i, key_protection(ws, i.name)) for i in list_identities(ws)]
    if json_out:
        emit_json(
            [{**i.document(), "private_keys": keys != "imported", "keys": keys} for i, keys in rows]
        )
        return
    table = Table("name", "role", "fingerprint", "keys")
    for identity, keys in rows:
        label = _keys_label(keys)
        if keys in ("unencrypted", "legacy"):
            label = f"[bold red]{label}[/]"
        table.add_row(identity.name, identity.role, identity.fingerprint, label)
    console.print(table)


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Party to show."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show a party: role, fingerprint, how its private keys are stored, earlier keys.

    Example: sealroom party show hospital
    """
    from sealroom.crypto.identity import key_protection, load_identity
    from sealroom.crypto.rotation import previous_identities
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        identity = load_identity(ws, name)
        keys = key_protection(ws, name)
        previous = previous_identities(ws, name)
    if json_out:
        emit_json(
            {
                **identity.document(),
                "keys": keys,
                "previous_fingerprints": [p.fingerprint for p in previous],
            }
        )
        return
    console.print(f"[bold]{identity.name}[/] ({identity.role})", highlight=False)
    console.print(f"  fingerprint  {identity.fingerprint}", highlight=False)
    console.print(f"  keys         {_keys_label(keys)}", highlight=False)
    for earlier in previous:
        console.print(f"  rotated out  {earlier.fingerprint}", highlight=False)
    if keys in ("unencrypted", "legacy"):
        err_console.print(f"[bold red]{UNENCRYPTED_BANNER} {name}[/]")


@app.command("protect")
def protect(
    name: str = typer.Argument(..., help="Party whose unencrypted keys to encrypt."),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Encrypt the private keys of a party stored unencrypted (older workspaces).

    Example: SEALROOM_PASSPHRASE=... sealroom party protect hospital
    """
    from sealroom.crypto.identity import protect_party
    from sealroom.workspace import Workspace

    with refusals():
        protect_party(Workspace.find(), name)
    if json_out:
        emit_json({"party": name, "keys_encrypted": True})
        return
    console.print(f"party [bold]{name}[/]: private keys encrypted", highlight=False)


@app.command("rotate")
def rotate(
    name: str = typer.Argument(..., help="Party whose keys to replace."),
    drop_old_keys: bool = typer.Option(
        False,
        "--drop-old-keys",
        help="Delete the old private keys (after a leak); only the old public keys are kept.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Also write the signed rotation statement here (for other parties)."
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """New signing and encryption keys; the old ones archived; the ledger records it.

    The `party.rotated` ledger entry is signed by the OLD key over the new public keys.
    Contracts signed with the old key stay valid as signed; new contracts use the new key.

    Example: sealroom party rotate hospital --out hospital.rotation.json
    """
    from sealroom.crypto.rotation import ROTATED, rotate_party
    from sealroom.errors import IdentityError
    from sealroom.ledger import Ledger
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        if out is not None and out.exists():
            raise IdentityError(f"--out {out}: already exists")
        party, statement = rotate_party(ws, name, drop_old_keys=drop_old_keys)
        with Ledger.open(ws) as ledger:
            receipt = ledger.append(ROTATED, statement.model_dump())
        if out is not None:
            out.write_text(statement.model_dump_json(indent=2) + "\n")
    if json_out:
        emit_json({**statement.model_dump(), "ledger_seq": receipt.seq})
        return
    console.print(
        f"party [bold]{name}[/] rotated: {statement.old_fingerprint} → "
        f"{party.identity.fingerprint} (ledger entry {receipt.seq}); "
        f"`sealroom party export {name}` gives the new identity",
        highlight=False,
    )


@app.command("accept-rotation")
def accept_rotation(
    file: Path = typer.Argument(..., help="A rotation statement from `party rotate --out`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Take another party's new keys, proven by its rotation statement (signed by the old key).

    Example: sealroom party accept-rotation hospital.rotation.json
    """
    from sealroom.crypto.rotation import accept_rotation as accept
    from sealroom.workspace import Workspace

    with refusals():
        identity = accept(Workspace.find(), file)
    if json_out:
        emit_json(identity.document())
        return
    console.print(
        f"party [bold]{identity.name}[/] now has fingerprint {identity.fingerprint}",
        highlight=False,
    )


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Party to export."),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Print a party's public identity document (name, role, public keys, fingerprint).

    Example: sealroom party export hospital --out hospital.identity.json
    """
    from sealroom.crypto.identity import load_identity
    from sealroom.workspace import Workspace

    with refusals():
        identity = load_identity(Workspace.find(), name)
    text = json.dumps(identity.document(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        if json_out:
            emit_json({**identity.document(), "out": str(out)})
        else:
            console.print(f"wrote {out}", highlight=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="An identity document from `party export`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Import a party that lives elsewhere (public keys only).

    Example: sealroom party import lab.identity.json
    """
    from sealroom.crypto.identity import import_identity
    from sealroom.workspace import Workspace

    with refusals():
        identity = import_identity(Workspace.find(), file)
    if json_out:
        emit_json(identity.document())
    else:
        console.print(
            f"imported {identity.role} [bold]{identity.name}[/] (fingerprint "
            f"{identity.fingerprint})",
            highlight=False,
        )
