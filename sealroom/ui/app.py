"""The dashboard app: FastAPI behind :mod:`sealroom.httpguard`, pages from ``pages/``.

Every GET reads and needs no token; every other method acts and needs ``Authorization:
Bearer <token>`` (the page's script sends it from the ``#token=`` fragment the start-up
URL carries, so the token never reaches a server log or a Referer). Host and Origin are
checked on every request, and every response forbids framing, sniffing and any script
or style not served from here.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealroom.errors import SealroomError
from sealroom.httpguard import (
    ASGIApp,
    GuardSettings,
    Message,
    RateLimit,
    Receive,
    Scope,
    Send,
    hardened_app,
)
from sealroom.ui.errors import NotFound
from sealroom.ui.pages import ROUTERS
from sealroom.ui.render import page
from sealroom.ui.settings import UiSettings

# A page pulls its stylesheet, script and server-sent events: a browser's burst is larger
# than an API client's, but a flood from one address is still cut off.
PER_CLIENT = RateLimit(200.0, 400)
OVERALL = RateLimit(400.0, 800)
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Pure ASGI: adds :data:`SECURITY_HEADERS` to every HTTP response (streams included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def guard_settings(settings: UiSettings) -> GuardSettings:
    return GuardSettings.for_loopback(
        settings.port,
        settings.token,
        public_methods=("GET", "HEAD"),
        max_body_bytes=64 * 1024,
        per_client=PER_CLIENT,
        overall=OVERALL,
    )


def create_app(settings: UiSettings) -> FastAPI:
    """The dashboard for ``settings.ws``; ``app.state.settings`` is what views read."""
    app = hardened_app("sealroom ui", guard_settings(settings))
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    app.state.open_streams = 0  # live event streams now open (pages/runs.py caps them)
    app.mount("/static", StaticFiles(packages=[("sealroom.ui", "static")]), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            what = "endpoint" if request.url.path.startswith("/api/") else "page"
            return _problem(request, 404, f"no {what} {request.url.path}")
        return _problem(request, exc.status_code, str(exc.detail))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _problem(request, 404, str(exc))

    @app.exception_handler(SealroomError)
    async def refused(request: Request, exc: SealroomError) -> Response:
        return _problem(request, 400, str(exc))

    return app


def _problem(request: Request, status: int, message: str) -> Response:
    """One line, as JSON for the API and as a page for a browser."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    response: HTMLResponse = page(request, "problem.html", status_code=status, message=message)
    return response
