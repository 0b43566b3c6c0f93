"""The lab's database: the source of truth for experiments, entry points, queues, workers,
jobs, attempts and what they produced, across restarts of the server.

One :class:`~sealroom.sqlite_store.SqliteStore` (WAL, ``BEGIN IMMEDIATE`` writes, numbered
migrations). Job state changes are made by the scheduler through :mod:`sealroom.lab.store_jobs`
inside :meth:`LabStore.transaction`; this class holds the catalogue and the reads.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from sqlite3 import Connection

from sealroom.errors import LabError
from sealroom.lab.engine import WorkerInfo
from sealroom.lab.paths import LabPaths
from sealroom.lab.spec import NAME_PATTERN, EntryPoint, parse_entry_point
from sealroom.lab.store_records import (
    ARTIFACT_COLUMNS,
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    MIGRATIONS,
    ArtifactRecord,
    AttemptRecord,
    EntryPointRecord,
    ExperimentRecord,
    JobRecord,
    MetricRecord,
    ModelRecord,
    QueueRecord,
    WorkerRecord,
    artifact_from_row,
    attempt_from_row,
    job_from_row,
)
from sealroom.lab.submit import entry_point_row
from sealroom.sqlite_store import SqliteStore

EntryPointCheck = Callable[[EntryPoint, str], None]
MAX_DESCRIPTION = 1000
MAX_LOG_BYTES = 4 * 1024 * 1024


def _runner_check(ep: EntryPoint, where: str) -> None:
    # Imported here: the runner imports the tasks (torch and friends), which the store's
    # readers (CLI listings, the API) should not pay for.
    from sealroom.lab.runner import check_entry_point

    check_entry_point(ep, where=where)


def _name(kind: str, name: str) -> str:
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise LabError(f"{kind} name {name!r}: use lowercase letters, digits, '-' and '_'")
    return name


def _description(kind: str, text: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise LabError(f"{kind} description: longer than {MAX_DESCRIPTION} characters")
    return text


class LabStore:
    """Rows in, records out. ``check`` validates entry points against the registered tasks
    (default: :func:`sealroom.lab.runner.check_entry_point`). ``readonly`` opens an existing
    database without writing to it (the dashboard's reads: no migration, no new file)."""

    def __init__(
        self, paths: LabPaths, check: EntryPointCheck | None = None, readonly: bool = False
    ) -> None:
        self.paths = paths
        self._check = check or _runner_check
        self._db = SqliteStore(
            paths.db, MIGRATIONS, LabError, "lab database", private=not readonly, readonly=readonly
        )

    @classmethod
    def open(cls, paths: LabPaths, check: EntryPointCheck | None = None) -> LabStore:
        return cls(paths.create(), check)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[Connection]:
        with self._db.transaction(mode) as conn:
            yield conn

    # -- experiments --------------------------------------------------------------------
    def create_experiment(self, name: str, description: str = "") -> ExperimentRecord:
        """Create an experiment; creating one that exists returns it unchanged."""
        _name("experiment", name)
        _description("experiment", description)
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO experiments VALUES (?, ?, ?)",
                (name, description, time.time()),
            )
        return self.get_experiment(name)

    def list_experiments(self) -> list[ExperimentRecord]:
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT * FROM experiments ORDER BY name").fetchall()
        return [ExperimentRecord(*row) for row in rows]

    def get_experiment(self, name: str) -> ExperimentRecord:
        with self.transaction("DEFERRED") as conn:
            row = conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise LabError(f"unknown experiment {name!r} (create it first)")
        return ExperimentRecord(*row)

    # -- entry points -------------------------------------------------------------------
    def add_entry_point(self, text: str, where: str = "entry point") -> EntryPointRecord:
        """Store a version: the same text again is the same version, new text is the next."""
        ep = parse_entry_point(text, where)
        self._check(ep, where)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM entry_points WHERE name = ? AND digest = ? "
                "ORDER BY version DESC LIMIT 1",
                (ep.name, digest),
            ).fetchone()
            if row is None:
                (latest,) = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM entry_points WHERE name = ?",
                    (ep.name,),
                ).fetchone()
                row = (ep.name, latest + 1, digest, text, time.time())
                conn.execute("INSERT INTO entry_points VALUES (?, ?, ?, ?, ?)", row)
        return EntryPointRecord(*row)

    def get_entry_point(self, name: str, version: int | None = None) -> EntryPointRecord:
        with self.transaction("DEFERRED") as conn:
            row = entry_point_row(conn, name, version)
        if row is None:
            which = f" version {version}" if version is not None else ""
            raise LabError(f"unknown entry point {name!r}{which} (add it first)")
        return EntryPointRecord(*row)

    def list_entry_points(self) -> list[EntryPointRecord]:
        """Every version of every entry point, by name then version."""
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT * FROM entry_points ORDER BY name, version").fetchall()
        return [EntryPointRecord(*row) for row in rows]

    # -- queues and workers -------------------------------------------------------------
    def add_queue(self, name: str, description: str = "") -> QueueRecord:
        _name("queue", name)
        _description("queue", description)
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO queues VALUES (?, ?, ?)", (name, description, time.time())
            )
        return self.get_queue(name)

    def list_queues(self) -> list[QueueRecord]:
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT * FROM queues ORDER BY name").fetchall()
        return [QueueRecord(*row) for row in rows]

    def get_queue(self, name: str) -> QueueRecord:
        with self.transaction("DEFERRED") as conn:
            row = conn.execute("SELECT * FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise LabError(f"unknown queue {name!r}")
        return QueueRecord(*row)

    def record_workers(self, workers: list[WorkerInfo], now: float) -> None:
        """Heartbeat: the workers seen now are alive; every other known worker is not."""
        with self.transaction() as conn:
            conn.execute("UPDATE workers SET alive = 0")
            for w in workers:
                conn.execute(
                    "INSERT INTO workers VALUES (?, ?, ?, ?, ?) ON CONFLICT(worker_id) DO UPDATE "
                    "SET queues = excluded.queues, address = excluded.address, "
                    "alive = excluded.alive, last_heartbeat = excluded.last_heartbeat",
                    (w.worker_id, json.dumps(sorted(w.queues)), w.address, int(w.alive), now),
                )

    def list_workers(self) -> list[WorkerRecord]:
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute("SELECT * FROM workers ORDER BY worker_id").fetchall()
        return [WorkerRecord(r[0], tuple(json.loads(r[1])), r[2], bool(r[3]), r[4]) for r in rows]

    # -- jobs and attempts --------------------------------------------------------------
    def get_job(self, job_id: str) -> JobRecord:
        with self.transaction("DEFERRED") as conn:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
        if row is None:
            raise LabError(f"unknown job {job_id!r}")
        return job_from_row(row)

    def list_jobs(
        self, experiment: str | None = None, status: str | None = None
    ) -> list[JobRecord]:
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE (? IS NULL OR experiment = ?) "  # noqa: S608
                "AND (? IS NULL OR status = ?) ORDER BY n",
                (experiment, experiment, status, status),
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def attempts(self, job_id: str) -> list[AttemptRecord]:
        self.get_job(job_id)
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ? ORDER BY number",  # noqa: S608
                (job_id,),
            ).fetchall()
        return [attempt_from_row(row) for row in rows]

    def artifacts(self, job_id: str) -> list[ArtifactRecord]:
        """The artifacts of the job's succeeded attempt (none before it succeeds)."""
        self.get_job(job_id)
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE job_id = ? AND attempt = "  # noqa: S608
                "(SELECT number FROM attempts WHERE job_id = ? AND status = 'succeeded') "
                "ORDER BY name",
                (job_id, job_id),
            ).fetchall()
        return [artifact_from_row(row) for row in rows]

    def metrics(
        self, job_ids: list[str], names: list[str] | None = None, attempt: int | None = None
    ) -> list[MetricRecord]:
        """Metrics of each job's latest attempt (or of ``attempt``), to compare jobs."""
        out: list[MetricRecord] = []
        for job_id in job_ids:
            job = self.get_job(job_id)
            number = attempt if attempt is not None else job.attempts
            with self.transaction("DEFERRED") as conn:
                rows = conn.execute(
                    "SELECT job_id, attempt, name, step, value FROM metrics "
                    "WHERE job_id = ? AND attempt = ? ORDER BY name, step",
                    (job_id, number),
                ).fetchall()
            out.extend(MetricRecord(*row) for row in rows if names is None or row[2] in names)
        return out

    def params(self, job_id: str, attempt: int | None = None) -> dict[str, str]:
        """Resolved parameters an attempt logged (default: the latest attempt)."""
        number = attempt if attempt is not None else self.get_job(job_id).attempts
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                "SELECT name, value FROM params WHERE job_id = ? AND attempt = ? ORDER BY name",
                (job_id, number),
            ).fetchall()
        return {name: value for name, value in rows}

    def log_path(self, job_id: str, attempt: int) -> str:
        return str(self.paths.logs / job_id / f"{attempt}.log")

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        """An attempt's log (default: the latest); empty while it runs."""
        job = self.get_job(job_id)
        number = attempt if attempt is not None else job.attempts
        if attempt is None and number == 0:
            return ""  # not started yet
        if number < 1 or number > job.attempts:
            raise LabError(f"job {job_id} has no attempt {number}")
        path = self.paths.logs / job_id / f"{number}.log"
        if not path.is_file():
            return ""
        with path.open("rb") as handle:
            return handle.read(MAX_LOG_BYTES).decode("utf-8", errors="replace")

    # -- models and tracking ------------------------------------------------------------
    def record_model(
        self, name: str, job_id: str, artifact: str, mlflow_version: str | None = None
    ) -> ModelRecord:
        """Register an artifact of a succeeded job as the next version of model ``name``."""
        _name("model", name)
        if artifact not in {a.name for a in self.artifacts(job_id)}:
            raise LabError(f"job {job_id} has no committed artifact {artifact!r}")
        with self.transaction() as conn:
            existing = conn.execute(
                "SELECT version FROM models WHERE name = ? AND job_id = ? AND artifact = ?",
                (name, job_id, artifact),
            ).fetchone()
            if existing is not None:
                version = existing[0]
                if mlflow_version is not None:
                    conn.execute(
                        "UPDATE models SET mlflow_version = ? WHERE name = ? AND version = ?",
                        (mlflow_version, name, version),
                    )
            else:
                (latest,) = conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM models WHERE name = ?", (name,)
                ).fetchone()
                version = latest + 1
                conn.execute(
                    "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)",
                    (name, version, job_id, artifact, mlflow_version, time.time()),
                )
            row = conn.execute(
                "SELECT name, version, job_id, artifact, mlflow_version FROM models "
                "WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
        return ModelRecord(*row)

    def list_models(self, name: str | None = None) -> list[ModelRecord]:
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                "SELECT name, version, job_id, artifact, mlflow_version FROM models "
                "WHERE ? IS NULL OR name = ? ORDER BY name, version",
                (name, name),
            ).fetchall()
        return [ModelRecord(*row) for row in rows]

    def untracked_attempts(self) -> list[AttemptRecord]:
        """Ended attempts not yet recorded in MLflow (the tracker drains these)."""
        with self.transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tracked = 0 AND "  # noqa: S608
                "status != 'running' ORDER BY started_at, job_id, number"
            ).fetchall()
        return [attempt_from_row(row) for row in rows]

    def mark_tracked(self, job_id: str, attempt: int, run_id: str) -> None:
        with self.transaction() as conn:
            updated = conn.execute(
                "UPDATE attempts SET tracked = 1, mlflow_run_id = ? "
                "WHERE job_id = ? AND number = ?",
                (run_id, job_id, attempt),
            ).rowcount
        if updated != 1:
            raise LabError(f"job {job_id} has no attempt {attempt}")
