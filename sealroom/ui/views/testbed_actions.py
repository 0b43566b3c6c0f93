"""Cancel and rerun a testbed job from the dashboard.

When ``sealroom lab start`` runs for the workspace, the action goes through its API with
the lab's token file (the same call as ``sealroom lab job cancel|rerun``): the server's
scheduler stops a running attempt itself. Without a server nothing runs, so the action is
made on the store by the same :class:`~sealroom.lab.scheduler.Scheduler` methods the
service calls, while holding the lock a lab server takes for its life (so no server starts
in between); a job rerun that way is queued until a server starts.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from sealroom.errors import LabError
from sealroom.lab.attempts import AttemptOutcome, AttemptPayload
from sealroom.lab.engine import WorkerInfo
from sealroom.lab.paths import LabPaths
from sealroom.ui.errors import NotFound
from sealroom.ui.views.testbed import check_job_id, get_job, lab_paths, open_store

Action = Literal["cancel", "rerun"]
SERVER_LOCK = "server.lock"  # the file sealroom.lab.server holds while a server lives


class ActionResult(BaseModel):
    action: str
    job: str  # the job acted on
    status: str  # its status after a cancel, the new job's after a rerun
    new_job: str | None = None  # the job a rerun created
    via: Literal["lab server", "lab store"]


class NoEngine:
    """The engine of a lab no server runs: nothing runs, so there is nothing to stop."""

    def submit(self, payload: AttemptPayload, queue: str) -> None:
        raise LabError("no lab server runs to start a job (sealroom lab start)")

    def poll(self, timeout_s: float) -> list[AttemptOutcome]:
        return []

    def cancel(self, job_id: str, attempt: int) -> None:
        return None

    def running(self) -> set[tuple[str, int]]:
        return set()

    def workers(self) -> list[WorkerInfo]:
        return []

    def shutdown(self) -> None:
        return None


@contextlib.contextmanager
def _no_server_starts(paths: LabPaths) -> Iterator[None]:
    handle = open(paths.root / SERVER_LOCK, "a+", encoding="utf-8")  # noqa: SIM115
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError("the lab server is starting; try again in a moment") from None
        yield
    finally:
        handle.close()


def _through_server(paths: LabPaths, job_id: str, action: Action) -> ActionResult:
    from sealroom.lab.client import LabClient

    with LabClient.from_workspace(paths, timeout=10.0) as lab:
        if action == "cancel":
            record = lab.cancel_job(job_id)
            return ActionResult(
                action=action, job=job_id, status=record["status"], via="lab server"
            )
        record = lab.rerun_job(job_id)
    return ActionResult(
        action=action, job=job_id, status=record["status"], new_job=record["id"], via="lab server"
    )


def _through_store(paths: LabPaths, job_id: str, action: Action) -> ActionResult:
    from sealroom.lab.artifacts import ArtifactStore
    from sealroom.lab.scheduler import Scheduler
    from sealroom.lab.store import LabStore

    with _no_server_starts(paths):
        store = LabStore(paths, check=lambda ep, where: None)
        try:
            scheduler = Scheduler(store, NoEngine(), ArtifactStore(paths))
            if action == "cancel":
                record = scheduler.cancel(job_id)
                return ActionResult(
                    action=action, job=job_id, status=record.status, via="lab store"
                )
            new = scheduler.rerun(job_id)
        finally:
            store.close()
    return ActionResult(
        action=action, job=job_id, status=new.status, new_job=new.id, via="lab store"
    )


def act(home: Path, job_id: str, action: Action) -> ActionResult:
    """Cancel or rerun ``job_id``; NotFound for an unknown job, LabError (400) for a refusal."""
    from sealroom.lab.client import read_server_file

    check_job_id(job_id)
    paths = lab_paths(home)
    with open_store(paths) as store:
        if store is None:
            raise NotFound(f"no job {job_id}: this workspace has no testbed")
        get_job(store, job_id)
    try:
        read_server_file(paths)
    except LabError:
        return _through_store(paths, job_id, action)
    return _through_server(paths, job_id, action)
