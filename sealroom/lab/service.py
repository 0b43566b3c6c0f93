"""The lab's long-running core: one store, one scheduler, one engine, and two threads.

The loop thread calls :meth:`Scheduler.tick` forever (poll the engine, commit outcomes,
dispatch ready jobs, time out, heartbeat workers). The tracking thread copies finished
attempts into MLflow, apart from the loop, so a slow or failing tracking store never delays
a job: an attempt it could not record stays "untracked" in the database and is tried again
(after a restart too). :meth:`start` runs :meth:`Scheduler.recover` first, so attempts a
crash left "running" are "interrupted" and their jobs queued for a new attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.engine import Engine
from sealroom.lab.paths import LabPaths
from sealroom.lab.scheduler import Scheduler
from sealroom.lab.store import LabStore

log = logging.getLogger("sealroom.lab")
TICK_POLL_S = 0.2
TRACK_EVERY_S = 1.0
TRACK_RETRY_S = 10.0  # a tracking store that failed is tried again after this


class RecordsAttempts(Protocol):
    def record(self, store: LabStore, job_id: str, attempt: int) -> str:
        """Log one ended attempt and mark it tracked in ``store``; the run id."""


class LabService:
    """Owns the store, scheduler and engine of one workspace's lab; see the module doc."""

    def __init__(
        self,
        paths: LabPaths,
        engine: Engine,
        tracker: RecordsAttempts | None = None,
        *,
        no_worker_after_s: float = 5.0,
        track_retry_s: float = TRACK_RETRY_S,
    ) -> None:
        self.paths = paths.create()
        self.engine = engine
        self.tracker = tracker
        self.store = LabStore.open(paths)
        self.artifacts = ArtifactStore(paths)
        self.scheduler = Scheduler(
            self.store, engine, self.artifacts, no_worker_after_s=no_worker_after_s
        )
        self.track_retry_s = track_retry_s
        self.recovered: list[str] = []
        self.loop_errors = 0  # ticks that raised (logged; the loop goes on)
        self._stop = threading.Event()
        self._tracked_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.scheduler.on_attempt_ended.append(lambda job, attempt: self._tracked_wake.set())

    def start(self) -> LabService:
        """Recover what a crash left running, then start the loop and tracking threads."""
        self.recovered = list(self.scheduler.recover())
        if self.recovered:
            log.warning("recovered after a crash: %s", ", ".join(self.recovered))
        self._threads = [threading.Thread(target=self._loop, name="lab-loop", daemon=True)]
        if self.tracker is not None:
            track = threading.Thread(target=self._track_loop, name="lab-tracking", daemon=True)
            self._threads.append(track)
        for thread in self._threads:
            thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scheduler.tick(poll_timeout_s=TICK_POLL_S)
            except Exception:  # the loop must outlive one bad tick; the log says which
                self.loop_errors += 1
                log.exception("lab scheduler tick failed")
                self._stop.wait(1.0)

    def _track_loop(self) -> None:
        failed_at: dict[tuple[str, int], float] = {}
        while not self._stop.is_set():
            self._tracked_wake.wait(TRACK_EVERY_S)
            self._tracked_wake.clear()
            self.track_pending(failed_at)

    def track_pending(self, failed_at: dict[tuple[str, int], float] | None = None) -> int:
        """Record every untracked finished attempt in MLflow; returns how many were."""
        if self.tracker is None:
            return 0
        failed_at = {} if failed_at is None else failed_at
        done = 0
        for attempt in self.store.untracked_attempts():
            key = (attempt.job_id, attempt.number)
            if self._stop.is_set():
                break
            if key in failed_at and time.monotonic() - failed_at[key] < self.track_retry_s:
                continue
            try:
                self.tracker.record(self.store, *key)  # marks the attempt tracked
            except Exception:  # MLflow down or refusing: kept untracked, tried again later
                failed_at[key] = time.monotonic()
                log.exception("tracking %s attempt %d failed", *key)
                continue
            failed_at.pop(key, None)
            done += 1
        return done

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the threads, then every running attempt (left "running" in the database:
        the next start's recover() marks them interrupted and runs them again)."""
        self._stop.set()
        self._tracked_wake.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self.engine.shutdown()
        self.store.close()

    def __enter__(self) -> LabService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
