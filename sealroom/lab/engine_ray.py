"""The production engine: every attempt is one Ray task on a node that serves its queue.

A queue is a Ray custom resource ``queue:<name>``: the local node advertises the queues it
was started with, a worker joined with ``sealroom lab worker start --queue Q`` advertises
``queue:Q``, and an attempt asks for one unit of its queue, so Ray places it only there.

Ray never retries (``max_retries=0``): the lab decides retries, so every attempt is in its
database. Only plain dicts, strings, numbers and bytes cross to the worker and back (the
``*_wire`` helpers); no sealroom object is rebuilt from what Ray carried.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.engine import WorkerInfo

Execute = Callable[[AttemptPayload], AttemptOutcome]
Wire = dict[str, Any]
QUEUE_PREFIX = "queue:"
# A node that stops answering is declared dead after about 3 s (Ray's default is ~15 s):
# the scheduler shows "no worker for queue X" and the attempt ends "lost" promptly.
HEALTH_CHECK = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


# --------------------------------------------------------------------------- wire format


def _blob_wire(blob: ArtifactBlob) -> Wire:
    return {"name": blob.name, "kind": blob.kind, "filename": blob.filename, "data": blob.data}


def _blob_from(data: Wire) -> ArtifactBlob:
    return ArtifactBlob(
        name=str(data["name"]),
        kind=str(data["kind"]),
        filename=str(data["filename"]),
        data=bytes(data["data"]),
    )


def payload_to_wire(payload: AttemptPayload) -> Wire:
    wire = asdict(payload)
    wire["inputs"] = {ref: _blob_wire(blob) for ref, blob in payload.inputs.items()}
    return wire


def payload_from_wire(wire: Wire) -> AttemptPayload:
    inputs = {str(ref): _blob_from(blob) for ref, blob in wire["inputs"].items()}
    return AttemptPayload(**{**wire, "inputs": inputs})


def outcome_to_wire(outcome: AttemptOutcome) -> Wire:
    wire = asdict(outcome)
    wire["artifacts"] = {name: _blob_wire(b) for name, b in outcome.artifacts.items()}
    wire["metrics"] = [[m.name, m.value, m.step] for m in outcome.metrics]
    return wire


def outcome_from_wire(wire: Wire) -> AttemptOutcome:
    return AttemptOutcome(
        job_id=str(wire["job_id"]),
        attempt=int(wire["attempt"]),
        status=wire["status"],
        error=None if wire["error"] is None else str(wire["error"]),
        artifacts={str(n): _blob_from(b) for n, b in wire["artifacts"].items()},
        metrics=[MetricPoint(str(n), float(v), int(s)) for n, v, s in wire["metrics"]],
        params={str(k): str(v) for k, v in wire["params"].items()},
        logs=str(wire["logs"]),
        worker=str(wire["worker"]),
        started_at=float(wire["started_at"]),
        ended_at=float(wire["ended_at"]),
    )


# --------------------------------------------------------------------------- the task


def run_attempt(execute: Execute | None, wire: Wire) -> Wire:
    """What a Ray worker runs: one attempt through the runner (or ``execute`` in tests).

    The runner never raises; should a test's function raise, the attempt is "failed" with
    one line, as the runner would report it.
    """
    started = time.time()
    payload = payload_from_wire(wire)
    if execute is None:
        from sealroom.lab.runner import execute as run  # imported on the worker

        execute = run
    try:
        outcome = execute(payload)
    except Exception as exc:  # a test's execute; the runner itself never raises
        outcome = AttemptOutcome(
            job_id=payload.job_id,
            attempt=payload.attempt,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
    result = outcome_to_wire(outcome)
    if not result["worker"]:
        result["worker"] = f"{socket.gethostname()}/pid {os.getpid()}"
    if not result["started_at"]:
        result["started_at"] = started
    if not result["ended_at"]:
        result["ended_at"] = time.time()
    return result


def ray_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def keep_ray_token_private() -> None:
    """Ray 2.60 writes its cluster token world-readable (0644), and whoever reads it may run
    tasks, that is code, in the lab's Ray: keep it the owner's alone (0600)."""
    path = ray_token_path()
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o600)


def _token_auth_for_address() -> None:
    """Ray 2.60 turns token authentication on for a cluster it starts (the token in
    ``~/.ray/auth_token``) but, given an explicit address, connects without a token unless
    told. Tell it when a token is at hand, as it does for a cluster it finds itself; an
    operator's ``RAY_AUTH_MODE`` wins."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


@dataclass
class _Pending:
    job_id: str
    attempt: int
    queue: str
    submitted_at: float
    cancelled: bool = False
    stranded: str | None = None  # why it is reported lost without Ray saying so


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LabError("the lab needs Ray: pip install 'sealroom[lab]'") from None
    return ray


class RayEngine:
    """Runs attempts as Ray tasks; see the module docstring.

    ``address=None`` starts a private local Ray whose node serves ``queues`` ({name: slots});
    an address joins a running cluster (its nodes bring their own queues). When Ray is
    already initialised in this process (tests share one), the engine uses it and leaves it
    running at :meth:`shutdown`. ``execute`` replaces the runner (tests).
    """

    def __init__(
        self,
        address: str | None = None,
        queues: dict[str, float] | None = None,
        num_cpus: int | None = None,
        *,
        execute: Execute | None = None,
        task_cpus: float = 1.0,
        stranded_after_s: float = 5.0,
    ) -> None:
        ray = _ray()
        self._ray = ray
        self._execute = execute
        self._task_cpus = task_cpus
        self._lock = threading.Lock()
        self._pending: dict[Any, _Pending] = {}  # ObjectRef -> what it runs
        self._stranded_after_s = stranded_after_s
        self._unserved_since: dict[str, float] = {}
        self._checked_at = 0.0
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if address is None:
                # "local": always a new private Ray, never one a `ray start` on this
                # machine left in /tmp/ray/ray_current_cluster (another lab, another user)
                options["address"] = "local"
                slots = queues if queues is not None else {"default": 2.0}
                # every slot can run at once: an attempt the lab counts as started must not
                # wait in Ray for a CPU while its timeout runs
                wanted = math.ceil(sum(slots.values()) * task_cpus)
                options["num_cpus"] = (
                    num_cpus if num_cpus is not None else max(os.cpu_count() or 2, wanted)
                )
                options["resources"] = {QUEUE_PREFIX + q: float(n) for q, n in slots.items()}
                options["_system_config"] = HEALTH_CHECK
            else:
                options["address"] = address
                _token_auth_for_address()
            keep_ray_token_private()
            try:
                ray.init(**options)
            except Exception as exc:  # Ray raises many kinds; one line out
                where = address or "a local Ray"
                raise LabError(f"cannot start Ray ({where}): {exc}".splitlines()[0]) from None
            keep_ray_token_private()  # Ray may have just written it
        self._remote = ray.remote(max_retries=0, num_cpus=task_cpus)(run_attempt)

    @property
    def address(self) -> str:
        """The cluster's GCS address, for ``sealroom lab worker start --address``."""
        return str(self._ray.get_runtime_context().gcs_address)

    def submit(self, payload: AttemptPayload, queue: str) -> None:
        ref = self._remote.options(resources={QUEUE_PREFIX + queue: 1}).remote(
            self._execute, payload_to_wire(payload)
        )
        with self._lock:
            self._pending[ref] = _Pending(payload.job_id, payload.attempt, queue, time.time())

    def poll(self, timeout_s: float) -> list[AttemptOutcome]:
        with self._lock:
            refs = list(self._pending)
        if not refs:
            time.sleep(max(0.0, timeout_s))  # the caller's loop keeps its pace
            return []
        if time.monotonic() - self._checked_at >= 1.0:
            self._strand_unserved()
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=max(0.0, timeout_s))
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes = []
        for ref in ready:
            with self._lock:
                pending = self._pending.pop(ref, None)
            if pending is not None:
                outcomes.append(self._outcome(ref, pending))
        return outcomes

    def _strand_unserved(self) -> None:
        """An attempt whose queue no live node serves waits in Ray forever (its node died
        before it started, or the lab dispatched just before it did): after
        ``stranded_after_s`` it is stopped and reported lost, so the lab can retry it or
        fail its job. One that was running on the dead node Ray reports itself."""
        now = time.monotonic()
        self._checked_at = now
        served = {q for worker in self.workers() for q in worker.queues}
        with self._lock:
            waiting = [(ref, p) for ref, p in self._pending.items() if not p.stranded]
        for queue in list(self._unserved_since):
            if queue in served:
                del self._unserved_since[queue]
        for ref, pending in waiting:
            if pending.queue in served or pending.cancelled:
                continue
            since = self._unserved_since.setdefault(pending.queue, now)
            if now - since >= self._stranded_after_s:
                pending.stranded = f"worker lost: no live worker serves queue {pending.queue}"
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)

    def _outcome(self, ref: Any, pending: _Pending) -> AttemptOutcome:
        exceptions = self._ray.exceptions
        try:
            wire = self._ray.get(ref, timeout=30)
        except exceptions.TaskCancelledError:
            if pending.stranded and not pending.cancelled:
                return self._ended(pending, "lost", pending.stranded)
            return self._ended(pending, "cancelled", "cancelled")
        except (
            exceptions.WorkerCrashedError,
            exceptions.NodeDiedError,
            exceptions.LocalRayletDiedError,
            exceptions.ObjectLostError,  # OwnerDiedError and friends
            exceptions.OutOfMemoryError,
            exceptions.TaskUnschedulableError,
        ) as exc:
            if pending.cancelled:
                return self._ended(pending, "cancelled", "cancelled")
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return self._ended(pending, "lost", f"worker lost: {type(exc).__name__} {reason}")
        except exceptions.RayError as exc:  # the task wrapper itself failed on the worker
            if pending.cancelled:
                return self._ended(pending, "cancelled", "cancelled")
            line = (str(exc).strip().splitlines() or [""])[-1]
            return self._ended(pending, "failed", f"{type(exc).__name__}: {line}"[:500])
        outcome = outcome_from_wire(wire)
        if pending.cancelled:  # finished as the lab stopped it: the lab's word wins
            return self._ended(pending, "cancelled", "cancelled", outcome.worker)
        return outcome

    @staticmethod
    def _ended(pending: _Pending, status: Any, error: str, worker: str = "") -> AttemptOutcome:
        return AttemptOutcome(
            job_id=pending.job_id,
            attempt=pending.attempt,
            status=status,
            error=error,
            worker=worker,
            started_at=pending.submitted_at,
            ended_at=time.time(),
        )

    def cancel(self, job_id: str, attempt: int) -> None:
        with self._lock:
            found = [
                (ref, p)
                for ref, p in self._pending.items()
                if (p.job_id, p.attempt) == (job_id, attempt)
            ]
            for _, pending in found:
                pending.cancelled = True
        for ref, _ in found:
            # kills the worker process running it; one that already ended: poll reports it
            with contextlib.suppress(Exception):
                self._ray.cancel(ref, force=True)

    def running(self) -> set[tuple[str, int]]:
        with self._lock:
            return {(p.job_id, p.attempt) for p in self._pending.values()}

    def queued_on(self, queue: str) -> int:
        """Attempts submitted to ``queue`` and not yet reported."""
        with self._lock:
            return sum(1 for p in self._pending.values() if p.queue == queue)

    def workers(self) -> list[WorkerInfo]:
        found = []
        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            slots = {
                name[len(QUEUE_PREFIX) :]: float(value)
                for name, value in resources.items()
                if name.startswith(QUEUE_PREFIX)
            }
            if not slots:
                continue
            found.append(
                WorkerInfo(
                    worker_id=str(node["NodeID"]),
                    queues=tuple(sorted(slots)),
                    address=f"{node.get('NodeManagerAddress')}:{node.get('NodeManagerPort')}",
                    alive=True,
                    slots=slots,
                )
            )
        return sorted(found, key=lambda w: w.worker_id)

    def shutdown(self) -> None:
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
        for ref, _ in pending:
            with contextlib.suppress(Exception):  # best effort on the way out
                self._ray.cancel(ref, force=True)
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
