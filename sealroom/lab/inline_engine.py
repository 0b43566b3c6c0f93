"""An engine that runs attempts in a thread pool of this process: for tests, property
tests and a laptop without Ray. Same protocol as the Ray engine.

Threads cannot be killed: :meth:`InlineEngine.cancel` reports the attempt ``cancelled`` at
once and the thread's eventual result is dropped. Attempts for a queue this engine does
not serve are held unstarted (and show in :meth:`running`) until cancelled.
"""

from __future__ import annotations

import dataclasses
import queue as queue_mod
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from sealroom.lab.attempts import AttemptOutcome, AttemptPayload
from sealroom.lab.engine import WorkerInfo
from sealroom.lab.runner import one_line

Execute = Callable[[AttemptPayload], AttemptOutcome]


def _default_execute(payload: AttemptPayload) -> AttemptOutcome:
    from sealroom.lab.runner import execute  # torch and the tasks load on first use

    return execute(payload)


class InlineEngine:
    def __init__(
        self,
        execute: Execute | None = None,
        queues: tuple[str, ...] = ("default",),
        slots: int = 2,
        worker_id: str = "inline",
    ) -> None:
        self._execute = execute or _default_execute
        self.queues = tuple(queues)
        self.slots = slots
        self.worker_id = worker_id
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="lab-inline")
        self._done: queue_mod.Queue[AttemptOutcome] = queue_mod.Queue()
        self._lock = threading.Lock()
        self._live: set[tuple[str, int]] = set()  # submitted, not reported
        self._held: dict[tuple[str, int], AttemptPayload] = {}  # queue not served
        self._futures: dict[tuple[str, int], Future[None]] = {}
        self._closed = False

    def submit(self, payload: AttemptPayload, queue: str) -> None:
        key = (payload.job_id, payload.attempt)
        with self._lock:
            if self._closed:
                raise RuntimeError("the inline engine is shut down")
            self._live.add(key)
            if queue not in self.queues:
                self._held[key] = payload
                return
            self._futures[key] = self._pool.submit(self._run, payload)

    def _run(self, payload: AttemptPayload) -> None:
        key = (payload.job_id, payload.attempt)
        started = time.time()
        try:
            outcome = self._execute(payload)
        except Exception as exc:  # an execute that raises is a failed attempt, not a lost one
            outcome = AttemptOutcome(
                payload.job_id,
                payload.attempt,
                "failed",
                error=one_line(exc),
                started_at=started,
                ended_at=time.time(),
            )
        if not outcome.worker:
            outcome = dataclasses.replace(outcome, worker=self.worker_id)
        self._report(key, outcome)

    def _report(self, key: tuple[str, int], outcome: AttemptOutcome) -> None:
        with self._lock:
            self._futures.pop(key, None)
            if key not in self._live:
                return  # cancelled: its result is dropped
            self._live.discard(key)
        self._done.put(outcome)

    def poll(self, timeout_s: float) -> list[AttemptOutcome]:
        out: list[AttemptOutcome] = []
        try:
            out.append(
                self._done.get(timeout=max(timeout_s, 0.0))
                if timeout_s > 0
                else self._done.get_nowait()
            )
        except queue_mod.Empty:
            return out
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue_mod.Empty:
                return out

    def cancel(self, job_id: str, attempt: int) -> None:
        key = (job_id, attempt)
        with self._lock:
            if key not in self._live:
                return
            self._live.discard(key)
            self._held.pop(key, None)
            future = self._futures.pop(key, None)
        if future is not None:
            future.cancel()  # not started yet: it never will be
        now = time.time()
        self._done.put(
            AttemptOutcome(
                job_id,
                attempt,
                "cancelled",
                error="cancelled",
                worker=self.worker_id,
                started_at=now,
                ended_at=now,
            )
        )

    def running(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self._live)

    def workers(self) -> list[WorkerInfo]:
        if self._closed:
            return []
        return [
            WorkerInfo(
                self.worker_id,
                self.queues,
                "in-process",
                True,
                {q: float(self.slots) for q in self.queues},
            )
        ]

    def shutdown(self, wait: bool = False) -> None:
        """Stop: unreported attempts are cancelled; ``wait`` lets started threads finish."""
        with self._lock:
            self._closed = True
            pending = list(self._live)
        for job_id, attempt in pending:
            self.cancel(job_id, attempt)
        self._pool.shutdown(wait=wait, cancel_futures=True)
