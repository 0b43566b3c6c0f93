"""Story: the Ray worker process running a job is killed mid-job (SIGKILL, pid from the
task itself). Ray does not retry (max_retries=0); the lab records the attempt "lost" and
fails the job, or, when the job allows retries, runs it again as a new attempt."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from ray_helpers import local_ray, story_service, wait_until

from sealroom.lab.service import LabService
from sealroom.lab.spec import TERMINAL, JobRequest


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory.mktemp("ray"))


@pytest.fixture
def service(ray_cluster: None, tmp_path: Path) -> Iterator[LabService]:
    with story_service(tmp_path / "lab") as service:
        yield service


def kill_first_attempt(service: LabService, tmp_path: Path, max_retries: int) -> str:
    hold, pidfile = tmp_path / "hold", tmp_path / "pid"
    hold.write_text("wait")
    request = JobRequest(
        experiment="story",
        entry_point="story-first",
        parameters={"text": "t", "hold": str(hold), "pidfile": str(pidfile)},
        max_retries=max_retries,
    )
    job = service.scheduler.submit(request).id
    wait_until(pidfile.exists, "attempt 1 started", 60)
    pid, attempt = (int(x) for x in pidfile.read_text().split())
    assert attempt == 1
    os.kill(pid, signal.SIGKILL)
    hold.unlink()
    return job


def test_killed_worker_fails_the_job_without_retries(service: LabService, tmp_path: Path) -> None:
    job = kill_first_attempt(service, tmp_path, max_retries=0)
    record = wait_until(
        lambda: (j := service.store.get_job(job)).status in TERMINAL and j, "job ended", 20
    )
    assert record.status == "failed" and "lost its worker" in (record.reason or "")
    [attempt] = service.store.attempts(job)
    assert attempt.status == "lost" and (attempt.error or "").startswith("worker lost: ")


def test_killed_worker_is_retried_as_a_new_attempt(service: LabService, tmp_path: Path) -> None:
    job = kill_first_attempt(service, tmp_path, max_retries=1)
    record = wait_until(
        lambda: (j := service.store.get_job(job)).status in TERMINAL and j, "job ended", 60
    )
    assert record.status == "succeeded", record.reason
    assert [(a.number, a.status) for a in service.store.attempts(job)] == [
        (1, "lost"),
        (2, "succeeded"),
    ]
    [artifact] = service.store.artifacts(job)
    assert (artifact.attempt, artifact.name) == (2, "out")
