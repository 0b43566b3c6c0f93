"""Job routes of the lab API: submit (one job or a plan), list, show, cancel, rerun,
attempts, logs, artifacts (listed and downloaded) and the metric comparison across jobs.

An artifact is downloaded by the name its job declared: the name is looked up among the
job's committed artifacts in the database, never joined onto a path from the URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse

from sealroom.lab.api import (
    API_PREFIX,
    ApiRefusal,
    LabServiceLike,
    artifact_file,
    as_json,
    conflict,
    lookup,
)
from sealroom.lab.spec import JobRequest, Plan, is_job_id

MAX_COMPARED_JOBS = 200
MEDIA_TYPES = {
    "onnx": "application/octet-stream",
    "npz": "application/octet-stream",
    "json": "application/json",
    "csv": "text/csv",
    "png": "image/png",
    "text": "text/plain; charset=utf-8",
}
JOB_STATUSES = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")


def _names(text: str | None, what: str, limit: int) -> list[str]:
    found = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(found) > limit:
        raise ApiRefusal(400, f"at most {limit} {what} at once, got {len(found)}")
    return list(dict.fromkeys(found))


def add_job_routes(app: FastAPI, service: LabServiceLike) -> None:
    store, scheduler, paths = service.store, service.scheduler, service.paths

    def job(job_id: str) -> Any:
        if not is_job_id(job_id):
            raise ApiRefusal(404, f"no job {job_id[:80]!r} (job ids look like job-12)")
        return lookup(lambda: store.get_job(job_id), f"no job {job_id}")

    def artifact_json(job_id: str, record: Any) -> dict[str, Any]:
        data = as_json(record)
        data.pop("path", None)  # where the server keeps it is not the client's business
        data["url"] = f"{API_PREFIX}/jobs/{job_id}/artifacts/{record.name}"
        return data

    @app.post(f"{API_PREFIX}/jobs", status_code=201)
    def submit(body: JobRequest) -> dict[str, Any]:
        return as_json(scheduler.submit(body))

    @app.post(f"{API_PREFIX}/plans", status_code=201)
    def submit_plan(body: Plan) -> list[dict[str, Any]]:
        return [as_json(r) for r in scheduler.submit_plan(body)]

    @app.get(f"{API_PREFIX}/jobs")
    def jobs(experiment: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        if status is not None and status not in JOB_STATUSES:
            raise ApiRefusal(400, f"status {status[:40]!r} is not one of {', '.join(JOB_STATUSES)}")
        return [as_json(r) for r in store.list_jobs(experiment=experiment, status=status)]

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}")
    def show(job_id: str) -> dict[str, Any]:
        return as_json(job(job_id))

    @app.post(f"{API_PREFIX}/jobs/{{job_id}}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        job(job_id)
        return as_json(conflict(lambda: scheduler.cancel(job_id)))

    @app.post(f"{API_PREFIX}/jobs/{{job_id}}/rerun", status_code=201)
    def rerun(job_id: str) -> dict[str, Any]:
        job(job_id)
        return as_json(conflict(lambda: scheduler.rerun(job_id)))

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/attempts")
    def attempts(job_id: str) -> list[dict[str, Any]]:
        job(job_id)
        return [as_json(r) for r in store.attempts(job_id)]

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/logs")
    def logs(job_id: str, attempt: int | None = Query(default=None, ge=1)) -> dict[str, Any]:
        record = job(job_id)
        if attempt is not None and attempt > record.attempts:
            raise ApiRefusal(404, f"job {job_id} has {record.attempts} attempt(s), not {attempt}")
        return {"job": job_id, "attempt": attempt, "text": store.logs(job_id, attempt)}

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/artifacts")
    def artifacts(job_id: str) -> list[dict[str, Any]]:
        job(job_id)
        return [artifact_json(job_id, r) for r in store.artifacts(job_id)]

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/artifacts/{{name}}", response_model=None)
    def download(job_id: str, name: str) -> FileResponse:
        job(job_id)
        found = [r for r in store.artifacts(job_id) if r.name == name]
        if not found:
            raise ApiRefusal(404, f"job {job_id} has no artifact {name[:80]!r}")
        record = found[0]
        path = artifact_file(paths, str(record.path))
        if path is None:
            raise ApiRefusal(404, f"artifact {record.name} of job {job_id} is missing on disk")
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(record.kind, "application/octet-stream"),
            filename=record.filename,
            headers={"x-sealroom-sha256": record.sha256, "x-sealroom-kind": record.kind},
        )

    @app.get(f"{API_PREFIX}/metrics")
    def metrics(jobs: str = Query(...), names: str | None = None) -> list[dict[str, Any]]:
        """One table across jobs (rows job, entry point, parameters, metric, step, value)."""
        job_ids = _names(jobs, "jobs", MAX_COMPARED_JOBS)
        if not job_ids:
            raise ApiRefusal(400, "name at least one job: ?jobs=job-1,job-2")
        wanted = _names(names, "metric names", 100) or None
        records = {job_id: job(job_id) for job_id in job_ids}
        order = {job_id: i for i, job_id in enumerate(job_ids)}
        points = sorted(
            store.metrics(job_ids, wanted),
            key=lambda m: (order.get(m.job_id, 0), m.name, m.step, m.attempt),
        )
        return [
            {
                "job": m.job_id,
                "entry_point": records[m.job_id].entry_point,
                "parameters": records[m.job_id].parameters,
                "metric": m.name,
                "step": m.step,
                "value": m.value,
                "attempt": m.attempt,
            }
            for m in points
            if m.job_id in records
        ]
