"""The testbed's REST API (FastAPI behind :mod:`sealroom.httpguard`): experiments, entry
points, tasks, queues, workers, jobs, artifacts, models and metrics, all under ``/v1``.

No route takes code. Entry points arrive as YAML text, parsed with ``yaml.safe_load`` after
a shape check (no aliases, bounded nesting and size: a YAML bomb never expands), and
validated by the store against the task registry; tasks are a read-only list of names
installed on the server. Every route but ``/v1/health`` needs the bearer token.

Errors are ``{"detail": one line}``: 400 for a refused request, 404 for an unknown name or
id, 409 for a state that forbids the change; never a traceback or a path outside the
workspace. The guard's own refusals (401, 413, 429...) are ``{"error": one line}``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sealroom.errors import LabError
from sealroom.httpguard import GuardSettings, RateLimit, hardened_app
from sealroom.lab.paths import LabPaths
from sealroom.lab.spec import MAX_ENTRY_POINT_BYTES, TERMINAL, Name

API_PREFIX = "/v1"
HEALTH_PATH = f"{API_PREFIX}/health"
MAX_BODY_BYTES = 1 << 20  # a plan of many jobs or an entry point: kilobytes, not megabytes
TRUST = "outside-room"

log = logging.getLogger(__name__)
T = TypeVar("T")


class LabServiceLike(Protocol):
    """What the API needs of :class:`sealroom.lab.service.LabService`."""

    paths: LabPaths
    store: Any  # sealroom.lab.store.LabStore
    scheduler: Any  # sealroom.lab.scheduler.Scheduler


class ApiRefusal(Exception):
    """A refusal with its HTTP status; the message is the one line the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentCreate(_Body):
    name: Name
    description: str = Field(default="", max_length=1000)


class QueueCreate(_Body):
    name: Name
    description: str = Field(default="", max_length=1000)


class EntryPointText(_Body):
    """An entry point is YAML text, never a file name or a module path."""

    text: str = Field(max_length=MAX_ENTRY_POINT_BYTES)


# --------------------------------------------------------------------------- settings, helpers


def guard_settings(port: int, token: str, rate: float = 20.0) -> GuardSettings:
    """The lab server's guard: ``rate`` requests a second per client (bursts of twice that),
    five times that overall, 1 MiB bodies, only the health check public."""
    burst = max(1, int(2 * rate))
    return GuardSettings.for_loopback(
        port,
        token,
        public_paths=(HEALTH_PATH,),
        max_body_bytes=MAX_BODY_BYTES,
        per_client=RateLimit(rate, burst),
        overall=RateLimit(5 * rate, 5 * burst),
    )


_ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:[^\s'\"`:,;()\[\]{}]+)")


def scrub(message: str, paths: LabPaths) -> str:
    """One line, with absolute paths outside the lab folder replaced (they would tell a
    client about the server's file system) and those inside made relative to it."""
    root = str(paths.root.resolve())

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        for base in (root, str(paths.root)):
            if found == base or found.startswith(base + "/"):
                return "lab" + found[len(base) :]
        return "<path>"

    line = " ".join(message.split())
    return _ABSOLUTE.sub(replace, line)[:2000]


def lookup(call: Callable[[], T | None], missing: str) -> T:
    """A store lookup that answers None or raises LabError for an unknown name: 404."""
    try:
        found = call()
    except LabError as exc:
        raise ApiRefusal(404, str(exc)) from None
    if found is None:
        raise ApiRefusal(404, missing)
    return found


def conflict(call: Callable[[], T]) -> T:
    """A change the current state refuses (cancel a finished job, a name taken): 409."""
    try:
        return call()
    except LabError as exc:
        raise ApiRefusal(409, str(exc)) from None


def refuse_existing(get: Callable[[], Any], what: str) -> None:
    """Creating a name that exists is a conflict (the store would return the old record)."""
    try:
        get()
    except LabError:
        return
    raise ApiRefusal(409, f"{what} already exists")


def as_json(record: Any) -> dict[str, Any]:
    data = record.to_json()
    return dict(data) if isinstance(data, dict) else {"value": data}


def _validation_line(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ())]
    where = loc[0] if loc else "request"
    path = ".".join(loc[1:]) or "(top level)"
    return f"request {where}: {path}: {first.get('msg', 'invalid')}"


# --------------------------------------------------------------------------- the app


def create_app(service: LabServiceLike, settings: GuardSettings) -> FastAPI:
    """The lab API over ``service`` (its store and scheduler), behind ``settings``."""
    settings = dataclasses.replace(settings, public_paths=settings.public_paths | {HEALTH_PATH})
    app = hardened_app("sealroom lab", settings)
    app.state.lab = service
    paths = service.paths

    @app.exception_handler(ApiRefusal)
    async def _refused(_: Request, exc: ApiRefusal) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(exc), paths)}, status_code=exc.status)

    @app.exception_handler(LabError)
    async def _lab_error(_: Request, exc: LabError) -> JSONResponse:
        return JSONResponse({"detail": scrub(str(exc), paths)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": scrub(_validation_line(exc), paths)}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("lab API: unexpected error")
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the lab server's log"},
            status_code=500,
        )

    _resource_routes(app, service)
    from sealroom.lab.api_jobs import add_job_routes

    add_job_routes(app, service)
    return app


def _resource_routes(app: FastAPI, service: LabServiceLike) -> None:
    store = service.store

    @app.get(HEALTH_PATH)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{API_PREFIX}/status")
    def status() -> dict[str, Any]:
        counts: dict[str, int] = {}
        for job in store.list_jobs():
            counts[job.status] = counts.get(job.status, 0) + 1
        workers = [w for w in store.list_workers() if w.alive]
        return {
            "jobs": counts,
            "active": sum(n for s, n in counts.items() if s not in TERMINAL),
            "workers": len(workers),
            "queues": [q.name for q in store.list_queues()],
            "trust": TRUST,
        }

    @app.get(f"{API_PREFIX}/experiments")
    def experiments() -> list[dict[str, Any]]:
        return [as_json(r) for r in store.list_experiments()]

    @app.post(f"{API_PREFIX}/experiments", status_code=201)
    def create_experiment(body: ExperimentCreate) -> dict[str, Any]:
        refuse_existing(lambda: store.get_experiment(body.name), f"experiment {body.name!r}")
        return as_json(store.create_experiment(body.name, body.description))

    @app.get(f"{API_PREFIX}/experiments/{{name}}")
    def experiment(name: str) -> dict[str, Any]:
        return as_json(lookup(lambda: store.get_experiment(name), f"no experiment {name!r}"))

    @app.get(f"{API_PREFIX}/entrypoints")
    def entry_points() -> list[dict[str, Any]]:
        return [as_json(r) for r in store.list_entry_points()]

    @app.post(f"{API_PREFIX}/entrypoints", status_code=201)
    def add_entry_point(body: EntryPointText) -> dict[str, Any]:
        return as_json(store.add_entry_point(body.text))

    @app.get(f"{API_PREFIX}/entrypoints/{{name}}")
    def entry_point(name: str, version: int | None = None) -> dict[str, Any]:
        shown = f"{name!r}" + (f" version {version}" if version is not None else "")
        return as_json(
            lookup(lambda: store.get_entry_point(name, version), f"no entry point {shown}")
        )

    @app.get(f"{API_PREFIX}/tasks")
    def tasks() -> list[dict[str, Any]]:
        from sealroom.lab.tasks.registry import registered_tasks

        return [
            {
                "name": spec.name,
                "description": spec.description,
                "outputs": list(spec.outputs),
                "args": dict(spec.args),
                "source": spec.source,
            }
            for spec in sorted(registered_tasks().values(), key=lambda s: s.name)
        ]

    @app.get(f"{API_PREFIX}/queues")
    def queues() -> list[dict[str, Any]]:
        return [as_json(r) for r in store.list_queues()]

    @app.post(f"{API_PREFIX}/queues", status_code=201)
    def add_queue(body: QueueCreate) -> dict[str, Any]:
        refuse_existing(lambda: store.get_queue(body.name), f"queue {body.name!r}")
        return as_json(store.add_queue(body.name, body.description))

    @app.get(f"{API_PREFIX}/workers")
    def workers() -> list[dict[str, Any]]:
        return [as_json(r) for r in store.list_workers()]

    @app.get(f"{API_PREFIX}/models")
    def models() -> list[dict[str, Any]]:
        return [as_json(r) for r in store.list_models()]


def artifact_file(paths: LabPaths, stored: str) -> Path | None:
    """The committed file an artifact record names, if it lies under ``paths.artifacts``."""
    candidate = Path(stored)
    if not candidate.is_absolute():
        candidate = paths.artifacts / candidate
    resolved = candidate.resolve()
    base = paths.artifacts.resolve()
    if not resolved.is_relative_to(base) or not resolved.is_file():
        return None
    return resolved
