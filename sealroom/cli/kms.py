"""`sealroom kms serve`: the key service over HTTP on loopback (provider-run, apart from rooms)."""

from __future__ import annotations

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
