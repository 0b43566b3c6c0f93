"""`sealroom party`: create, list, export and import parties."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals
from sealroom.crypto.identity import (
    create_party,
    has_private_keys,
    import_identity,
    list_identities,
    load_identity,
)
from sealroom.workspace import Workspace

app = typer.Typer(help="Parties: providers, consumers and operators.", no_args_is_help=True)

ROLE_HELP = "provider | consumer | operator"


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Party name (letters, digits, '-', '_')."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a party with an Ed25519 signing key and an X25519 (HPKE) key pair.

    Private keys are written 0600 into the workspace and never printed.

    Example: sealroom party create hospital --role provider
    """
    with refusals():
        ws = Workspace.find()
        party = create_party(ws, name, role)  # type: ignore[arg-type]  # checked inside
    if json_out:
        emit_json(party.identity.document())
    else:
        console.print(
            f"created {party.identity.role} [bold]{name}[/] (fingerprint "
            f"{party.identity.fingerprint})",
            highlight=False,
        )


@app.command("list")
def list_(json_out: bool = JSON_OPTION) -> None:
    """List the parties this workspace knows (own and imported).

    Example: sealroom party list --json
    """
    with refusals():
        ws = Workspace.find()
        rows = [(i, has_private_keys(ws, i.name)) for i in list_identities(ws)]
    if json_out:
        emit_json([{**i.document(), "private_keys": own} for i, own in rows])
        return
    table = Table("name", "role", "fingerprint", "keys")
    for identity, own in rows:
        table.add_row(
            identity.name, identity.role, identity.fingerprint, "own" if own else "imported"
        )
    console.print(table)


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Party to export."),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> None:
    """Print a party's public identity document (name, role, public keys, fingerprint).

    Example: sealroom party export hospital --out hospital.identity.json
    """
    with refusals():
        identity = load_identity(Workspace.find(), name)
    text = json.dumps(identity.document(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="An identity document from `party export`."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Import a party that lives elsewhere (public keys only).

    Example: sealroom party import lab.identity.json
    """
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
