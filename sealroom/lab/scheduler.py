"""The scheduler: the only writer of job state. It validates submissions, dispatches
ready jobs to the engine, records how attempts ended, and applies the dependency rule.

:meth:`Scheduler.tick` is one step of the loop (the service calls it forever):

1. poll the engine; each outcome of the job's current, running attempt is recorded
   (success commits artifacts atomically; failure fails the job; a lost worker retries
   while ``max_retries`` allows); outcomes of attempts that already ended are ignored;
2. an attempt the engine no longer knows (not running, never reported) is lost;
3. attempts past their job's ``timeout_s`` are stopped: attempt ``timed_out``, job failed;
4. workers the engine sees are recorded (heartbeat);
5. waiting jobs are settled (:func:`sealroom.lab.dag.settle`, cancels cascade);
6. queued jobs are dispatched, oldest first, while their queue has a free slot on a live
   worker; a queue no live worker serves shows ``no worker for queue Q`` once its jobs
   waited ``no_worker_after_s``.

Submissions, cancels and reruns may come from other threads (the API) while the loop
ticks: every state change re-checks the state it acts on inside one ``BEGIN IMMEDIATE``
transaction, and dispatch and cancel share a lock so a cancelled attempt is never submitted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from sqlite3 import Connection

from sealroom.errors import LabError
from sealroom.lab import store_jobs as sj
from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.attempt_io import build_payload, write_log
from sealroom.lab.attempts import AttemptOutcome
from sealroom.lab.engine import Engine, WorkerInfo
from sealroom.lab.spec import TERMINAL, JobRequest, Plan
from sealroom.lab.store import LabStore
from sealroom.lab.store_records import ArtifactRecord, AttemptRecord, JobRecord
from sealroom.lab.submit import insert_requests, pinned_entry_point, plan_items

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 1.0
Listener = Callable[[JobRecord, AttemptRecord], None]


class Scheduler:
    def __init__(
        self,
        store: LabStore,
        engine: Engine,
        artifacts: ArtifactStore,
        clock: Callable[[], float] = time.time,
        no_worker_after_s: float = 5.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.artifacts = artifacts
        self.clock = clock
        self.no_worker_after_s = no_worker_after_s
        self.on_attempt_ended: list[Listener] = []
        self._lock = threading.RLock()  # dispatch vs cancel: never submit what was cancelled
        self._workers_seen: list[tuple[str, tuple[str, ...], str, bool]] | None = None
        self._heartbeat_at = float("-inf")
        # Set by a submission: an idle tick stops waiting and dispatches it at once.
        self._wake = threading.Event()

    # -- submissions ----------------------------------------------------------------------
    def submit(self, request: JobRequest) -> JobRecord:
        with self.store.transaction() as conn:
            (job_id,) = insert_requests(conn, [(None, request)], self.clock())
            sj.settle(conn, self.clock())
        self._wake.set()
        return self.store.get_job(job_id)

    def submit_plan(self, plan: Plan) -> list[JobRecord]:
        """All jobs of the plan or none; keys in ``depends_on`` and references become ids."""
        with self.store.transaction() as conn:
            ids = insert_requests(conn, plan_items(plan.jobs), self.clock())
            sj.settle(conn, self.clock())
        self._wake.set()
        return [self.store.get_job(job_id) for job_id in ids]

    def rerun(self, job_id: str) -> JobRecord:
        """A new job with the old one's pinned entry point version, parameters, dependencies,
        queue and seed; ``rerun_of`` names the old job."""
        old = self.store.get_job(job_id)
        if old.status not in TERMINAL:
            raise LabError(f"job {job_id} is {old.status}; rerun it once it has ended")
        request = JobRequest(
            experiment=old.experiment,
            entry_point=old.entry_point,
            parameters=old.parameters,
            queue=old.queue,
            depends_on=list(old.depends_on),
            allow_failure=old.allow_failure,
            timeout_s=old.timeout_s,
            max_retries=old.max_retries,
            description=old.description,
        )
        with self.store.transaction() as conn:
            (new_id,) = insert_requests(
                conn,
                [(None, request)],
                self.clock(),
                rerun_of=old.id,
                pinned_version=old.entry_point_version,
                seed=old.seed,
            )
            sj.settle(conn, self.clock())
        self._wake.set()
        return self.store.get_job(new_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job that has not ended (a running attempt is stopped) and, transitively,
        its dependants that do not allow failure. An ended job is returned unchanged."""
        stop: tuple[str, int] | None = None
        with self._lock:
            with self.store.transaction() as conn:
                job = sj.get_job(conn, job_id)
                if job is None:
                    raise LabError(f"unknown job {job_id!r}")
                if job.status in TERMINAL:
                    return job
                now = self.clock()
                if job.status == "running" and sj.end_attempt(
                    conn, job.id, job.attempts, "cancelled", now, "cancelled by request"
                ):
                    stop = (job.id, job.attempts)
                sj.end_job(conn, job.id, "cancelled", "cancelled by request", now)
                sj.settle(conn, now)
            if stop is not None:
                self.engine.cancel(*stop)
        if stop is not None:
            self._notify([stop])
        return self.store.get_job(job_id)

    # -- restart --------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """At start: attempts a crash left ``running`` become ``interrupted`` and their jobs
        are queued for a new attempt. Returns the requeued job ids."""
        ended: list[tuple[str, int]] = []
        requeued: list[str] = []
        with self.store.transaction() as conn:
            now = self.clock()
            for attempt in sj.running_attempts(conn):
                sj.end_attempt(
                    conn,
                    attempt.job_id,
                    attempt.number,
                    "interrupted",
                    now,
                    "the lab stopped while this attempt ran",
                )
                ended.append((attempt.job_id, attempt.number))
            for job in sj.jobs_with_status(conn, "running"):
                sj.requeue(conn, job.id, f"attempt {job.attempts} interrupted; queued again", now)
                requeued.append(job.id)
            sj.settle(conn, now)
        self.artifacts.sweep()
        self._notify(ended)
        return requeued

    # -- the loop step --------------------------------------------------------------------
    def tick(self, poll_timeout_s: float = 0.2) -> None:
        known = self.engine.running()
        if known:
            outcomes = self.engine.poll(poll_timeout_s)  # returns as soon as one ends
        else:  # idle: wait for a submission rather than sleeping out the interval
            self._wake.wait(poll_timeout_s)
            outcomes = self.engine.poll(0.0)
        self._wake.clear()
        for outcome in outcomes:
            try:
                self._record(outcome)
            except Exception:  # the others still count; this attempt is found lost next tick
                log.exception("recording %s attempt %s failed", outcome.job_id, outcome.attempt)
        self._find_lost(known)
        self._timeouts()
        workers = self.engine.workers()
        self._heartbeat(workers)
        with self.store.transaction() as conn:
            sj.settle(conn, self.clock())
        self._dispatch(workers)

    def _heartbeat(self, workers: list[WorkerInfo]) -> None:
        """Record workers when they change, else at most once a second (each write syncs)."""
        now = self.clock()
        seen = sorted((w.worker_id, w.queues, w.address, w.alive) for w in workers)
        if seen != self._workers_seen or now - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            self.store.record_workers(workers, now)
            self._workers_seen, self._heartbeat_at = seen, now

    def _record(self, outcome: AttemptOutcome) -> None:
        key = (outcome.job_id, outcome.attempt)
        with self.store.transaction("DEFERRED") as conn:
            attempt = sj.get_attempt(conn, *key)
            job = sj.get_job(conn, outcome.job_id)
        if attempt is None or job is None:
            log.warning("engine reported unknown attempt %s/%s", *key)
            return
        write_log(self.store.paths, outcome)
        current = (
            attempt.status == "running"
            and job.status == "running"
            and job.attempts == outcome.attempt
        )
        if not current:
            return  # cancelled, timed out or superseded: nothing of it is kept
        now = self.clock()
        if outcome.status == "succeeded":
            self._commit(job, outcome, now)
        else:
            with self.store.transaction() as conn:
                if sj.end_attempt(
                    conn, *key, _attempt_status(outcome), now, outcome.error, outcome.worker
                ):
                    sj.record_outputs(conn, outcome)
                    self._end_unsuccessful(conn, job, outcome, now)
                    sj.settle(conn, now)
        self._notify([key])

    def _commit(self, job: JobRecord, outcome: AttemptOutcome, now: float) -> None:
        missing = self._missing_artifacts(job, outcome)
        error = f"step outputs: declared artifact {missing!r} was not produced" if missing else None

        def finish(conn: Connection, _records: list[ArtifactRecord]) -> bool:
            if not sj.end_attempt(
                conn, job.id, outcome.attempt, "succeeded", now, None, outcome.worker
            ):
                return False
            current = sj.get_job(conn, job.id)
            if (
                current is None
                or current.status != "running"
                or current.attempts != outcome.attempt
            ):
                raise _Superseded
            sj.record_outputs(conn, outcome)
            sj.end_job(conn, job.id, "succeeded", "", now)
            sj.settle(conn, now)
            return True

        if error is None:
            try:
                self.artifacts.commit(
                    job.id, outcome.attempt, outcome.artifacts, store=self.store, finish=finish
                )
                return
            except _Superseded:
                return
            except LabError as exc:
                error = str(exc)
        with self.store.transaction() as conn:
            if sj.end_attempt(conn, job.id, outcome.attempt, "failed", now, error, outcome.worker):
                sj.record_outputs(conn, outcome)
                sj.end_job(conn, job.id, "failed", f"attempt {outcome.attempt}: {error}", now)
                sj.settle(conn, now)

    def _missing_artifacts(self, job: JobRecord, outcome: AttemptOutcome) -> str | None:
        with self.store.transaction("DEFERRED") as conn:
            ep, _ = pinned_entry_point(conn, job.entry_point, job.entry_point_version, job.id)
        return next((name for name in sorted(ep.artifacts) if name not in outcome.artifacts), None)

    def _end_unsuccessful(
        self, conn: Connection, job: JobRecord, outcome: AttemptOutcome, now: float
    ) -> None:
        n = outcome.attempt
        if outcome.status == "failed":
            sj.end_job(
                conn, job.id, "failed", f"attempt {n} failed: {outcome.error or 'no reason'}", now
            )
        elif outcome.status == "lost":
            (lost,) = conn.execute(
                "SELECT COUNT(*) FROM attempts WHERE job_id = ? AND status = 'lost'", (job.id,)
            ).fetchone()
            if lost <= job.max_retries:
                sj.requeue(conn, job.id, f"attempt {n} lost its worker; retrying", now)
            else:
                sj.end_job(conn, job.id, "failed", f"attempt {n} lost its worker", now)
        else:
            sj.end_job(conn, job.id, "cancelled", f"attempt {n} was stopped by the engine", now)

    def _find_lost(self, known: set[tuple[str, int]]) -> None:
        with self.store.transaction("DEFERRED") as conn:
            running = sj.running_attempts(conn)
        for attempt in running:
            if (attempt.job_id, attempt.number) not in known:
                self._record(
                    AttemptOutcome(
                        attempt.job_id,
                        attempt.number,
                        "lost",
                        error="the engine no longer knows this attempt",
                    )
                )

    def _timeouts(self) -> None:
        now = self.clock()
        stopped: list[tuple[str, int]] = []
        with self._lock, self.store.transaction() as conn:
            for job in sj.jobs_with_status(conn, "running"):
                attempt = sj.get_attempt(conn, job.id, job.attempts)
                if job.timeout_s is None or attempt is None:
                    continue
                if now - attempt.started_at <= job.timeout_s:
                    continue
                message = f"timed out after {job.timeout_s:g}s"
                if sj.end_attempt(conn, job.id, attempt.number, "timed_out", now, message):
                    sj.end_job(conn, job.id, "failed", f"attempt {attempt.number} {message}", now)
                    stopped.append((job.id, attempt.number))
            sj.settle(conn, now)
        for key in stopped:
            self.engine.cancel(*key)
        self._notify(stopped)

    def _dispatch(self, workers: list[WorkerInfo]) -> None:
        """Start queued jobs, oldest first, while their queue has a free slot on a live
        worker: a job shows ``running`` only when it can run, so its timeout is fair."""
        capacity: dict[str, float] = {}
        for w in workers:
            if w.alive:
                for q in w.queues:
                    capacity[q] = capacity.get(q, 0.0) + w.slots.get(q, 1.0)
        with self.store.transaction("DEFERRED") as conn:
            queued = conn.execute(
                "SELECT id, queue, queued_at, reason FROM jobs WHERE status = 'queued' ORDER BY n"
            ).fetchall()
            busy = dict(
                conn.execute(
                    "SELECT queue, COUNT(*) FROM jobs WHERE status = 'running' GROUP BY queue"
                ).fetchall()
            )
        for job_id, queue, queued_at, reason in queued:
            now = self.clock()
            if queue not in capacity:
                waited = now - (queued_at if queued_at is not None else now)
                message = f"no worker for queue {queue}"
                if waited >= self.no_worker_after_s and reason != message:
                    with self.store.transaction() as conn:
                        sj.set_reason(conn, job_id, message)
                continue
            if busy.get(queue, 0) >= capacity[queue]:
                continue
            if self._start(job_id, now):
                busy[queue] = busy.get(queue, 0) + 1

    def _start(self, job_id: str, now: float) -> bool:
        """Number a new attempt and hand it to the engine; True when it was started."""
        refused: tuple[str, int] | None = None
        with self._lock:
            job = self.store.get_job(job_id)
            if job.status != "queued":
                return False
            try:
                payload = build_payload(self.store, self.artifacts, job)
            except LabError as exc:
                with self.store.transaction() as conn:
                    sj.end_job(conn, job.id, "failed", str(exc), now)
                    sj.settle(conn, now)
                return False
            with self.store.transaction() as conn:
                current = sj.get_job(conn, job_id)
                if current is None or current.status != "queued":
                    return False
                number = sj.start_attempt(conn, current, now)
            try:
                self.engine.submit(dataclasses.replace(payload, attempt=number), job.queue)
            except Exception as exc:  # the engine refused: the job fails, the loop goes on
                error = f"the engine refused attempt {number}: {exc}"
                with self.store.transaction() as conn:
                    sj.end_attempt(conn, job.id, number, "failed", now, error)
                    sj.end_job(conn, job.id, "failed", error, now)
                    sj.settle(conn, now)
                refused = (job.id, number)
        if refused is not None:
            self._notify([refused])
            return False
        return True

    # -- side effects ---------------------------------------------------------------------
    def _notify(self, ended: list[tuple[str, int]]) -> None:
        if not self.on_attempt_ended or not ended:
            return
        for job_id, number in ended:
            job = self.store.get_job(job_id)
            attempt = next(a for a in self.store.attempts(job_id) if a.number == number)
            for listener in self.on_attempt_ended:
                try:
                    listener(job, attempt)
                except Exception:  # a listener (the tracker) must not stop the loop
                    log.exception("listener failed on %s attempt %s", job_id, number)


class _Superseded(Exception):
    """The job moved on (another attempt) between the outcome and the commit."""


def _attempt_status(outcome: AttemptOutcome) -> str:
    return {"failed": "failed", "lost": "lost", "cancelled": "cancelled"}[outcome.status]
