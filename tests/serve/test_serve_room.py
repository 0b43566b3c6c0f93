"""The serving room's sandbox: it accepts on the socket the operator bound and passed in,
while it still cannot create a socket of its own (seccomp) or bind/connect TCP (Landlock)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sealroom.sandbox import landlock_abi, scrubbed_environment
from sealroom.serve.launcher import bind_listener, url_of

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, socket, sys
from pathlib import Path
from sealroom.sandbox import SandboxPolicy, confine, device_paths, python_runtime_paths
fd = int(sys.argv[1])
report = confine(SandboxPolicy(read_paths=python_runtime_paths(),
                               write_paths=(Path.cwd(), *device_paths())))
facts = {"network": report.network}
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    facts["socket"] = "created"
except PermissionError:
    facts["socket"] = "denied"
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    facts["unix"] = "created"
except PermissionError:
    facts["unix"] = "denied"
from sealroom.serve.hosting import serve_on_socket

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"accepted in the sandbox"})

def started():
    print(json.dumps(facts), flush=True)

serve_on_socket(app, fd, started)
print("stopped", flush=True)
"""


def _start(sock: socket.socket, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(sock.fileno())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=scrubbed_environment(tmp_path, keep={"PYTHONPATH": str(ROOT)}),
        pass_fds=(sock.fileno(),),
    )


@pytest.mark.skipif(landlock_abi() < 4, reason="needs Landlock TCP rules (ABI >= 4)")
def test_sandboxed_room_serves_on_the_inherited_socket_only(tmp_path: Path) -> None:
    sock = bind_listener("127.0.0.1", 0)
    url = url_of(sock)
    proc = _start(sock, tmp_path)
    sock.close()  # the operator keeps no copy: only the room listens
    try:
        assert proc.stdout is not None
        facts = json.loads(proc.stdout.readline())
        assert facts == {"network": "landlock-tcp+seccomp", "socket": "denied", "unix": "denied"}
        response = httpx.get(url, timeout=5)
        assert response.text == "accepted in the sandbox"
        proc.terminate()
        assert proc.stdout.readline().strip() == "stopped"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_non_loopback_host_is_refused() -> None:
    from sealroom.httpguard import HttpGuardError

    with pytest.raises(HttpGuardError, match="loopback only"):
        bind_listener("0.0.0.0", 0)


def test_url_of_names_the_bound_port() -> None:
    sock = bind_listener("127.0.0.1", 0)
    try:
        assert url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
