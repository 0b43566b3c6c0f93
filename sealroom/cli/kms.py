"""`sealroom kms serve`: the key service over HTTP on loopback (provider-run, apart from rooms)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals

TOKEN_FILE_NAME = "kms-token"  # noqa: S105 (a file name, not a secret)

app = typer.Typer(help="Run the key service as an HTTP service.", no_args_is_help=True)


@app.command()
def serve(
    port: int = typer.Option(8700, "--port", help="TCP port on loopback."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address only."),
    token_file: Path = typer.Option(
        None,
        "--token-file",
        help="Clients' bearer token: read from this file if it exists, else written there "
        "(0600). Default: a fresh token in <workspace>/keys/kms-token at every start.",
    ),
    rate: float = typer.Option(
        None, "--rate", min=0.1, help="Requests a second per client, bursts of 2x [default: 20]."
    ),
    show_token: bool = typer.Option(
        False, "--show-token", help="Also print the token itself (once, on stdout)."
    ),
) -> None:
    """Serve nonce and release requests for this workspace's keys until interrupted.

    Clients send the token as `Authorization: Bearer ...` (KmsClient: token_file=..., or
    SEALROOM_KMS_TOKEN / SEALROOM_KMS_TOKEN_FILE).

    Example: sealroom kms serve --port 8700
    """
    from sealroom.attest.software import INSECURE_LABEL
    from sealroom.httpguard import check_loopback, read_token, write_token
    from sealroom.kms.server import DEFAULT_RATE, guard_settings
    from sealroom.kms.server import serve as run
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        check_loopback(host)
        if token_file is not None and token_file.exists():
            token = read_token(token_file)
        else:
            token_file = token_file or ws.keys / TOKEN_FILE_NAME
            token = write_token(token_file)
        guard = guard_settings(port, token, rate or DEFAULT_RATE)
    err_console.print(
        f"[yellow]software evidence is {INSECURE_LABEL}; released only where a policy allows it[/]",
        highlight=False,
    )
    console.print(f"key service on http://{host}:{port}/v1 (workspace {ws.home})")
    console.print(f"client token in {token_file} (0600)", highlight=False)
    if show_token:
        typer.echo(f"token: {token}")
    run(ws, guard, host, port)


@app.command("public-key")
def public_key(
    out: Path = typer.Option(None, "--out", help="Write the document to this file."),
    json_out: bool = JSON_OPTION,
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
        if json_out:
            emit_json({**document, "out": str(out)})
        else:
            console.print(f"wrote {out}", highlight=False)
