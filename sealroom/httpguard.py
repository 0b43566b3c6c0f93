"""One hardening layer for every loopback HTTP server sealroom starts (key service, later
inference and the web UI): a pure ASGI middleware that refuses a request before the app
sees it, and a FastAPI app with no generated docs.

Checks, in order, each refusal counted by reason (never written to a ledger, so a flood
cannot bury an audit log):

1. ``Host`` is one of the served loopback names with the served port (DNS rebinding: a
   browser tricked into sending a page's requests here still sends the attacker's host
   name) — else 421; no proxy header (``X-Forwarded-For``…: nothing proxies a loopback
   server, and uvicorn would believe it) — else 400; ``Origin``, when sent, is one of the
   served origins — else 403;
2. a token bucket per client address and a global one — else 429 with ``Retry-After``;
3. ``Authorization: Bearer <token>``, compared in constant time, on every path except the
   public ones (a health check; or one segment below a public prefix, such as
   ``/v1/commitments/<root>``) and every request whose method is public (the web UI reads
   with GET, acts with POST) — else 401;
4. the body: a declared ``Content-Length`` above the limit is refused at once, and a
   chunked body is counted as it streams and refused at the limit — 413. At most the limit
   is ever held in memory.

Imports only :mod:`sealroom.errors` and third-party libraries: it sits below every server.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import os
import secrets
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sealroom.errors import SealroomError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_TRACKED_CLIENTS = 4096  # per-client buckets kept; loopback alone has 2**24 addresses
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Nothing sits in front of a loopback server; uvicorn would trust these from 127.0.0.1 and
# rewrite the client address, letting one client pose as many (rate limits, denial caps).
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


class HttpGuardError(SealroomError):
    """A server cannot start with the hardening it needs (address, token file)."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate`` requests a second on average, bursts up to ``burst``."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise HttpGuardError(f"rate limit needs rate > 0 and burst >= 1, got {self}")


@dataclass(frozen=True)
class GuardSettings:
    """What one server accepts. Build it with :meth:`for_loopback` unless testing."""

    token: str
    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    public_paths: frozenset[str] = frozenset()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    per_client: RateLimit = field(default_factory=lambda: RateLimit(20.0, 40))
    overall: RateLimit = field(default_factory=lambda: RateLimit(100.0, 200))
    # "/v1/commitments/": exactly one more path segment below it is public (not "." or "..")
    public_prefixes: frozenset[str] = frozenset()
    # Methods that never need the token (the web UI: every GET reads, every POST acts)
    public_methods: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise HttpGuardError("client token must be at least 16 characters")
        for prefix in self.public_prefixes:
            if not (prefix.startswith("/") and prefix.endswith("/")):
                raise HttpGuardError(f"public prefix {prefix!r} must start and end with '/'")

    def is_public(self, path: str) -> bool:
        """``path`` is public, or one plain segment below a public prefix."""
        if path in self.public_paths:
            return True
        for prefix in self.public_prefixes:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                return bool(rest) and "/" not in rest and rest not in (".", "..")
        return False

    @classmethod
    def for_loopback(
        cls,
        port: int,
        token: str,
        public_paths: Iterable[str] = (),
        public_prefixes: Iterable[str] = (),
        public_methods: Iterable[str] = (),
        **limits: Any,
    ) -> GuardSettings:
        """Accept ``Host: 127.0.0.1|localhost|[::1]:port`` and the same as origins."""
        hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
        if port == 80:  # clients leave the default port out of Host
            hosts.update(LOOPBACK_NAMES)
        origins = {f"http://{name}:{port}" for name in LOOPBACK_NAMES}
        return cls(
            token=token,
            allowed_hosts=frozenset(hosts),
            allowed_origins=frozenset(origins),
            public_paths=frozenset(public_paths),
            public_prefixes=frozenset(public_prefixes),
            public_methods=frozenset(m.upper() for m in public_methods),
            **limits,
        )


# --------------------------------------------------------------------------- counting


class RefusalCounts:
    """Refused requests by reason; shared by the middleware and the server's handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # handlers run in a thread pool
        self._counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._counts[reason]


class TokenBucket:
    """Classic token bucket on the monotonic clock."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._at = clock()

    def take(self) -> float:
        """0.0 when a request may go now, else the seconds until one may."""
        now = self._clock()
        self._tokens = min(self.limit.burst, self._tokens + (now - self._at) * self.limit.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.limit.rate


class RateLimiter:
    """One bucket per client address (least recently seen evicted) and one for all."""

    def __init__(self, per_client: RateLimit, overall: RateLimit) -> None:
        self._per_client = per_client
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()
        self._overall = TokenBucket(overall)

    def take(self, client: str) -> float:
        bucket = self._clients.pop(client, None) or TokenBucket(self._per_client)
        self._clients[client] = bucket
        while len(self._clients) > MAX_TRACKED_CLIENTS:
            self._clients.popitem(last=False)
        wait = bucket.take()
        if wait:
            return wait
        return self._overall.take()


# --------------------------------------------------------------------------- middleware


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers


class HttpGuard:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it must refuse before any buffering)."""

    def __init__(self, app: ASGIApp, settings: GuardSettings, counts: RefusalCounts) -> None:
        self.app = app
        self.settings = settings
        self.counts = counts
        self._limiter = RateLimiter(settings.per_client, settings.overall)
        self._token = settings.token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        headers = _headers(scope)
        try:
            self._check_request(scope, headers)
            if scope["type"] == "http":
                receive = await self._read_body(headers, receive)
        except _Refusal as refusal:
            self.counts.add(refusal.reason)
            await _refuse(scope, send, refusal)
            return
        await self.app(scope, receive, send)

    def _check_request(self, scope: Scope, headers: dict[str, str]) -> None:
        host = headers.get("host")
        if host is None:
            raise _Refusal(400, "host", "request has no Host header")
        if host.lower() not in self.settings.allowed_hosts:
            raise _Refusal(421, "host", f"Host {host[:100]!r} is not served here")
        proxied = [name for name in PROXY_HEADERS if name in headers]
        if proxied:
            raise _Refusal(400, "proxy", f"proxy header {proxied[0]} is not accepted here")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.settings.allowed_origins:
            raise _Refusal(403, "origin", f"Origin {origin[:100]!r} is not allowed")
        client = scope.get("client")
        wait = self._limiter.take(client[0] if client else "?")
        if wait:
            retry = str(max(1, math.ceil(wait)))
            raise _Refusal(429, "rate", "too many requests", **{"retry-after": retry})
        if self.settings.is_public(str(scope.get("path", ""))):
            return
        if scope.get("method", "GET") in self.settings.public_methods:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise _Refusal(401, "auth", "missing bearer token", **{"www-authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            raise _Refusal(401, "auth", "wrong bearer token", **{"www-authenticate": "Bearer"})

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> Receive:
        """Read the whole body, never more than the limit; hand the app a replay of it."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _Refusal(400, "body", f"Content-Length {declared[:40]!r} is not a number")
            if int(declared) > limit:
                raise _Refusal(413, "body_too_large", f"body of {declared} bytes exceeds {limit}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay([], message, receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refusal(413, "body_too_large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return _replay(chunks, None, receive)


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]
    if last is not None:
        pending = [last]

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased (ASGI does that); a repeated header keeps its first value."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


async def _refuse(scope: Scope, send: Send, refusal: _Refusal) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": str(refusal)}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *((k.encode("ascii"), v.encode("ascii")) for k, v in refusal.headers.items()),
    ]
    if refusal.reason == "body_too_large":
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- app, address, token


def hardened_app(title: str, settings: GuardSettings) -> FastAPI:
    """A FastAPI app behind :class:`HttpGuard`, with no /docs, /redoc or /openapi.json.

    Its refusal counts are ``app.state.refusals`` (a :class:`RefusalCounts`).
    """
    app = FastAPI(
        title=title,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    counts = RefusalCounts()
    app.add_middleware(HttpGuard, settings=settings, counts=counts)
    app.state.refusals = counts
    return app


def check_loopback(host: str) -> None:
    """Servers carry no TLS, so they never listen beyond loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise HttpGuardError(f"refusing to serve on {host}: loopback only")


def run_server(app: ASGIApp, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn on a loopback address until interrupted.

    Proxy headers off (the client address is the socket's), no ``Server`` header.
    """
    import uvicorn

    check_loopback(host)
    uvicorn.run(
        app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_token(path: Path, token: str | None = None) -> str:
    """Write ``token`` (a fresh one by default) to ``path``, mode 0600, atomically."""
    token = token or new_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return token


def read_token(path: Path) -> str:
    """The token in ``path``; refused when others can read the file or it is too short."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise HttpGuardError(f"cannot read token file {path}: {exc}") from None
    if mode & 0o077:
        raise HttpGuardError(f"token file {path} is readable by others (chmod 600 it)")
    if len(text) < 16:
        raise HttpGuardError(f"token file {path} holds no token of at least 16 characters")
    return text
