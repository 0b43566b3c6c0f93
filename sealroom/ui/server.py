"""Start the dashboard: a fresh token (or one from a file), the URL to open, uvicorn."""

from __future__ import annotations

from pathlib import Path

from sealroom.httpguard import check_loopback, new_token, read_token, run_server
from sealroom.ui.settings import DEFAULT_PORT, UiSettings
from sealroom.workspace import Workspace


def settings_for(
    ws: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    outputs: tuple[Path, ...] = (),
    token_file: Path | None = None,
) -> UiSettings:
    """Checked settings: loopback only, a token of at least 16 characters (0600 file)."""
    check_loopback(host)
    token = read_token(token_file) if token_file is not None else new_token()
    return UiSettings(ws=ws, token=token, host=host, port=port, outputs=outputs)


def action_url(settings: UiSettings) -> str:
    """The URL whose fragment hands the page the token (never sent to the server)."""
    return f"{settings.url}/#token={settings.token}"


def serve(settings: UiSettings) -> None:
    from sealroom.ui.app import create_app

    run_server(create_app(settings), settings.host, settings.port)
