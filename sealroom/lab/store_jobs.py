"""Job and attempt state changes, as SQL on a connection inside one ``BEGIN IMMEDIATE``
transaction of :class:`~sealroom.lab.store.LabStore` (the scheduler composes them, so a
dispatch, a commit or a cancel with its cascade is one atomic step).
"""

from __future__ import annotations

import json
from sqlite3 import Connection
from typing import Any

from sealroom.lab import dag
from sealroom.lab.attempts import AttemptOutcome
from sealroom.lab.store_records import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    AttemptRecord,
    JobRecord,
    attempt_from_row,
    job_from_row,
)

MAX_ERROR = 2000


def one_line(text: str) -> str:
    """Reasons and errors are shown in tables and CLI lines: first line, bounded."""
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:MAX_ERROR]


def next_job_number(conn: Connection) -> int:
    (latest,) = conn.execute("SELECT COALESCE(MAX(n), 0) FROM jobs").fetchone()
    return int(latest) + 1


def insert_job(conn: Connection, number: int, fields: dict[str, Any], now: float) -> str:
    """Insert job ``job-<number>`` as ``waiting``; :func:`settle` decides what it becomes."""
    job_id = f"job-{number}"
    conn.execute(
        "INSERT INTO jobs (n, id, experiment, entry_point, entry_point_version, parameters, "
        "queue, depends_on, allow_failure, timeout_s, max_retries, status, reason, created_at, "
        "attempts, rerun_of, description, seed) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', '', ?, 0, ?, ?, ?)",
        (
            number,
            job_id,
            fields["experiment"],
            fields["entry_point"],
            fields["entry_point_version"],
            json.dumps(fields["parameters"], sort_keys=True),
            fields["queue"],
            json.dumps(list(fields["depends_on"])),
            int(fields["allow_failure"]),
            fields["timeout_s"],
            fields["max_retries"],
            now,
            fields.get("rerun_of"),
            fields["description"],
            fields["seed"],
        ),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO edges VALUES (?, ?)",
        [(job_id, dep) for dep in fields["depends_on"]],
    )
    conn.execute("INSERT OR IGNORE INTO queues VALUES (?, '', ?)", (fields["queue"], now))
    return job_id


def get_job(conn: Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
    return job_from_row(row) if row else None


def jobs_with_status(conn: Connection, status: str) -> list[JobRecord]:
    rows = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ? ORDER BY n",  # noqa: S608
        (status,),
    ).fetchall()
    return [job_from_row(row) for row in rows]


def get_attempt(conn: Connection, job_id: str, number: int) -> AttemptRecord | None:
    row = conn.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ? AND number = ?",  # noqa: S608
        (job_id, number),
    ).fetchone()
    return attempt_from_row(row) if row else None


def running_attempts(conn: Connection) -> list[AttemptRecord]:
    rows = conn.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE status = 'running' ORDER BY job_id, number"  # noqa: S608
    ).fetchall()
    return [attempt_from_row(row) for row in rows]


def end_job(conn: Connection, job_id: str, status: str, reason: str, now: float) -> None:
    conn.execute(
        "UPDATE jobs SET status = ?, reason = ?, ended_at = ? WHERE id = ?",
        (status, one_line(reason), now, job_id),
    )


def requeue(conn: Connection, job_id: str, reason: str, now: float) -> None:
    conn.execute(
        "UPDATE jobs SET status = 'queued', reason = ?, queued_at = ? WHERE id = ?",
        (one_line(reason), now, job_id),
    )


def set_reason(conn: Connection, job_id: str, reason: str) -> None:
    conn.execute("UPDATE jobs SET reason = ? WHERE id = ?", (one_line(reason), job_id))


def start_attempt(conn: Connection, job: JobRecord, now: float) -> int:
    """A new attempt ``running`` and its job ``running``; returns the attempt number."""
    number = job.attempts + 1
    conn.execute(
        "INSERT INTO attempts (job_id, number, status, worker, started_at) "
        "VALUES (?, ?, 'running', '', ?)",
        (job.id, number, now),
    )
    conn.execute(
        "UPDATE jobs SET status = 'running', reason = '', attempts = ?, "
        "started_at = COALESCE(started_at, ?) WHERE id = ?",
        (number, now, job.id),
    )
    return number


def end_attempt(
    conn: Connection,
    job_id: str,
    number: int,
    status: str,
    now: float,
    error: str | None = None,
    worker: str | None = None,
) -> bool:
    """Close a running attempt; False when it was no longer running (already ended)."""
    updated = conn.execute(
        "UPDATE attempts SET status = ?, ended_at = ?, error = ?, worker = COALESCE(?, worker) "
        "WHERE job_id = ? AND number = ? AND status = 'running'",
        (status, now, one_line(error) if error else error, worker, job_id, number),
    ).rowcount
    return bool(updated)


def record_outputs(conn: Connection, outcome: AttemptOutcome) -> None:
    """The metrics and resolved parameters an attempt reported, whatever its status."""
    conn.executemany(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
        [
            (outcome.job_id, outcome.attempt, m.name, int(m.step), float(m.value))
            for m in outcome.metrics
        ],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO params VALUES (?, ?, ?, ?)",
        [(outcome.job_id, outcome.attempt, k, str(v)) for k, v in outcome.params.items()],
    )


def dependency_statuses(conn: Connection, job_id: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT e.dependency, j.status FROM edges e JOIN jobs j ON j.id = e.dependency "
        "WHERE e.job_id = ?",
        (job_id,),
    ).fetchall()
    return {dep: status for dep, status in rows}


def settle(conn: Connection, now: float) -> list[tuple[str, str]]:
    """Apply the dependency rule to waiting jobs until nothing changes (cancels cascade).

    Returns ``(job id, new status)`` for each job it moved.
    """
    moved: list[tuple[str, str]] = []
    changed = True
    while changed:
        changed = False
        for job_id, allow_failure in conn.execute(
            "SELECT id, allow_failure FROM jobs WHERE status = 'waiting' ORDER BY n"
        ).fetchall():
            verdict = dag.settle(bool(allow_failure), dependency_statuses(conn, job_id))
            if verdict.action == "cancel":
                end_job(conn, job_id, "cancelled", verdict.cause, now)
                moved.append((job_id, "cancelled"))
                changed = True
            elif verdict.action == "ready":
                requeue(conn, job_id, "", now)
                moved.append((job_id, "queued"))
    return moved
