"""The key service over HTTP (FastAPI), for a provider running its own service apart from
the operator. Same protocol as the embedded KeyService; loopback only, behind
:mod:`sealroom.httpguard` (client token, Host/Origin, rate and body limits).

What is ledgered and what is only counted: a well-formed, authenticated release request
that is denied is a ``key.denied`` entry (at most ``denials_per_minute`` per client, the
rest refused with 429 and counted); everything refused before that — wrong host, no token,
over a limit, malformed — is counted in memory (``GET /v1/stats``) and never ledgered, so
nobody can bury the audit log.

The key service also keeps the privacy budget of each private dataset whose key it holds
(``/v1/budget/reserve``, ``/v1/budget/settle``, ``GET /v1/budget``; same token): its release
guard checks the run's reservation in its own book, so an operator who edits its own
workspace unlocks nothing. See docs/key-release.md, "Budgets".
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from sealroom.crypto.signing import b64
from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.httpguard import GuardSettings, RateLimit, RefusalCounts, hardened_app, run_server
from sealroom.kms.budget_api import add_budget_routes
from sealroom.kms.models import ReleaseRequest
from sealroom.kms.repository import NonceLimitReached
from sealroom.kms.service import KeyService
from sealroom.privacy.budget_guard import BudgetGate
from sealroom.workspace import Workspace

API_PREFIX = "/v1"
HEALTH_PATH = f"{API_PREFIX}/health"
MAX_BODY_BYTES = 1 << 20  # a request is evidence + a pipeline document: kilobytes
DEFAULT_RATE = 20.0  # requests a second per client; rooms need a handful per run
DENIALS_PER_MINUTE = 30  # ledgered denials per client address per minute
WINDOW_S = 60.0
MAX_TRACKED_CLIENTS = 4096


class NonceResponse(BaseModel):
    nonce: str  # base64


class ReleaseResponse(BaseModel):
    sealed_key: str  # base64 HPKE blob


def guard_settings(port: int, token: str, rate: float = DEFAULT_RATE) -> GuardSettings:
    """The key service's guard: ``rate`` a second per client (bursts of twice that), four
    times that overall, 1 MiB bodies, the health check public."""
    return GuardSettings.for_loopback(
        port,
        token,
        public_paths=(HEALTH_PATH,),
        max_body_bytes=MAX_BODY_BYTES,
        per_client=RateLimit(rate, max(1, math.ceil(2 * rate))),
        overall=RateLimit(4 * rate, max(1, math.ceil(8 * rate))),
    )


class DenialBudget:
    """At most ``per_minute`` ledgered denials per client in any minute.

    A release reserves a slot before it runs (concurrent requests cannot overshoot) and
    gives it back when the key is released: only denials keep their slot.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: dict[str, deque[float]] = {}

    def reserve(self, client: str) -> float:
        """0.0 when reserved, else the seconds until a slot frees."""
        now = self._clock()
        with self._lock:
            slots = self._slots.setdefault(client, deque())
            while slots and slots[0] <= now - WINDOW_S:
                slots.popleft()
            if len(slots) >= self.per_minute:
                return slots[0] + WINDOW_S - now
            slots.append(now)
            if len(self._slots) > MAX_TRACKED_CLIENTS:
                self._forget_idle(now)
            return 0.0

    def give_back(self, client: str) -> None:
        with self._lock:
            slots = self._slots.get(client)
            if slots:
                slots.pop()

    def _forget_idle(self, now: float) -> None:
        for client in [c for c, s in self._slots.items() if not s or s[-1] <= now - WINDOW_S]:
            del self._slots[client]


def _too_many(message: str, wait: float) -> JSONResponse:
    retry = str(max(1, math.ceil(wait)))
    return JSONResponse({"error": message}, status_code=429, headers={"Retry-After": retry})


def create_app(
    ws: Workspace, guard: GuardSettings, denials_per_minute: int = DENIALS_PER_MINUTE
) -> FastAPI:
    """An app whose handlers all share one KeyService on ``ws``, behind ``guard``."""
    guard = dataclasses.replace(guard, public_paths=guard.public_paths | {HEALTH_PATH})
    service = KeyService(ws)
    service.guards.append(BudgetGate(ws, scope=service.private_datasets_held))
    app = hardened_app("sealroom key service", guard)
    refusals: RefusalCounts = app.state.refusals
    budget = DenialBudget(denials_per_minute)

    @app.get(HEALTH_PATH)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(f"{API_PREFIX}/stats")
    def stats() -> dict[str, dict[str, int]]:
        return {"refused": refusals.snapshot()}

    @app.post(f"{API_PREFIX}/nonce", response_model=None)
    def nonce() -> Any:
        try:
            return NonceResponse(nonce=b64(service.request_nonce()))
        except NonceLimitReached as exc:
            refusals.add("nonce_cap")
            return _too_many(str(exc), exc.retry_after)

    @app.post(f"{API_PREFIX}/release", response_model=None)
    async def release(http_request: Request) -> Any:
        body = await http_request.body()  # the guard has refused anything over the limit
        try:
            request = ReleaseRequest.model_validate_json(body)
        except ValidationError as exc:
            # Counted, not ledgered: junk costs the audit log nothing.
            refusals.add("malformed")
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            message = f"malformed release request: {where}: {first['msg']}"
            return JSONResponse({"error": message}, status_code=400)
        client = http_request.client.host if http_request.client else "?"
        wait = budget.reserve(client)
        if wait:
            refusals.add("denial_cap")
            return _too_many(
                f"{budget.per_minute} denied release requests from {client} in the last "
                "minute; wait before asking again",
                wait,
            )
        try:
            sealed = await run_in_threadpool(service.release, request)
        except KeyReleaseDenied as exc:
            return JSONResponse({"denied": str(exc)}, status_code=403)
        except SealroomError as exc:
            budget.give_back(client)
            return JSONResponse({"error": str(exc)}, status_code=500)
        budget.give_back(client)
        return ReleaseResponse(sealed_key=b64(sealed))

    add_budget_routes(app, ws, service)
    app.state.key_service = service
    return app


def serve(ws: Workspace, guard: GuardSettings, host: str = "127.0.0.1", port: int = 8700) -> None:
    run_server(create_app(ws, guard), host, port)
