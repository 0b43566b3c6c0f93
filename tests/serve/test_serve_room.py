"""The serving room's sandbox: it accepts on the socket the operator bound and passed in,
while it still cannot create a socket of its own (seccomp) or bind/connect TCP (Landlock)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from sealroom.ledger import Ledger
from sealroom.room.channel import (
    CountsCall,
    ModelReleaseCall,
    Request,
)
from sealroom.sandbox import landlock_abi, scrubbed_environment
from sealroom.serve.launcher import ServeError, bind_listener, serve_room, url_of
from sealroom.workspace import Workspace
from tests.serve.helpers import build, running_room, tiny_classifier

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, socket, sys
from pathlib import Path
from sealroom.sandbox import SandboxPolicy, confine, device_paths, python_runtime_paths
fd = int(sys.argv[1])
# Made before confinement, so that only Landlock (not seccomp's socket() rule) stands
# between them and a bind or a connect.
early_bind = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
early_connect = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listening = socket.socket(fileno=os.dup(fd)).getsockname()
report = confine(SandboxPolicy(read_paths=python_runtime_paths(),
                               write_paths=(Path.cwd(), *device_paths())))
facts = {"network": report.network}
for name, attempt in (
    ("bind", lambda: early_bind.bind(("127.0.0.1", 0))),
    ("connect", lambda: early_connect.connect(listening)),
):
    try:
        attempt()
        facts[name] = "allowed"
    except PermissionError:
        facts[name] = "denied"
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
        assert facts == {
            "network": "landlock-tcp+seccomp",
            "bind": "denied",
            "connect": "denied",
            "socket": "denied",
            "unix": "denied",
        }
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


def test_the_room_imports_on_one_thread_and_runs_the_model_on_the_operators(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """numpy's BLAS starts OMP_NUM_THREADS threads at import, before the room confines
    itself, and the sandbox refuses a process with threads (seen on a 16-core machine): the
    room starts on one, and ONNX Runtime gets the operator's count through the request."""
    from sealroom.serve.launcher import _threads, serving_environment

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert serving_environment(tmp_path)["OMP_NUM_THREADS"] == "1"
    assert _threads() == 8


def test_url_of_names_the_bound_port() -> None:
    sock = bind_listener("127.0.0.1", 0)
    try:
        assert url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_one_room_per_contract_and_workspace(workspace: Workspace, tmp_path: Path) -> None:
    """Two rooms would spend one query budget twice from the same reloaded totals."""
    served = build(workspace, tmp_path)
    with running_room(served), pytest.raises(ServeError, match="already being served"):
        serve_room(workspace, served.signed.id, port=0)
    with Ledger.open(workspace) as ledger:
        assert len(ledger.find("inference.started", contract_id=served.signed.id)) == 1


def test_a_room_denied_its_model_key_fails_with_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    served = build(workspace, tmp_path, import_key=False)
    with pytest.raises(ServeError, match="key release denied") as caught:
        serve_room(workspace, served.signed.id, port=0)
    assert "\n" not in str(caught.value)
    with Ledger.open(workspace) as ledger:
        assert ledger.find("key.denied") and not ledger.find("inference.started")


def test_after_the_key_is_released_a_failure_says_only_its_category(
    workspace: Workspace, tmp_path: Path
) -> None:
    """The model does not fit the contract's input signature: the engine's message may
    describe the model, so only the stage's category and the class name leave the room."""
    weights = np.ones((5, 3), dtype=np.float32)
    served = build(workspace, tmp_path, onnx=tiny_classifier(weights))
    with pytest.raises(ServeError) as caught:
        serve_room(workspace, served.signed.id, port=0)
    assert str(caught.value).endswith("key release or decryption failed: EngineError")
    with Ledger.open(workspace) as ledger:
        assert ledger.find("key.released") and not ledger.find("inference.started")


OPERATOR = r"""
import sys
from sealroom.serve.launcher import serve_room
from sealroom.workspace import Workspace
serve_room(Workspace.find(), sys.argv[1], port=0, on_ready=lambda url, i: print(url, flush=True))
"""


def test_the_room_dies_with_its_operator(workspace: Workspace, tmp_path: Path) -> None:
    """kill -9 of the operator: the room must not serve on without anyone to commit to."""
    served = build(workspace, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    operator = subprocess.Popen(
        [sys.executable, "-c", OPERATOR, served.signed.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert operator.stdout is not None
        url = operator.stdout.readline().strip()
        assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
        rooms = _children(operator.pid)
        assert len(rooms) == 1
        operator.kill()
        operator.wait()
        deadline = time.monotonic() + 10
        while _alive(rooms[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(rooms[0])
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/v1/health", timeout=2)
    finally:
        operator.kill()
        operator.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_the_training_desk_refuses_the_serving_calls(workspace: Workspace, tmp_path: Path) -> None:
    from sealroom.room.operator import OperatorDesk

    served = build(workspace, tmp_path)
    desk = OperatorDesk(workspace, "run-1", served.signed)
    try:
        for call in (
            CountsCall(op="counts", contract_id=served.signed.id),
            ModelReleaseCall(op="release_model", request={}),
        ):
            answer = desk.handle(Request(id=1, call=call))
            assert not answer.ok and "a training room may not call" in answer.error
    finally:
        desk.close()


def test_the_room_stops_when_its_contract_expires(workspace: Workspace, tmp_path: Path) -> None:
    served = build(workspace, tmp_path)
    soon = datetime.now(UTC) + timedelta(seconds=12)  # room start on a loaded machine: < 12 s
    short = served.with_contract("tiny-short", expires=soon)
    expired = pytest.raises(ServeError, match=r"contract tiny-short expired at")
    with expired, running_room(short, timeout=11) as (url, _):
        with short.client(url) as client:
            client.infer(np.zeros((1, 4), dtype=np.float32))
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 3)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/v1/health", timeout=2)  # it no longer answers at all
    with Ledger.open(workspace) as ledger:
        (stopped,) = ledger.find("inference.stopped", contract_id="tiny-short")
    assert "expired at" in stopped.payload["reason"]
