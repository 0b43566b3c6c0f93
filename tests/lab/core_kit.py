"""Shared pieces for the lab core tests: a lab on a fast temporary folder, entry points
whose task is never run (a fake execute stands in for the runner), and that fake."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.scheduler import Scheduler
from sealroom.lab.spec import TERMINAL, EntryPoint, JobRequest, Plan, PlanJob
from sealroom.lab.store import LabStore

STEP = """
name: step
description: one step producing one json artifact
parameters:
  tag: {type: str, default: ""}
steps:
  - {name: run, task: noop}
artifacts:
  out: ${steps.run.out}
"""

CONSUME = """
name: consume
parameters:
  src: {type: artifact}
  tag: {type: str, default: ""}
steps:
  - {name: run, task: noop, args: {src: "${parameters.src}"}}
artifacts:
  out: ${steps.run.out}
"""


def accept(ep: EntryPoint, where: str) -> None:
    """Stands in for the runner's check (the tasks here are never run)."""


def fast_dir() -> Path:
    """A folder on tmpfs when there is one: SQLite's fsyncs cost nothing there."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="lab-core-", dir=shm if shm.is_dir() else None))


@dataclass
class FakeRunner:
    """Records the order of starts and ends; ``behaviour[job]`` is ok, fail, raise, lose,
    lose_once, no_artifact, bad_artifact or block (waits on ``gate``)."""

    behaviour: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, str, int, int]] = field(default_factory=list)  # kind, job, n, seq
    payloads: list[AttemptPayload] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: int = 0

    def _mark(self, kind: str, payload: AttemptPayload) -> None:
        with self.lock:
            self.seq += 1
            self.events.append((kind, payload.job_id, payload.attempt, self.seq))

    def __call__(self, payload: AttemptPayload) -> AttemptOutcome:
        self._mark("start", payload)
        with self.lock:
            self.payloads.append(payload)
        what = self.behaviour.get(payload.job_id, "ok")
        if what == "block":
            self.gate.wait(10)
        if what == "slow":
            time.sleep(0.3)
        self._mark("end", payload)
        if what == "raise":
            raise RuntimeError("the task blew up")
        status = "succeeded"
        error = None
        if what == "fail":
            status, error = "failed", "step run: boom"
        if what == "fail_traceback":
            status, error = "failed", "step run: boom\nTraceback (most recent call last):\n  ..."
        if what == "lose" or (what == "lose_once" and payload.attempt == 1):
            status, error = "lost", "worker died"
        body = json.dumps(
            {"job": payload.job_id, "attempt": payload.attempt, "inputs": sorted(payload.inputs)}
        ).encode()
        artifacts = {"out": ArtifactBlob("out", "json", "out.json", body)}
        if what == "no_artifact":
            artifacts = {}
        if what == "bad_artifact":
            artifacts = {"out": ArtifactBlob("out", "json", "../escape.json", body)}
        return AttemptOutcome(
            payload.job_id,
            payload.attempt,
            status,
            error=error,
            artifacts=artifacts if status == "succeeded" else {},
            metrics=[MetricPoint("loss", 1.0 / payload.attempt, 0), MetricPoint("loss", 0.5, 1)],
            params={"tag": str(payload.parameters.get("tag", ""))},
            logs=f"ran {payload.job_id} attempt {payload.attempt}\n",
        )

    def starts(self, job_id: str) -> list[int]:
        return [e[3] for e in self.events if e[0] == "start" and e[1] == job_id]

    def started_attempts(self, job_id: str) -> list[int]:
        return sorted(e[2] for e in self.events if e[0] == "start" and e[1] == job_id)

    def ends(self, job_id: str) -> list[int]:
        return [e[3] for e in self.events if e[0] == "end" and e[1] == job_id]


@dataclass
class Lab:
    root: Path
    paths: LabPaths
    store: LabStore
    artifacts: ArtifactStore
    engine: InlineEngine
    scheduler: Scheduler
    runner: FakeRunner

    def run(self, max_ticks: int = 2000, poll: float = 0.01) -> int:
        """Tick until every job has ended and the engine holds nothing."""
        for n in range(max_ticks):
            self.scheduler.tick(poll)
            jobs = self.store.list_jobs()
            if all(j.status in TERMINAL for j in jobs) and not self.engine.running():
                return n
        raise AssertionError(f"not settled: {[(j.id, j.status) for j in self.store.list_jobs()]}")


def open_lab(
    root: Path,
    runner: FakeRunner | None = None,
    queues: tuple[str, ...] = ("default",),
    no_worker_after_s: float = 5.0,
    clock=time.time,
    slots: int = 2,
) -> Lab:
    paths = LabPaths(root)
    store = LabStore.open(paths, check=accept)
    runner = runner or FakeRunner()
    engine = InlineEngine(runner, queues=queues, slots=slots)
    artifacts = ArtifactStore(paths)
    scheduler = Scheduler(
        store, engine, artifacts, clock=clock, no_worker_after_s=no_worker_after_s
    )
    return Lab(root, paths, store, artifacts, engine, scheduler, runner)


@contextmanager
def lab_at(root: Path | None = None, **kwargs) -> Iterator[Lab]:
    made = root is None
    root = root or fast_dir()
    lab = open_lab(root, **kwargs)
    try:
        lab.store.create_experiment("exp")
        lab.store.add_entry_point(STEP)
        lab.store.add_entry_point(CONSUME)
        yield lab
    finally:
        lab.runner.gate.set()
        lab.engine.shutdown(wait=True)
        lab.store.close()
        if made:
            shutil.rmtree(root, ignore_errors=True)


def job(**kw) -> JobRequest:
    """A job request on experiment "exp" (entry point "step" unless ``ep=`` says)."""
    return JobRequest(experiment="exp", entry_point=kw.pop("ep", "step"), **kw)


def plan(*jobs: dict) -> Plan:
    return Plan(
        jobs=[PlanJob(experiment="exp", entry_point=j.pop("ep", "step"), **j) for j in jobs]
    )


def consume(dep: str, **kw) -> dict:
    return {"ep": "consume", "parameters": {"src": f"${{jobs.{dep}.artifacts.out}}"}, **kw}
