"""The lab database's schema (numbered migrations) and the records its rows become.

Records are frozen dataclasses with ``to_json()`` for the API and the CLI's ``--json``;
times are seconds since the epoch (the scheduler's clock), lists and mappings are stored
as JSON text.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from sealroom.lab.spec import JsonValue

TRUST = "outside-room"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the catalogue (experiments, entry point versions, queues, workers), jobs with their
    # dependency edges, attempts and what each attempt produced, registered models.
    (
        """CREATE TABLE experiments (
            name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at REAL NOT NULL)""",
        """CREATE TABLE entry_points (
            name TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
            text TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (name, version))""",
        """CREATE TABLE queues (
            name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at REAL NOT NULL)""",
        """CREATE TABLE workers (
            worker_id TEXT PRIMARY KEY, queues TEXT NOT NULL, address TEXT NOT NULL,
            alive INTEGER NOT NULL, last_heartbeat REAL NOT NULL)""",
        """CREATE TABLE jobs (
            n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, experiment TEXT NOT NULL,
            entry_point TEXT NOT NULL, entry_point_version INTEGER NOT NULL,
            parameters TEXT NOT NULL, queue TEXT NOT NULL, depends_on TEXT NOT NULL,
            allow_failure INTEGER NOT NULL, timeout_s REAL, max_retries INTEGER NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL NOT NULL,
            queued_at REAL, started_at REAL, ended_at REAL, attempts INTEGER NOT NULL,
            rerun_of TEXT, description TEXT NOT NULL, seed INTEGER NOT NULL)""",
        "CREATE INDEX jobs_status ON jobs(status)",
        """CREATE TABLE edges (
            job_id TEXT NOT NULL, dependency TEXT NOT NULL, PRIMARY KEY (job_id, dependency))""",
        "CREATE INDEX edges_dependency ON edges(dependency)",
        """CREATE TABLE attempts (
            job_id TEXT NOT NULL, number INTEGER NOT NULL, status TEXT NOT NULL,
            worker TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, error TEXT,
            mlflow_run_id TEXT, tracked INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, number))""",
        "CREATE INDEX attempts_status ON attempts(status)",
        """CREATE TABLE artifacts (
            job_id TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
            kind TEXT NOT NULL, filename TEXT NOT NULL, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY (job_id, attempt, name))""",
        """CREATE TABLE metrics (
            job_id TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
            step INTEGER NOT NULL, value REAL NOT NULL)""",
        "CREATE INDEX metrics_job ON metrics(job_id, attempt)",
        """CREATE TABLE params (
            job_id TEXT NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
            value TEXT NOT NULL, PRIMARY KEY (job_id, attempt, name))""",
        """CREATE TABLE models (
            name TEXT NOT NULL, version INTEGER NOT NULL, job_id TEXT NOT NULL,
            artifact TEXT NOT NULL, mlflow_version TEXT, created_at REAL NOT NULL,
            PRIMARY KEY (name, version))""",
    ),
)


class _Record:
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


@dataclass(frozen=True)
class ExperimentRecord(_Record):
    name: str
    description: str
    created_at: float


@dataclass(frozen=True)
class EntryPointRecord(_Record):
    name: str
    version: int
    digest: str  # sha256 of the YAML text
    text: str
    created_at: float


@dataclass(frozen=True)
class QueueRecord(_Record):
    name: str
    description: str
    created_at: float


@dataclass(frozen=True)
class WorkerRecord(_Record):
    worker_id: str
    queues: tuple[str, ...]
    address: str
    alive: bool
    last_heartbeat: float


@dataclass(frozen=True)
class JobRecord(_Record):
    id: str
    experiment: str
    entry_point: str
    entry_point_version: int
    parameters: dict[str, JsonValue]
    queue: str
    depends_on: tuple[str, ...]
    allow_failure: bool
    timeout_s: float | None
    max_retries: int
    status: str
    reason: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    attempts: int
    rerun_of: str | None
    description: str
    seed: int
    trust: str = TRUST


@dataclass(frozen=True)
class AttemptRecord(_Record):
    job_id: str
    number: int
    status: str
    worker: str
    started_at: float
    ended_at: float | None
    error: str | None
    mlflow_run_id: str | None
    tracked: bool


@dataclass(frozen=True)
class ArtifactRecord(_Record):
    job_id: str
    attempt: int
    name: str
    kind: str
    filename: str
    sha256: str
    size: int
    path: str  # relative to LabPaths.artifacts: <job>/<attempt>/<filename>


@dataclass(frozen=True)
class MetricRecord(_Record):
    job_id: str
    attempt: int
    name: str
    step: int
    value: float


@dataclass(frozen=True)
class ModelRecord(_Record):
    name: str
    version: int
    job_id: str
    artifact: str
    mlflow_version: str | None


JOB_COLUMNS = (
    "id, experiment, entry_point, entry_point_version, parameters, queue, depends_on, "
    "allow_failure, timeout_s, max_retries, status, reason, created_at, started_at, ended_at, "
    "attempts, rerun_of, description, seed"
)
ATTEMPT_COLUMNS = (
    "job_id, number, status, worker, started_at, ended_at, error, mlflow_run_id, tracked"
)
ARTIFACT_COLUMNS = "job_id, attempt, name, kind, filename, sha256, size, path"


def job_from_row(row: sqlite3.Row | tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[4] = json.loads(values[4])
    values[6] = tuple(json.loads(values[6]))
    values[7] = bool(values[7])
    return JobRecord(*values)


def attempt_from_row(row: sqlite3.Row | tuple[Any, ...]) -> AttemptRecord:
    values = list(row)
    values[8] = bool(values[8])
    return AttemptRecord(*values)


def artifact_from_row(row: sqlite3.Row | tuple[Any, ...]) -> ArtifactRecord:
    return ArtifactRecord(*row)
