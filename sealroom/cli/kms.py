"""`sealroom kms serve`: the key service over HTTP on loopback (provider-run, apart from rooms)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sealroom.cli.console import console, err_console, refusals

app = typer.Typer(help="Run the key service as an HTTP service.", no_args_is_help=True)


@app.command()
def serve(
    port: int = typer.Option(8700, "--port", help="TCP port on loopback."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address only."),
) -> None:
    """Serve nonce and release requests for this workspace's keys until interrupted.

    Example: sealroom kms serve --port 8700
    """
    from sealroom.attest.software import INSECURE_LABEL
    from sealroom.kms.server import check_loopback
    from sealroom.kms.server import serve as run
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        check_loopback(host)
    err_console.print(
        f"[yellow]software evidence is {INSECURE_LABEL}; released only where a policy allows it[/]",
        highlight=False,
    )
    console.print(f"key service on http://{host}:{port}/v1 (workspace {ws.home})")
    run(ws, host, port)


@app.command("public-key")
def public_key(
    out: Path = typer.Option(None, "--out", help="Write the document to this file."),
) -> None:
    """Print the key service's import key: providers seal key grants to it (`keys grant`).

    Example: sealroom kms public-key --out kms.pub.json
    """
    from sealroom.kms.grant import service_public_document
    from sealroom.workspace import Workspace

    with refusals():
        document = service_public_document(Workspace.find().keys)
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")
