"""LabService with a RayEngine on one module-scoped local Ray, the real runner and the
story tasks: a job on a queue nobody serves says so within 10 s, a per-job timeout kills
its attempt (timed_out, job failed), finished attempts reach the tracker once each."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from lab_story_tasks import FIRST, story_execute
from ray_helpers import alive, local_ray, story_service, wait_until

from sealroom.lab.engine_ray import RayEngine
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.service import LabService
from sealroom.lab.spec import JobRequest


class ListTracker:
    """Records what it was asked to track; the service marks each attempt tracked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def record(self, store: Any, job_id: str, attempt: int) -> str:
        """As Tracker.record: log the attempt, then mark it tracked in the store."""
        self.calls.append((job_id, attempt))
        store.mark_tracked(job_id, attempt, f"run-{job_id}-{attempt}")
        return f"run-{job_id}-{attempt}"


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory.mktemp("ray"))


@pytest.fixture
def service(ray_cluster: None, tmp_path: Path) -> Iterator[LabService]:
    with story_service(tmp_path / "lab", ListTracker()) as service:
        yield service


def submit(service: LabService, **fields: Any) -> str:
    request = JobRequest(experiment="story", entry_point="story-first", **fields)
    return service.scheduler.submit(request).id


def test_job_runs_and_its_attempt_is_tracked_once(service: LabService) -> None:
    job = submit(service, parameters={"text": "hi"})
    wait_until(lambda: service.store.get_job(job).status == "succeeded", "job done", 60)
    wait_until(lambda: not service.store.untracked_attempts(), "attempt tracked", 10)
    [attempt] = service.store.attempts(job)
    assert attempt.tracked and attempt.mlflow_run_id == f"run-{job}-1"
    assert service.tracker.calls == [(job, 1)]  # type: ignore[union-attr]


def test_job_on_an_unserved_queue_says_no_worker_within_10s(service: LabService) -> None:
    service.store.add_queue("gpu")
    started = time.monotonic()
    job = submit(service, parameters={"text": "x"}, queue="gpu")
    wait_until(
        lambda: service.store.get_job(job).reason == "no worker for queue gpu",
        "no-worker reason",
        10,
    )
    print(f"'no worker for queue gpu' after {time.monotonic() - started:.1f}s")
    assert service.store.get_job(job).status == "queued"
    assert service.engine.running() == set()


def test_per_job_timeout_kills_the_attempt(service: LabService, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    job = submit(
        service, parameters={"text": "x", "seconds": 60.0, "pidfile": str(pidfile)}, timeout_s=1.5
    )
    wait_until(pidfile.exists, "attempt started", 60)
    pid = int(pidfile.read_text().split()[0])
    record = wait_until(
        lambda: (j := service.store.get_job(job)).status in ("failed", "succeeded") and j,
        "job ended",
        20,
    )
    assert record.status == "failed" and "timed out after 1.5s" in (record.reason or "")
    [attempt] = service.store.attempts(job)
    assert attempt.status == "timed_out"
    wait_until(lambda: not alive(pid), "the timed-out worker process gone", 10)
    wait_until(lambda: not service.engine.running(), "engine forgot the attempt", 10)


class FlakyTracker(ListTracker):
    """Fails its first call (MLflow down), then records."""

    def record(self, store: Any, job_id: str, attempt: int) -> str:
        self.calls.append((job_id, attempt))
        if len(self.calls) == 1:
            raise RuntimeError("tracking store unavailable")
        store.mark_tracked(job_id, attempt, "run-1")
        return "run-1"


def test_failed_tracking_is_retried_and_never_blocks_jobs(tmp_path: Path) -> None:
    tracker = FlakyTracker()
    engine = InlineEngine(execute=story_execute)
    service = LabService(LabPaths(tmp_path / "lab"), engine, tracker, track_retry_s=0.5)
    service.store.create_experiment("story")
    service.store.add_entry_point(FIRST)
    with service:
        job = submit(service, parameters={"text": "x"})
        wait_until(lambda: service.store.get_job(job).status == "succeeded", "job done", 30)
        wait_until(lambda: not service.store.untracked_attempts(), "tracked after a retry", 10)
        assert [a.mlflow_run_id for a in service.store.attempts(job)] == ["run-1"]
    assert tracker.calls == [(job, 1), (job, 1)]
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("lab-"))


@pytest.mark.slow  # 12 s; make test runs the harder story, kill -9 (test_lab_restart.py)
def test_stop_mid_job_then_start_reruns_it(ray_cluster: None, tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "lab")
    hold, pidfile = tmp_path / "hold", tmp_path / "pid"
    hold.write_text("wait")
    first = LabService(paths, RayEngine(execute=story_execute))
    first.store.create_experiment("story")
    first.store.add_entry_point(FIRST)
    with first:
        job = submit(first, parameters={"text": "x", "hold": str(hold), "pidfile": str(pidfile)})
        wait_until(pidfile.exists, "attempt 1 started", 60)
    pid = int(pidfile.read_text().split()[0])
    wait_until(lambda: not alive(pid), "a clean stop ends the running attempt", 10)
    hold.unlink()
    with LabService(paths, RayEngine(execute=story_execute)) as second:
        assert second.recovered == [job]
        wait_until(lambda: second.store.get_job(job).status == "succeeded", "rerun", 60)
        assert [(a.number, a.status) for a in second.store.attempts(job)] == [
            (1, "interrupted"),
            (2, "succeeded"),
        ]
