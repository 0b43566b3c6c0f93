"""The testbed as the dashboard shows it: experiments, entry points, queues, workers and
jobs, read from ``<workspace>/lab/lab.db`` opened read-only (one job's page:
:mod:`sealroom.ui.views.testbed_job`).

Nothing here writes to the lab (actions live in :mod:`sealroom.ui.views.testbed_actions`).
The lab's token is never read here; the server is only named by its URL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from sealroom.errors import LabError
from sealroom.lab.paths import LabPaths
from sealroom.lab.spec import NAME_PATTERN, TERMINAL, is_job_id
from sealroom.lab.store import LabStore
from sealroom.lab.store_records import JobRecord
from sealroom.ui.errors import NotFound
from sealroom.ui.views.testbed_robustness import RobustnessView, robustness

STATUSES = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = frozenset({"waiting", "queued", "running"})


class ServerState(BaseModel):
    """Whether ``sealroom lab start`` runs for this workspace, and where (never its token)."""

    running: bool
    url: str | None = None


class JobRow(BaseModel):
    id: str
    experiment: str
    entry_point: str
    entry_point_version: int
    description: str
    status: str
    reason: str
    queue: str
    attempts: int
    depends_on: list[str]
    created_at: float
    started_at: float | None
    ended_at: float | None
    rerun_of: str | None
    can_cancel: bool
    can_rerun: bool


class ExperimentSummary(BaseModel):
    name: str
    description: str
    created_at: float
    jobs: int
    by_status: dict[str, int]


class EntryPointRow(BaseModel):
    name: str
    version: int
    digest: str
    created_at: float


class QueueRow(BaseModel):
    name: str
    description: str
    jobs_queued: int


class WorkerRow(BaseModel):
    worker_id: str
    queues: list[str]
    address: str
    alive: bool
    last_heartbeat: float


class TestbedOverview(BaseModel):
    present: bool  # False: this workspace has no lab database yet
    server: ServerState
    experiments: list[ExperimentSummary]
    entry_points: list[EntryPointRow]
    queues: list[QueueRow]
    workers: list[WorkerRow]


class ExperimentView(BaseModel):
    name: str
    description: str
    created_at: float
    by_status: dict[str, int]
    active: bool  # some job is waiting, queued or running: the page polls
    jobs: list[JobRow]
    robustness: RobustnessView | None
    server: ServerState


def lab_paths(home: Path) -> LabPaths:
    return LabPaths.of_workspace(home)


def server_state(paths: LabPaths) -> ServerState:
    from sealroom.lab.client import read_server_file

    try:
        url, _ = read_server_file(paths)
    except LabError:
        return ServerState(running=False)
    return ServerState(running=True, url=url)


@contextmanager
def open_store(paths: LabPaths) -> Iterator[LabStore | None]:
    """The lab's store, read-only; None when the workspace has no lab yet."""
    if not paths.db.is_file():
        yield None
        return
    store = LabStore(paths, check=_no_check, readonly=True)
    try:
        yield store
    finally:
        store.close()


def _no_check(ep: object, where: str) -> None:
    """The dashboard never adds entry points; the runner's check is never needed."""


def job_row(job: JobRecord) -> JobRow:
    return JobRow(
        id=job.id,
        experiment=job.experiment,
        entry_point=job.entry_point,
        entry_point_version=job.entry_point_version,
        description=job.description,
        status=job.status,
        reason=job.reason,
        queue=job.queue,
        attempts=job.attempts,
        depends_on=list(job.depends_on),
        created_at=job.created_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        rerun_of=job.rerun_of,
        can_cancel=job.status not in TERMINAL,
        can_rerun=job.status in TERMINAL,
    )


def _counts(statuses: list[str]) -> dict[str, int]:
    found = Counter(statuses)
    ordered = {s: found.pop(s) for s in STATUSES if s in found}
    return {**ordered, **dict(sorted(found.items()))}


def overview(home: Path) -> TestbedOverview:
    paths = lab_paths(home)
    server = server_state(paths)
    with open_store(paths) as store:
        if store is None:
            return TestbedOverview(
                present=False, server=server, experiments=[], entry_points=[], queues=[], workers=[]
            )
        jobs = store.list_jobs()
        per_experiment: dict[str, list[str]] = {}
        queued: Counter[str] = Counter()
        for job in jobs:
            per_experiment.setdefault(job.experiment, []).append(job.status)
            if job.status == "queued":
                queued[job.queue] += 1
        experiments = [
            ExperimentSummary(
                name=e.name,
                description=e.description,
                created_at=e.created_at,
                jobs=len(per_experiment.get(e.name, [])),
                by_status=_counts(per_experiment.get(e.name, [])),
            )
            for e in store.list_experiments()
        ]
        entry_points = [
            EntryPointRow(name=e.name, version=e.version, digest=e.digest, created_at=e.created_at)
            for e in store.list_entry_points()
        ]
        queues = [
            QueueRow(name=q.name, description=q.description, jobs_queued=queued[q.name])
            for q in store.list_queues()
        ]
        workers = [
            WorkerRow(
                worker_id=w.worker_id,
                queues=list(w.queues),
                address=w.address,
                alive=w.alive,
                last_heartbeat=w.last_heartbeat,
            )
            for w in store.list_workers()
        ]
    return TestbedOverview(
        present=True,
        server=server,
        experiments=experiments,
        entry_points=entry_points,
        queues=queues,
        workers=workers,
    )


def experiment(home: Path, name: str, with_robustness: bool = True) -> ExperimentView:
    """One experiment and its jobs; ``with_robustness`` reads the evaluation artifacts
    (the live fragment, refreshed every 2 s, does not)."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise NotFound(f"no experiment {name[:80]!r}")
    paths = lab_paths(home)
    with open_store(paths) as store:
        if store is None:
            raise NotFound("this workspace has no testbed (sealroom lab start creates it)")
        try:
            record = store.get_experiment(name)
        except LabError:
            raise NotFound(f"no experiment {name!r}") from None
        jobs = store.list_jobs(experiment=name)
        found = robustness(store, jobs) if with_robustness else None
    rows = [job_row(j) for j in jobs]
    return ExperimentView(
        name=record.name,
        description=record.description,
        created_at=record.created_at,
        by_status=_counts([j.status for j in jobs]),
        active=any(j.status in ACTIVE for j in jobs),
        jobs=rows,
        robustness=found,
        server=server_state(paths),
    )


def check_job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise NotFound(f"no job {job_id[:80]!r} (job ids look like job-12)")
    return job_id


def get_job(store: LabStore, job_id: str) -> JobRecord:
    check_job_id(job_id)
    try:
        return store.get_job(job_id)
    except LabError:
        raise NotFound(f"no job {job_id}") from None


def metric_series(
    store: LabStore, job_ids: list[str], attempt: int | None = None
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """job -> metric -> [(step, value)] of each job's latest attempt (or ``attempt``)."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {j: {} for j in job_ids}
    for m in store.metrics(job_ids, attempt=attempt):
        out[m.job_id].setdefault(m.name, []).append((m.step, m.value))
    return out
