"""The execution engine the scheduler dispatches to. Production: :class:`RayEngine`
(``sealroom.lab.engine_ray``); tests: in-process engines with the same protocol.

The lab's database stays the source of truth: an engine only runs what it is handed and
reports how each attempt ended. It never decides retries, dependencies or timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sealroom.lab.attempts import AttemptOutcome, AttemptPayload


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker as the engine sees it: for Ray, a node advertising queue resources."""

    worker_id: str
    queues: tuple[str, ...]
    address: str
    alive: bool
    slots: dict[str, float]  # queue -> concurrent jobs it takes


class Engine(Protocol):
    def submit(self, payload: AttemptPayload, queue: str) -> None:
        """Start one attempt on a worker serving ``queue``; returns at once."""

    def poll(self, timeout_s: float) -> list[AttemptOutcome]:
        """Attempts that ended since the last poll (waits up to ``timeout_s`` for one)."""

    def cancel(self, job_id: str, attempt: int) -> None:
        """Stop an attempt (killing its process); a later poll reports it ``cancelled``."""

    def running(self) -> set[tuple[str, int]]:
        """(job id, attempt) pairs submitted and not yet reported by poll."""

    def workers(self) -> list[WorkerInfo]:
        """Workers alive now (the heartbeat source)."""

    def shutdown(self) -> None:
        """Stop every attempt and release the engine."""
