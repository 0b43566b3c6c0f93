"""Serving the dashboard in tests: a TestClient for the app, a real server for a browser.

A plain module (not the conftest) so that test files import it by its package path.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi.testclient import TestClient

from sealroom.ui.app import create_app
from sealroom.ui.settings import UiSettings
from sealroom.workspace import Workspace

TOKEN = "ui-test-token-" + "t" * 24
AUTH = {"authorization": f"Bearer {TOKEN}"}
SCREENSHOTS_ENV = "SEALROOM_UI_SCREENSHOTS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings(ws: Workspace, port: int = 8765, outputs: tuple[Path, ...] = ()) -> UiSettings:
    return UiSettings(ws=ws, token=TOKEN, port=port, outputs=outputs)


def client(ws: Workspace, outputs: tuple[Path, ...] = ()) -> TestClient:
    """A TestClient whose Host header the guard accepts; no token (read-only)."""
    config = settings(ws, outputs=outputs)
    return TestClient(create_app(config), base_url=config.url)


@contextmanager
def live_server(ws: Workspace, outputs: tuple[Path, ...] = ()) -> Iterator[str]:
    """The dashboard on a free loopback port in a thread; yields its base URL."""
    config = settings(ws, port=free_port(), outputs=outputs)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=config.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start within 20 s")
        time.sleep(0.02)
    try:
        yield config.url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def screenshot_dir(fallback: Path) -> Path:
    """Where browser tests save page screenshots: $SEALROOM_UI_SCREENSHOTS (the docs' folder
    when refreshing the pictures, see docs/ui.md) or the test's own temp folder."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
