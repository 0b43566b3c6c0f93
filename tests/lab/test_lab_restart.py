"""Story: the lab server is killed (-9, its whole process group) in the middle of a DAG and
started again on the same workspace. Nothing is lost: the attempt that was running is
"interrupted" and its job runs again as attempt 2, completed jobs keep their one attempt,
the last job finishes with its dependencies' artifacts, and the killed server's Ray leaves
no process behind (its raylet and workers die with the server)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

pytest.importorskip("ray")

from lab_story_tasks import FIRST, NEXT
from ray_helpers import alive, kill_session, start_story_server

from sealroom.lab.client import LabClient
from sealroom.lab.paths import LabPaths


@pytest.fixture
def servers() -> Iterator[list[Popen[bytes]]]:
    started: list[Popen[bytes]] = []
    yield started
    for proc in started:  # whatever a failed test left running
        if proc.poll() is None or proc.returncode is None:
            kill_session(proc)


def wait_until(check: Callable[[], Any], what: str, limit_s: float = 60.0) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {limit_s:.0f}s"
        time.sleep(0.1)


def test_killed_server_restarts_interrupted_attempt_and_keeps_completed_jobs(
    tmp_path: Path, servers: list[Popen[bytes]]
) -> None:
    paths = LabPaths(tmp_path / "ws" / "lab").create()
    log = tmp_path / "server.log"
    hold, pidfile = tmp_path / "hold", tmp_path / "b.pid"
    hold.write_text("wait")
    t0 = time.monotonic()
    proc, _ = start_story_server(paths.root, log)
    servers.append(proc)
    print(f"server ready in {time.monotonic() - t0:.1f}s")
    with LabClient.from_workspace(paths) as lab:
        lab.create_experiment("story")
        lab.add_entry_point(FIRST)
        lab.add_entry_point(NEXT)
        jobs = lab.submit_plan(
            {
                "jobs": [
                    {
                        "key": "a",
                        "experiment": "story",
                        "entry_point": "story-first",
                        "parameters": {"text": "a"},
                    },
                    {
                        "key": "b",
                        "experiment": "story",
                        "entry_point": "story-next",
                        "depends_on": ["a"],
                        "parameters": {
                            "source": "${jobs.a.artifacts.out}",
                            "text": "b",
                            "hold": str(hold),
                            "pidfile": str(pidfile),
                        },
                    },
                    {
                        "key": "c",
                        "experiment": "story",
                        "entry_point": "story-next",
                        "depends_on": ["b"],
                        "parameters": {"source": "${jobs.b.artifacts.out}", "text": "c"},
                    },
                ]
            }
        )
        a, b, c = (job["id"] for job in jobs)
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), "job b started", 90)
        worker_pid, attempt = (int(x) for x in pidfile.read_text().split())
        assert attempt == 1
        assert lab.get_job(a)["status"] == "succeeded"
        assert lab.get_job(b)["status"] == "running"

    took = kill_session(proc)  # SIGKILL to the server's group; waits for its whole session
    print(f"killed server's session gone in {took:.1f}s")
    assert not alive(worker_pid), "the killed server's Ray worker still runs attempt 1"
    pidfile.unlink()
    hold.unlink()

    t0 = time.monotonic()
    proc, _ = start_story_server(paths.root, log)
    servers.append(proc)
    print(f"server restarted in {time.monotonic() - t0:.1f}s")
    with LabClient.from_workspace(paths) as lab:
        wait_until(
            lambda: lab.get_job(c)["status"] in ("succeeded", "failed", "cancelled"),
            "job c ended",
            120,
        )
        print(f"DAG finished {time.monotonic() - t0:.1f}s after the restart")
        assert [lab.get_job(j)["status"] for j in (a, b, c)] == ["succeeded"] * 3
        assert [x["status"] for x in lab.attempts(a)] == ["succeeded"]
        assert [(x["number"], x["status"]) for x in lab.attempts(b)] == [
            (1, "interrupted"),
            (2, "succeeded"),
        ]
        assert [x["status"] for x in lab.attempts(c)] == ["succeeded"]
        out = lab.download_artifact(c, "out", tmp_path / "out.txt")
        assert out.read_text() == "abc"
        assert lab.get_job(b)["attempts"] == 2 and lab.get_job(a)["attempts"] == 1

    proc.send_signal(signal.SIGTERM)  # a clean stop removes server.json
    assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    assert not paths.server_file.exists()
    kill_session(proc)  # its session is empty, or emptied now
    assert os.path.exists(paths.db)
