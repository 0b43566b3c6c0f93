"""The inference room's HTTP face: FastAPI behind :mod:`sealroom.httpguard`.

Routes: ``GET /v1/attestation?nonce=<hex>``, ``POST /v1/infer`` (sealed body in, sealed
body out), ``GET /v1/commitments/{root}``, ``GET /v1/health`` — public (clients
authenticate inside the sealed request) — and ``GET /v1/stats``, behind the operator's
bearer token. Errors are JSON ``{"error": one line}``; the guard refuses an oversized body
(413) before it is read, and rate-limits per address (429 with ``Retry-After``).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sealroom.errors import SealroomError
from sealroom.httpguard import GuardSettings, RateLimit, hardened_app
from sealroom.serve.attestation import parse_nonce_hex
from sealroom.serve.service import InferenceService, ServeRefusal

PUBLIC_PATHS = ("/v1/attestation", "/v1/infer", "/v1/health")
PUBLIC_PREFIXES = ("/v1/commitments/",)
SEALED_TYPE = "application/octet-stream"
_ROOT = re.compile(r"^[0-9a-f]{64}$")


def guard_settings(
    service: InferenceService,
    port: int,
    token: str,
    extra_public: Iterable[str] = (),
) -> GuardSettings:
    """Loopback guard settings from the contract's limits: body size and request rates."""
    limits = service.terms.limits
    per_client = RateLimit(limits.requests_per_second, limits.burst)
    return GuardSettings.for_loopback(
        port,
        token,
        public_paths=(*PUBLIC_PATHS, *extra_public),
        public_prefixes=PUBLIC_PREFIXES,
        max_body_bytes=limits.max_body_bytes,
        per_client=per_client,
        overall=RateLimit(limits.requests_per_second * 4, limits.burst * 4),
    )


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(service: InferenceService, settings: GuardSettings) -> FastAPI:
    """The inference app; its lifespan starts and stops ``service``.

    ``settings.max_body_bytes`` should be the contract's ``limits.max_body_bytes``
    (:func:`guard_settings` builds such settings); a larger one is refused here.
    """
    if settings.max_body_bytes > service.terms.limits.max_body_bytes:
        raise SealroomError(
            f"guard body limit {settings.max_body_bytes} exceeds the contract's "
            f"{service.terms.limits.max_body_bytes} bytes"
        )
    missing = [p for p in PUBLIC_PATHS if not settings.is_public(p)]
    if missing:
        raise SealroomError(f"guard settings must make {missing[0]} public (clients have no token)")
    app = hardened_app("sealroom inference", settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app.router.lifespan_context = lifespan
    app.state.service = service

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/attestation", response_model=None)
    async def attestation(nonce: str = "") -> Response:
        try:
            raw = parse_nonce_hex(nonce)
        except SealroomError as exc:
            return _error(400, str(exc))
        try:
            att = await service.attestation(raw)
        except ServeRefusal as refusal:
            return _error(refusal.status, str(refusal), refusal.retry_after)
        return Response(att.model_dump_json(), media_type="application/json")

    @app.post("/v1/infer", response_model=None)
    async def infer(request: Request) -> Response:
        started = time.perf_counter()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != SEALED_TYPE:
            service.stats.request_done(415, 0.0)
            return _error(415, f"send the sealed request as {SEALED_TYPE}")
        body = await request.body()
        serving = time.perf_counter()
        try:
            sealed = await service.infer(body)
        except ServeRefusal as refusal:
            return _error(refusal.status, str(refusal), refusal.retry_after)
        except Exception:  # never a traceback with request state in the server log
            return _error(500, "internal error while serving the request")
        finally:
            # "http": the handler's own time (content type, body read), before the service
            service.stats.stage("http", serving - started)
        return Response(sealed, media_type=SEALED_TYPE, headers={"cache-control": "no-store"})

    @app.get("/v1/commitments/{root}", response_model=None)
    async def commitment(root: str) -> Response:
        if not _ROOT.match(root):
            return _error(400, "a batch root is 64 lowercase hex characters")
        found = service.commitment(root)
        if found is None:
            return _error(404, "no committed batch with this root here (not yet, or not kept)")
        receipt, payload = found
        # the two ReceiptProof fields a client fills in: ledger and ledger_payload
        return JSONResponse({"ledger": receipt.model_dump(mode="json"), "ledger_payload": payload})

    @app.get("/v1/stats")
    async def stats() -> dict[str, Any]:
        snapshot = service.stats.snapshot()
        snapshot["queue_depth_examples"] = service.batcher.queued_examples
        snapshot["pending_commitments"] = service.committer.pending
        snapshot["refusals"] = app.state.refusals.snapshot()
        return snapshot

    return app
