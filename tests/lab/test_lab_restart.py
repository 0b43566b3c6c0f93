"""Story: the lab server is killed (-9, its whole process group) in the middle of a DAG and
started again on the same workspace. Nothing is lost: the attempt that was running is
"interrupted" and its job runs again as attempt 2, completed jobs keep their one attempt,
the last job finishes with its dependencies' artifacts, and the killed server's Ray leaves
no process behind (its raylet and workers die with the server)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pytest

pytest.importorskip("ray")

from lab_story_tasks import FIRST, NEXT
from ray_helpers import (
    alive,
    kill_session,
    session_commands,
    start_head,
    start_story_server,
    wait_until,
)

from sealroom.errors import LabError
from sealroom.lab.client import LabClient
from sealroom.lab.engine_ray import ray_token_path
from sealroom.lab.paths import LabPaths
from sealroom.lab.server import _server_lock, run_lab_server


@pytest.fixture
def servers() -> Iterator[list[Popen[bytes]]]:
    started: list[Popen[bytes]] = []
    yield started
    for proc in started:  # whatever a failed test left running
        if proc.poll() is None or proc.returncode is None:
            kill_session(proc)


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
        assert json.loads(paths.server_file.read_text())["ray_address"].count(":") == 1
        assert ray_token_path().stat().st_mode & 0o777 == 0o600  # Ray wrote it 0644
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), "job b started", 90)
        worker_pid, attempt = (int(x) for x in pidfile.read_text().split())
        assert attempt == 1
        assert lab.get_job(a)["status"] == "succeeded"
        assert lab.get_job(b)["status"] == "running"

    # kill -9 the server process alone, as an operator would: its Ray goes with it (Ray
    # starts its processes with the parent-death signal set, and workers exit when their
    # raylet does), so nothing keeps running attempt 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed = time.monotonic()
    wait_until(lambda: not alive(worker_pid), "the worker running attempt 1 exits", 30)
    print(f"attempt 1's worker gone {time.monotonic() - killed:.1f}s after the kill")
    wait_until(
        lambda: (
            not any(("raylet" in cmd or "gcs_server" in cmd) for cmd in session_commands(proc.pid))
        ),
        "the killed server's raylet and GCS exit",
        30,
    )
    print(f"raylet and GCS gone {time.monotonic() - killed:.1f}s after the kill")
    # Ray's dashboard and runtime-env agents linger up to about a minute before they
    # notice; they run no task. The process group takes them now.
    kill_session(proc)
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
        # every attempt, the interrupted one too, reaches MLflow once
        attempts = lambda: [x for j in (a, b, c) for x in lab.attempts(j)]  # noqa: E731
        wait_until(lambda: all(x["tracked"] for x in attempts()), "all attempts tracked", 90)
        assert len({x["mlflow_run_id"] for x in attempts()}) == 4

    proc.send_signal(signal.SIGTERM)  # a clean stop removes server.json
    assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    assert not paths.server_file.exists()
    kill_session(proc)  # its session is empty, or emptied now
    assert os.path.exists(paths.db)


def test_second_server_on_the_same_workspace_is_refused(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "lab").create()
    refused = pytest.raises(LabError, match=r"a lab server already runs for .*lab stop first")
    with _server_lock(paths), refused:  # the lock as a running server holds it
        run_lab_server(paths)
    assert not paths.server_file.exists()


@pytest.mark.slow  # about a minute: a cluster head, then two servers joining it
def test_killed_server_on_a_cluster_takes_its_attempt_along(
    tmp_path: Path, servers: list[Popen[bytes]]
) -> None:
    """With --ray-address the workers belong to the cluster, not the server: Ray ends the
    tasks of a driver that died, so attempt 1 stops and only attempt 2 runs."""
    head, address = start_head(tmp_path / "head.log")
    try:
        paths = LabPaths(tmp_path / "ws" / "lab").create()
        log = tmp_path / "server.log"
        hold, pidfile = tmp_path / "hold", tmp_path / "pid"
        hold.write_text("wait")
        proc, _ = start_story_server(paths.root, log, ray_address=address)
        servers.append(proc)
        with LabClient.from_workspace(paths) as lab:
            lab.create_experiment("story")
            lab.add_entry_point(FIRST)
            job = lab.submit_job(
                {
                    "experiment": "story",
                    "entry_point": "story-first",
                    "parameters": {"text": "x", "hold": str(hold), "pidfile": str(pidfile)},
                }
            )["id"]
            wait_until(lambda: pidfile.exists() and pidfile.read_text(), "attempt 1 ran", 90)
        worker_pid = int(pidfile.read_text().split()[0])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed = time.monotonic()
        wait_until(lambda: not alive(worker_pid), "the dead driver's worker is ended", 60)
        print(f"cluster ended attempt 1's worker {time.monotonic() - killed:.1f}s after the kill")
        kill_session(proc)
        hold.unlink()
        proc, _ = start_story_server(paths.root, log, ray_address=address)
        servers.append(proc)
        with LabClient.from_workspace(paths) as lab:
            wait_until(lambda: lab.get_job(job)["status"] == "succeeded", "job reran", 90)
            assert [(x["number"], x["status"]) for x in lab.attempts(job)] == [
                (1, "interrupted"),
                (2, "succeeded"),
            ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert head.poll() is None, "a lab server's clean stop must not stop the cluster"
    finally:
        kill_session(head, everything=True)
        current = Path("/tmp/ray/ray_current_cluster")  # `ray start --head` wrote it
        if current.exists() and current.read_text().strip().endswith(address.split(":")[1]):
            current.unlink()
