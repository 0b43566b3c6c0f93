"""Restarts: the query budget survives a stop and a crash (committed before it is spent);
a room killed mid-load leaves clients with one clear line and no plaintext on disk."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from sealroom.ledger import Ledger
from sealroom.serve.client import ClientError
from sealroom.serve.launcher import ServeError
from sealroom.workspace import Workspace
from tests.serve.helpers import build, files_containing, room_processes, running_room

ONE = np.full((1, 4), 0.731_234_5, dtype=np.float32)


def _examples(n: int) -> np.ndarray:
    return np.repeat(ONE, n, axis=0)


def test_budget_survives_a_clean_restart(workspace: Workspace, tmp_path: Path) -> None:
    served = build(workspace, tmp_path, query_budget=6)
    with running_room(served) as (url, _), served.client(url) as client:
        client.infer(_examples(4))
    with running_room(served) as (url, _), served.client(url) as client:
        with pytest.raises(ClientError, match=r"\(429\)"):
            client.infer(_examples(3))  # 4 + 3 > 6, though this room answered nothing yet
        client.infer(_examples(2))
        with pytest.raises(ClientError, match=r"\(429\)"):
            client.infer(_examples(1))
    with Ledger.open(workspace) as ledger:
        kinds = [e.kind for e in ledger.entries() if e.kind.startswith("inference.")]
    assert kinds.count("inference.started") == 2 and kinds.count("inference.stopped") == 2


def test_budget_survives_a_killed_room(workspace: Workspace, tmp_path: Path) -> None:
    served = build(workspace, tmp_path, query_budget=6)
    killed = pytest.raises(ServeError, match="killed by signal 9")
    with killed, running_room(served) as (url, _), served.client(url) as client:
        client.infer(_examples(5))
        (pid,) = room_processes()
        os.kill(pid, signal.SIGKILL)  # no chance to flush anything more
        with pytest.raises(ClientError, match="unreachable or gone"):
            client.infer(_examples(1))
    with running_room(served) as (url, _), served.client(url) as client:
        with pytest.raises(ClientError, match=r"\(429\)"):
            client.infer(_examples(2))
        client.infer(_examples(1))
    with Ledger.open(workspace) as ledger:
        stopped = [e.payload for e in ledger.entries("inference.stopped")]
    assert "killed by signal 9" in stopped[0]["reason"]
    assert stopped[0]["recorded_by"] == "operator"


def test_room_killed_mid_load(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_tmp = tmp_path / "tmp"
    room_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(room_tmp))
    served = build(workspace, tmp_path)
    errors: list[str] = []
    answered = threading.Semaphore(0)
    killed = pytest.raises(ServeError, match="killed by signal 9")
    with killed, running_room(served) as (url, _):

        def load() -> None:
            with served.client(url) as client:
                try:
                    while True:
                        client.infer(_examples(2))
                        answered.release()
                except ClientError as exc:
                    errors.append(str(exc))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(8):
            assert answered.acquire(timeout=20)
        (pid,) = room_processes()
        os.kill(pid, signal.SIGKILL)
        for thread in threads:
            thread.join(20)
    assert len(errors) == 4
    for error in errors:
        assert "\n" not in error and ("unreachable or gone" in error or "refused" in error)
    needles = [ONE.tobytes(), b"0.7312345"]
    assert files_containing([tmp_path, room_tmp], needles) == []
