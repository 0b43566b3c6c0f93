"""Load on the real serving stack over loopback: a sandboxed room process (serve_room), 64
concurrent InferenceClients (threads, each its own connection, identity and checks).

Bounded: 64 clients x a few requests, tiny model, well under 30 s. Pins: no error, no lost
or duplicated answer (each response opens only with its own request's key, carries the
output of its own input, and a receipt sequence number no other response has), every
receipt verifies, server memory flat after a warm-up, and a room killed mid-load leaves its
clients with one clear error and no plaintext anywhere on disk.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sealroom.serve.client import InferenceClient
from sealroom.serve.receipts import verify_receipt_proof
from sealroom.workspace import Workspace
from tests.serve.helpers import FEATURES, WEIGHTS, Served, build, running_room

CLIENTS = 64
ATTESTING = 4
REQUESTS_PER_CLIENT = 4
DECIMALS = 4
MAX_RSS_GROWTH = 24 << 20  # bytes, after a warm-up: a leak of 1 KiB a request shows at once
CANARY = 1234.5678  # an input value never otherwise seen: its bytes mark plaintext on disk


def expected(x: np.ndarray) -> list[float]:
    """The contract's output policy on the tiny model, computed here: rounded softmax(x @ W)."""
    logits = x.astype(np.float64) @ WEIGHTS.astype(np.float64)
    exps = np.exp(logits - logits.max())
    return [round(float(p), DECIMALS) for p in exps / exps.sum()]


def _room_pid() -> int:
    """Our child process running the serving room (serve_room started it)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"sealroom.serve.room" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise AssertionError("no serving room process among our children")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _clients(served: Served, url: str, count: int = CLIENTS) -> list[InferenceClient]:
    """``count`` clients, each having attested the room on its own (4 at a time: the room
    answers at most 4 attestations at once, each one asks the operator's attester)."""
    clients = [served.client(url, timeout=20.0) for _ in range(count)]
    with ThreadPoolExecutor(ATTESTING) as pool:
        list(pool.map(lambda c: c.attest(), clients))
    return clients


def _round(
    clients: list[InferenceClient], inputs: Callable[[int, int], np.ndarray], per_client: int
) -> tuple[list[tuple[np.ndarray, Any]], list[str]]:
    """Every client sends ``per_client`` requests at once with the others; (input, result)s
    and error lines."""
    answers: list[tuple[np.ndarray, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))

    def work(index: int) -> None:
        client = clients[index]
        barrier.wait()
        for k in range(per_client):
            x = inputs(index, k)
            try:
                result = client.infer(x)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                answers.append((x, result))

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(work, range(len(clients))))
    return answers, errors


def _inputs(seed: int) -> Callable[[int, int], np.ndarray]:
    def make(client: int, k: int) -> np.ndarray:
        rng = np.random.default_rng([seed, client, k])
        return rng.normal(size=(1, FEATURES)).astype(np.float32)

    return make


def test_64_concurrent_clients_no_error_no_lost_answer_memory_flat(
    workspace: Workspace, tmp_path: Path
) -> None:
    served = build(
        workspace, tmp_path,
        output={"kind": "probabilities", "decimals": DECIMALS},
        limits={"max_batch_size": 32, "max_wait_ms": 2, "queue_size": 1024},
    )  # fmt: skip
    started = time.monotonic()
    with running_room(served) as (url, _):
        pid = _room_pid()
        clients = _clients(served, url)
        try:
            warm, warm_errors = _round(clients, _inputs(0), 2)
            assert warm_errors == [] and len(warm) == 2 * CLIENTS
            rss_warm = _rss(pid)
            answers, errors = _round(clients, _inputs(1), REQUESTS_PER_CLIENT)
            rss_after = _rss(pid)
        finally:
            for client in clients:
                client.close()
    assert errors == []
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT  # nothing lost
    sequences = [r.proof.receipt.sequence for _, r in warm + answers]
    assert len(set(sequences)) == len(sequences)  # nothing answered twice
    for x, result in answers:  # each answer is its own input's output
        assert result.outputs == [{"probabilities": expected(x[0])}]
        verify_receipt_proof(result.proof)  # infer() checked it too; again, offline
    growth = rss_after - rss_warm
    assert growth < MAX_RSS_GROWTH, f"room RSS grew {growth >> 10} KiB under load"
    assert time.monotonic() - started < 60


def test_room_killed_mid_load_leaves_clear_errors_and_no_plaintext(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_tmp = tmp_path / "room-tmp"
    room_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(room_tmp))
    served = build(workspace, tmp_path, limits={"max_batch_size": 8, "max_wait_ms": 50})
    canary = np.full((1, FEATURES), CANARY, dtype=np.float32)
    with pytest.raises(Exception), running_room(served) as (url, _):  # the room's death is reported
        pid = _room_pid()
        clients = _clients(served, url, 16)
        killed = threading.Event()

        def inputs(client: int, k: int) -> np.ndarray:
            if client == 0 and k == 1 and not killed.is_set():
                os.kill(pid, signal.SIGKILL)  # the room we started, by its id
                killed.set()
            return canary

        try:
            _answers, errors = _round(clients, inputs, 3)
        finally:
            for client in clients:
                client.close()
        assert killed.is_set() and errors
        for line in errors:  # one clear line each, no traceback, no data
            assert line.startswith("ClientError: room at ") and "unreachable or gone" in line
            assert "\n" not in line and str(CANARY) not in line
    marker = canary.tobytes()
    for root in (workspace.home, room_tmp, tmp_path):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert marker not in path.read_bytes(), f"plaintext input in {path}"
