"""Turning job requests and plans into job rows: experiment and pinned entry point looked
up, dependencies resolved (plan keys to ids), parameters bound, cycles refused.

Everything here runs inside the one transaction that inserts the jobs, so a plan is
accepted whole or not at all.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from sqlite3 import Connection
from typing import Any

from sealroom.errors import LabError
from sealroom.lab import dag
from sealroom.lab.params import bind_parameters
from sealroom.lab.spec import EntryPoint, JobRequest, PlanJob, is_job_id, parse_entry_point
from sealroom.lab.store_jobs import get_job, insert_job, next_job_number

_JOB_REF = re.compile(r"\$\{jobs\.([A-Za-z0-9_-]+)\.artifacts\.([a-z][a-z0-9_-]*)\}")


@dataclass
class _Draft:
    key: str | None
    request: JobRequest
    where: str
    job_id: str = ""
    ep: EntryPoint | None = None
    version: int = 0
    depends_on: tuple[str, ...] = ()


def entry_point_row(conn: Connection, name: str, version: int | None) -> Any:
    """The stored row (name, version, digest, text, created_at) of ``version``, or of the
    latest version when it is None; None when there is no such entry point."""
    return conn.execute(
        "SELECT * FROM entry_points WHERE name = ? AND (? IS NULL OR version = ?) "
        "ORDER BY version DESC LIMIT 1",
        (name, version, version),
    ).fetchone()


def pinned_entry_point(
    conn: Connection, name: str, version: int | None, where: str
) -> tuple[EntryPoint, int]:
    row = entry_point_row(conn, name, version)
    if row is None:
        raise LabError(f"{where}: unknown entry point {name!r} (add it first)")
    return _parsed(row[3], f"entry point {name} v{row[1]}"), int(row[1])


@functools.lru_cache(maxsize=256)
def _parsed(text: str, where: str) -> EntryPoint:
    """Stored texts are immutable and parsed on every dispatch and commit: parse once."""
    return parse_entry_point(text, where)


def insert_requests(
    conn: Connection,
    items: list[tuple[str | None, JobRequest]],
    now: float,
    rerun_of: str | None = None,
    pinned_version: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Validate and insert jobs; returns their ids in request order. Raises LabError (one
    line naming the job key or field) before anything is written."""
    first = next_job_number(conn)
    drafts: list[_Draft] = []
    keys: dict[str, str] = {}
    for offset, (key, request) in enumerate(items):
        where = f"plan job {key!r}" if key is not None else "job request"
        draft = _Draft(key, request, where, job_id=f"job-{first + offset}")
        if key is not None:
            if is_job_id(key):
                raise LabError(f"{where}: a key may not look like a job id")
            if key in keys:
                raise LabError(f"{where}: key is used twice in the plan")
            keys[key] = draft.job_id
        drafts.append(draft)
    by_id = {d.job_id: d for d in drafts}
    for draft in drafts:
        _resolve(conn, draft, keys, pinned_version)
    cycle = dag.find_cycle({d.job_id: [x for x in d.depends_on if x in by_id] for d in drafts})
    if cycle is not None:
        names = {d.job_id: d.key or d.job_id for d in drafts}
        raise LabError(f"plan: cycle {dag.describe_cycle([names[i] for i in cycle])}")
    for draft in drafts:
        parameters = _bind(conn, draft, keys, by_id)
        assert draft.ep is not None
        insert_job(
            conn,
            int(draft.job_id.removeprefix("job-")),
            {
                "experiment": draft.request.experiment,
                "entry_point": draft.ep.name,
                "entry_point_version": draft.version,
                "parameters": parameters,
                "queue": draft.request.queue,
                "depends_on": draft.depends_on,
                "allow_failure": draft.request.allow_failure,
                "timeout_s": draft.request.timeout_s,
                "max_retries": draft.request.max_retries,
                "rerun_of": rerun_of,
                "description": draft.request.description,
                "seed": _seed(seed, draft.request.seed),
            },
            now,
        )
    return [d.job_id for d in drafts]


def _resolve(
    conn: Connection, draft: _Draft, keys: dict[str, str], pinned_version: int | None
) -> None:
    request = draft.request
    if (
        conn.execute("SELECT 1 FROM experiments WHERE name = ?", (request.experiment,)).fetchone()
        is None
    ):
        raise LabError(
            f"{draft.where}: unknown experiment {request.experiment!r} (create it first)"
        )
    draft.ep, draft.version = pinned_entry_point(
        conn, request.entry_point, pinned_version, draft.where
    )
    resolved: list[str] = []
    for dep in request.depends_on:
        job_id = keys.get(dep, dep)
        if job_id == draft.job_id:
            raise LabError(f"{draft.where}: cycle {dag.describe_cycle([dep, dep])}")
        if job_id not in keys.values() and (not is_job_id(job_id) or get_job(conn, job_id) is None):
            raise LabError(f"{draft.where}: depends_on: unknown job {dep!r}")
        if job_id not in resolved:
            resolved.append(job_id)
    draft.depends_on = tuple(resolved)


def _bind(
    conn: Connection, draft: _Draft, keys: dict[str, str], by_id: dict[str, _Draft]
) -> dict[str, Any]:
    """Bind with the names the request used (plan keys), so refusals name them; then
    rewrite ``${jobs.KEY.artifacts.NAME}`` to job ids and check NAME is declared."""

    def to_id(match: re.Match[str]) -> str:
        ref = keys.get(match.group(1), match.group(1))
        return "${jobs." + ref + ".artifacts." + match.group(2) + "}"

    assert draft.ep is not None
    bound = bind_parameters(
        draft.ep, draft.request.parameters, list(draft.request.depends_on), draft.where
    )
    for name, spec in draft.ep.parameters.items():
        if spec.type != "artifact":
            continue
        match = _JOB_REF.fullmatch(str(bound[name]))
        assert match is not None  # bind_parameters checked the shape
        shown, artifact = match.groups()
        dep_id = keys.get(shown, shown)
        bound[name] = _JOB_REF.sub(to_id, str(bound[name]))
        dep_ep = by_id[dep_id].ep if dep_id in by_id else _job_entry_point(conn, dep_id)
        assert dep_ep is not None
        if artifact not in dep_ep.artifacts:
            declared = ", ".join(sorted(dep_ep.artifacts)) or "none"
            raise LabError(
                f"{draft.where}: parameter {name!r}: job {shown} (entry point "
                f"{dep_ep.name}) declares no artifact {artifact!r} (it declares: {declared})"
            )
    return bound


def _job_entry_point(conn: Connection, job_id: str) -> EntryPoint:
    job = get_job(conn, job_id)
    assert job is not None
    ep, _ = pinned_entry_point(conn, job.entry_point, job.entry_point_version, f"job {job_id}")
    return ep


def plan_items(jobs: list[PlanJob]) -> list[tuple[str | None, JobRequest]]:
    return [(job.key, job) for job in jobs]


def _seed(rerun_seed: int | None, requested: int | None) -> int:
    """A rerun keeps its job's seed; a request may pin one; otherwise one is drawn."""
    for seed in (rerun_seed, requested):
        if seed is not None:
            return seed
    return secrets.randbelow(2**31)
