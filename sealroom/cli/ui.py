"""`sealroom ui`: the web dashboard of this workspace, on loopback."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import console, refusals


def ui_command(
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on."),
    outputs: list[Path] = typer.Option(
        [],
        "--outputs",
        help="A folder of decrypted run outputs (`sealroom output decrypt --out DIR/RUN`); "
        "a run's metrics and plots are shown only where their hashes match its receipt.",
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="Use the token in this 0600 file instead of a fresh one (for scripts).",
    ),
) -> None:
    """Serve the web dashboard of this workspace until Ctrl-C.

    Pages are read-only; actions (cancel or rerun a testbed job) need the token in the
    URL printed at start. Nothing in the dashboard signs or holds a party's private key.

    Example: sealroom ui --port 8765 --outputs results/
    """
    from sealroom.ui.server import action_url, serve, settings_for
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        settings = settings_for(
            ws, host=host, port=port, outputs=tuple(outputs), token_file=token_file
        )
    console.print(f"dashboard of {ws.home}", highlight=False)
    console.print(f"  read-only:        {settings.url}/", highlight=False)
    console.print(f"  with actions:     {action_url(settings)}", highlight=False)
    console.print("  [dim]Ctrl-C stops it[/]")
    serve(settings)
