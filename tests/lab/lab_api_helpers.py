"""A lab behind the API for tests: the real LabService (store, scheduler, loop thread) over
the InlineEngine (no Ray), and three tiny tasks registered for the test only."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sealroom.httpguard import write_token
from sealroom.lab.api import create_app, guard_settings
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.service import LabService
from sealroom.lab.tasks import registry
from sealroom.lab.tasks.registry import InputFile, TaskContext, TaskSpec

TOKEN = "lab-test-token-0123456789abcdef"
PORT = 8480
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {"authorization": f"Bearer {TOKEN}"}

SCORE = """\
name: score
description: scores a value (test)
parameters:
  value: {type: float, default: 0.5, minimum: 0, maximum: 1}
  label: {type: str, default: a}
steps:
  - name: score
    task: lab_api_score
    args: {value: "${parameters.value}", label: "${parameters.label}"}
artifacts:
  report: "${steps.score.report}"
"""

CONSUME = """\
name: consume
parameters:
  source: {type: artifact}
steps:
  - name: read
    task: lab_api_read
    args: {source: "${parameters.source}"}
artifacts:
  copy: "${steps.read.copy}"
"""

FAIL = """\
name: fail
steps:
  - name: boom
    task: lab_api_fail
"""


def _score(ctx: TaskContext, value: float, label: str) -> dict[str, Any]:
    ctx.log(f"scoring {label} at {value}")
    for step in range(3):
        ctx.metric("acc", value * (step + 1) / 3, step)
    ctx.metric("loss", 1.0 - value)
    report = json.dumps({"label": label, "value": value}).encode()
    return {"report": ArtifactBlob("report", "json", "report.json", report)}


def _read(ctx: TaskContext, source: InputFile) -> dict[str, Any]:
    data = source.path.read_bytes()
    ctx.log(f"read {len(data)} bytes")
    return {"copy": ArtifactBlob("copy", "json", "copy.json", data)}


def _fail(ctx: TaskContext) -> dict[str, Any]:
    raise ValueError("this task always fails")


TEST_TASKS = {
    "lab_api_score": TaskSpec("lab_api_score", _score, ("report",), "test: score", {}),
    "lab_api_read": TaskSpec("lab_api_read", _read, ("copy",), "test: copy an input", {}),
    "lab_api_fail": TaskSpec("lab_api_fail", _fail, (), "test: fail", {}),
}


def register_test_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, spec in TEST_TASKS.items():
        monkeypatch.setitem(registry._BUILTIN, name, spec)


class TickingLab(LabService):
    """The real service over an inline engine (no Ray, no tracking), quick to notice a
    queue without a worker; :meth:`wait` follows one job to its end."""

    def __init__(self, paths: LabPaths) -> None:
        super().__init__(paths, InlineEngine(queues=("default",)), None, no_worker_after_s=0.2)

    def wait(self, job_id: str, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.store.get_job(job_id)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.02)
        raise AssertionError(f"{job_id} did not end in {timeout_s} s")


@contextmanager
def ticking_lab(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TickingLab]:
    register_test_tasks(monkeypatch)
    lab = TickingLab(LabPaths(root))
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def api_client(lab: TickingLab, rate: float = 20.0) -> TestClient:
    app = create_app(lab, guard_settings(PORT, TOKEN, rate=rate))
    return TestClient(app, base_url=BASE, headers=AUTH)


def seed_catalogue(http: TestClient) -> None:
    """An experiment and the three test entry points."""
    assert http.post("/v1/experiments", json={"name": "exp"}).status_code == 201
    for text in (SCORE, CONSUME, FAIL):
        response = http.post("/v1/entrypoints", json={"text": text})
        assert response.status_code == 201, response.text


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def served(lab: TickingLab) -> Iterator[str]:
    """The API on a real loopback socket (uvicorn in a thread), with the server file and
    token a client finds through the workspace; yields the URL."""
    import os

    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    app = create_app(lab, guard_settings(port, TOKEN))
    config = uvicorn.Config(app, log_level="warning", proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    write_token(lab.paths.token_file, TOKEN)
    lab.paths.server_file.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        lab.paths.server_file.unlink(missing_ok=True)
