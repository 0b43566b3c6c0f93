"""The key service over HTTP (FastAPI), for a provider running its own service apart from
the operator. Same protocol as the embedded KeyService; bound to loopback only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from sealroom.crypto.signing import b64
from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.kms.models import ReleaseRequest
from sealroom.kms.service import KeyService
from sealroom.workspace import Workspace

API_PREFIX = "/v1"
MAX_BODY_BYTES = 1 << 20  # a request is evidence + a pipeline document: kilobytes


class NonceResponse(BaseModel):
    nonce: str  # base64


class ReleaseResponse(BaseModel):
    sealed_key: str  # base64 HPKE blob


def create_app(ws: Workspace) -> FastAPI:
    """An app whose handlers all share one KeyService on ``ws``."""
    service = KeyService(ws)
    app = FastAPI(title="sealroom key service", version="1")

    @app.get(f"{API_PREFIX}/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"{API_PREFIX}/nonce")
    def nonce() -> NonceResponse:
        return NonceResponse(nonce=b64(service.request_nonce()))

    @app.post(f"{API_PREFIX}/release", response_model=None)
    async def release(http_request: Request) -> Any:
        body = await http_request.body()
        if len(body) > MAX_BODY_BYTES:
            reason = f"release request of {len(body)} bytes exceeds {MAX_BODY_BYTES}"
            denied = await run_in_threadpool(service.deny, reason, {})
            return JSONResponse({"denied": str(denied)}, status_code=403)
        try:
            request = ReleaseRequest.model_validate_json(body)
        except ValidationError as exc:
            # Malformed requests are denials too: recorded, and never a key.
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            reason = f"malformed release request: {where}: {first['msg']}"
            denied = await run_in_threadpool(service.deny, reason, {})
            return JSONResponse({"denied": str(denied)}, status_code=403)
        try:
            sealed = await run_in_threadpool(service.release, request)
        except KeyReleaseDenied as exc:
            return JSONResponse({"denied": str(exc)}, status_code=403)
        except SealroomError as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)
        return ReleaseResponse(sealed_key=b64(sealed))

    app.state.key_service = service
    return app


def check_loopback(host: str) -> None:
    """The HTTP service carries no TLS or client auth, so it never listens beyond loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SealroomError(f"refusing to serve the key service on {host}: loopback only")


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 8700) -> None:
    import uvicorn

    check_loopback(host)
    uvicorn.run(create_app(ws), host=host, port=port, log_level="warning")
