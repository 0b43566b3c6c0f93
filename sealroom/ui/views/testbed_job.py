"""One testbed job as its page shows it: parameters, attempts, the tail of a log (terminal
escapes removed), metrics, and its artifacts, downloaded only by a name its record holds
and from a file that resolves under the lab's artifacts folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sealroom.lab.paths import LabPaths
from sealroom.ui.errors import NotFound
from sealroom.ui.views.testbed import (
    JobRow,
    ServerState,
    check_job_id,
    get_job,
    job_row,
    lab_paths,
    metric_series,
    open_store,
    server_state,
)

LOG_TAIL_BYTES = 64 * 1024
MAX_METRIC_CHARTS = 12
# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and the other C0/C1
# controls but tab and newline: a log is shown as text, never as a terminal would.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class AttemptRow(BaseModel):
    number: int
    status: str
    worker: str
    started_at: float
    ended_at: float | None
    error: str | None


class ArtifactRow(BaseModel):
    name: str
    kind: str
    filename: str
    sha256: str
    size: int
    url: str


class MetricSeries(BaseModel):
    name: str
    points: list[tuple[int, float]]

    @property
    def last(self) -> float:
        return self.points[-1][1]


class JobView(BaseModel):
    job: JobRow
    parameters: dict[str, Any]  # as submitted
    resolved: dict[str, str]  # as the shown attempt logged them
    attempts: list[AttemptRow]
    attempt_shown: int  # 0: not started
    log: str
    log_truncated: bool
    metrics: list[MetricSeries]
    artifacts: list[ArtifactRow]
    server: ServerState


def clean_log(text: str) -> str:
    """Terminal escapes and control characters removed (the template escapes markup)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def log_tail(paths: LabPaths, job_id: str, attempt: int) -> tuple[str, bool]:
    """The last :data:`LOG_TAIL_BYTES` of an attempt's log, and whether it was cut."""
    path = paths.logs / check_job_id(job_id) / f"{int(attempt)}.log"
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - LOG_TAIL_BYTES)
            handle.seek(start)
            data = handle.read(LOG_TAIL_BYTES)
    except OSError:
        return "", False
    text = data.decode("utf-8", errors="replace")
    if start:
        text = text.partition("\n")[2]  # drop the partial first line
    return clean_log(text), start > 0


def job(home: Path, job_id: str, attempt: int | None = None) -> JobView:
    paths = lab_paths(home)
    with open_store(paths) as store:
        if store is None:
            raise NotFound(f"no job {job_id[:80]!r}: this workspace has no testbed")
        record = get_job(store, job_id)
        shown = record.attempts if attempt is None else attempt
        if attempt is not None and not 1 <= attempt <= record.attempts:
            raise NotFound(f"job {job_id} has {record.attempts} attempt(s), not {attempt}")
        attempts = [
            AttemptRow(
                number=a.number,
                status=a.status,
                worker=a.worker,
                started_at=a.started_at,
                ended_at=a.ended_at,
                error=a.error,
            )
            for a in store.attempts(job_id)
        ]
        resolved = store.params(job_id, shown) if shown else {}
        series = metric_series(store, [job_id], shown or None)[job_id] if shown else {}
        artifacts = [
            ArtifactRow(
                name=a.name,
                kind=a.kind,
                filename=a.filename,
                sha256=a.sha256,
                size=a.size,
                url=f"/testbed/jobs/{job_id}/artifacts/{a.name}",
            )
            for a in store.artifacts(job_id)
        ]
    log, cut = log_tail(paths, job_id, shown) if shown else ("", False)
    return JobView(
        job=job_row(record),
        parameters=dict(record.parameters),
        resolved=resolved,
        attempts=attempts,
        attempt_shown=shown,
        log=log,
        log_truncated=cut,
        metrics=[MetricSeries(name=k, points=v) for k, v in sorted(series.items())],
        artifacts=artifacts,
        server=server_state(paths),
    )


def artifact_path(home: Path, job_id: str, name: str) -> tuple[Path, str, str]:
    """(file, download name, kind) of a committed artifact, looked up by name among the
    job's records and resolved under the lab's artifacts folder; NotFound otherwise."""
    from sealroom.lab.api import artifact_file

    paths = lab_paths(home)
    with open_store(paths) as store:
        if store is None:
            raise NotFound(f"no job {job_id[:80]!r}: this workspace has no testbed")
        get_job(store, job_id)
        found = [a for a in store.artifacts(job_id) if a.name == name]
    if not found:
        raise NotFound(f"job {job_id} has no artifact {name[:80]!r}")
    record = found[0]
    path = artifact_file(paths, str(record.path))
    if path is None:
        raise NotFound(f"artifact {record.name} of job {job_id} is not in the lab's artifacts")
    filename = Path(record.filename).name or f"{record.name}.bin"
    return path, filename, record.kind
