"""Real loopback key servers for the HTTP tests: in a thread, or as `sealroom kms serve` in a
subprocess (to read its memory use from /proc)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from sealroom.httpguard import GuardSettings, new_token
from sealroom.kms.server import create_app, guard_settings
from sealroom.workspace import Workspace

START_TIMEOUT_S = 30.0
_MAIN = "from sealroom.cli.main import main; main()"  # sealroom.cli.main has no __main__ guard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    port: int
    token: str
    pid: int = 0

    def client(self, **headers: str) -> httpx.Client:
        """An httpx client that sends the token (unless ``authorization`` is overridden)."""
        sent = {"authorization": f"Bearer {self.token}", **headers}
        return httpx.Client(base_url=self.url, headers=sent, timeout=30.0)


@contextmanager
def threaded_server(
    ws: Workspace,
    rate: float = 1000.0,
    guard: GuardSettings | None = None,
    proxy_headers: bool = False,
    **app_options: int,
) -> Iterator[Served]:
    """create_app(ws) served by uvicorn in a daemon thread on a free loopback port
    (``proxy_headers=True`` is uvicorn's default, which run_server turns off)."""
    port = free_port()
    token = guard.token if guard else new_token()
    guard = guard or guard_settings(port, token, rate)
    app = create_app(ws, guard, **app_options)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=proxy_headers
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("key service did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", port, token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def subprocess_server(ws: Workspace, *options: str) -> Iterator[Served]:
    """`sealroom kms serve` in its own process; the token read from the file it writes."""
    port = free_port()
    token_file = ws.keys / "kms-token"
    env = {
        **os.environ,
        "SEALROOM_HOME": str(ws.home),
        "PYTHONPATH": os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "kms", "serve", "--port", str(port), *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("kms serve did not start")
            time.sleep(0.1)
        yield Served(url, port, token_file.read_text().strip(), process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _root() -> str:
    return str(Path(__file__).resolve().parents[2])
