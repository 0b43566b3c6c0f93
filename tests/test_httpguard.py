"""The shared hardening layer on its own: a tiny app behind HttpGuard (TestClient, and the
raw ASGI calls a TestClient cannot make)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from sealroom import httpguard
from sealroom.httpguard import (
    GuardSettings,
    HttpGuard,
    HttpGuardError,
    RateLimit,
    RateLimiter,
    RefusalCounts,
    TokenBucket,
    check_loopback,
    hardened_app,
    read_token,
    write_token,
)

PORT = 8711
TOKEN = "s" * 43
BASE = f"http://127.0.0.1:{PORT}"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _settings(**changes: Any) -> GuardSettings:
    fields: dict[str, Any] = {"public_paths": ["/health"], "max_body_bytes": 1000}
    fields.update(changes)
    return GuardSettings.for_loopback(PORT, TOKEN, **fields)


def _app(settings: GuardSettings | None = None) -> FastAPI:
    app = hardened_app("test", settings or _settings())

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    return app


@pytest.fixture
def app() -> FastAPI:
    return _app()


@pytest.fixture
def http(app: FastAPI) -> TestClient:
    return TestClient(app, base_url=BASE, headers=AUTH)


def test_an_authenticated_request_on_a_served_host_goes_through(
    http: TestClient, app: FastAPI
) -> None:
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}", f"LOCALHOST:{PORT}"):
        response = http.post("/echo", content=b"x" * 1000, headers={"host": host})
        assert response.json() == {"received": 1000}, host
    assert app.state.refusals.snapshot() == {}


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"host": "evil.example"}, 421, "host"),
        ({"host": f"evil.example:{PORT}"}, 421, "host"),
        ({"host": "127.0.0.1"}, 421, "host"),  # port 8711 is served, not 80
        ({"host": f"127.0.0.1:{PORT + 1}"}, 421, "host"),
        ({"origin": "http://evil.example"}, 403, "origin"),
        ({"origin": f"https://127.0.0.1:{PORT}"}, 403, "origin"),
        ({"origin": "null"}, 403, "origin"),
        ({"authorization": ""}, 401, "auth"),
        ({"authorization": f"Bearer {TOKEN}x"}, 401, "auth"),
        ({"authorization": f"Bearer {TOKEN[:-1]}"}, 401, "auth"),
        ({"authorization": f"Token {TOKEN}"}, 401, "auth"),
        ({"authorization": "Bearer"}, 401, "auth"),
        ({"content-length": "12abc"}, 400, "body"),
        ({"x-forwarded-for": "10.0.0.1"}, 400, "proxy"),
        ({"forwarded": "for=10.0.0.1"}, 400, "proxy"),
        ({"x-real-ip": "10.0.0.1"}, 400, "proxy"),
    ],
)
def test_refusals_are_counted_by_reason(
    http: TestClient, app: FastAPI, headers: dict[str, str], status: int, reason: str
) -> None:
    response = http.post("/echo", content=b"{}", headers=headers)
    assert response.status_code == status
    assert TOKEN not in response.text
    assert app.state.refusals.snapshot() == {reason: 1}


def test_allowed_origin_passes(http: TestClient) -> None:
    response = http.post("/echo", content=b"", headers={"origin": f"http://localhost:{PORT}"})
    assert response.status_code == 200


def test_public_paths_need_no_token_but_keep_the_host_check(http: TestClient) -> None:
    assert http.get("/health", headers={"authorization": ""}).status_code == 200
    assert http.get("/health", headers={"host": "evil.example"}).status_code == 421
    assert http.get("/nowhere", headers={"authorization": ""}).status_code == 401


def test_a_body_over_the_limit_is_refused(http: TestClient, app: FastAPI) -> None:
    response = http.post("/echo", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert app.state.refusals.snapshot() == {"body_too_large": 1}


def test_no_generated_docs(http: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert http.get(path).status_code == 404


def test_rate_limit_is_429_with_retry_after() -> None:
    app = _app(_settings(per_client=RateLimit(0.5, 3)))
    http = TestClient(app, base_url=BASE, headers=AUTH)
    codes = [http.get("/health").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    response = http.get("/health")
    assert response.headers["retry-after"] == "2"  # one token at 0.5/s, rounded up
    assert app.state.refusals["rate"] == 3


def test_the_overall_bucket_limits_all_clients_together() -> None:
    limiter = RateLimiter(RateLimit(0.001, 5), RateLimit(0.001, 3))
    assert [limiter.take(f"127.0.0.{i}") == 0.0 for i in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_per_client_buckets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpguard, "MAX_TRACKED_CLIENTS", 8)
    limiter = RateLimiter(RateLimit(1.0, 1), RateLimit(1e6, 1_000_000))
    for i in range(100):
        limiter.take(f"127.0.{i}.1")
    assert len(limiter._clients) == 8


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(RateLimit(2.0, 2), clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() == 0.0
    now[0] = 100.0  # refills to the burst, no further
    assert [bucket.take() == 0.0 for _ in range(3)] == [True, True, False]


# --------------------------------------------------------------------------- raw ASGI


class _Stream:
    """An ASGI receive() that hands out ``chunks`` and records how many were taken."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.taken = 0

    async def __call__(self) -> dict[str, Any]:
        chunk = self.chunks[self.taken]
        self.taken += 1
        return {"type": "http.request", "body": chunk, "more_body": self.taken < len(self.chunks)}


def _call(guard: HttpGuard, headers: list[tuple[bytes, bytes]], receive: Any) -> list[Any]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
    }
    asyncio.run(guard(scope, receive, send))
    return sent


def _guard() -> tuple[HttpGuard, list[str]]:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append(message["body"].decode())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return HttpGuard(app, _settings(), RefusalCounts()), reached


SERVED = [
    (b"host", f"127.0.0.1:{PORT}".encode()),
    (b"authorization", AUTH["authorization"].encode()),
]


def test_a_chunked_body_is_counted_and_cut_at_the_limit() -> None:
    guard, reached = _guard()
    stream = _Stream([b"x" * 400] * 1000)  # 400 kB on offer, 1000 bytes allowed
    sent = _call(guard, SERVED, stream)
    assert sent[0]["status"] == 413
    assert stream.taken == 3  # stopped at the first chunk past the limit
    assert reached == []


def test_a_chunked_body_within_the_limit_reaches_the_app_whole() -> None:
    guard, reached = _guard()
    sent = _call(guard, SERVED, _Stream([b"ab", b"cd", b""]))
    assert sent[0]["status"] == 200
    assert reached == ["abcd"]


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    guard, reached = _guard()
    stream = _Stream([b"x"])
    sent = _call(guard, [*SERVED, (b"content-length", b"1001")], stream)
    assert sent[0]["status"] == 413
    assert stream.taken == 0
    assert reached == []


def test_a_request_without_host_is_refused() -> None:
    guard, _ = _guard()
    sent = _call(guard, SERVED[1:], _Stream([b""]))
    assert sent[0]["status"] == 400


def test_a_websocket_without_token_is_closed() -> None:
    guard, reached = _guard()
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": SERVED[:1], "client": ("::1", 1)}
    asyncio.run(guard(scope, _Stream([b""]), send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert reached == []


# --------------------------------------------------------------------------- address, token


def test_only_loopback_addresses_are_served() -> None:
    for host in ("127.0.0.1", "127.3.2.1", "::1", "localhost"):
        check_loopback(host)
    for host in ("0.0.0.0", "::", "192.168.1.4", "example.com", "localhost.example.com"):
        with pytest.raises(HttpGuardError, match="loopback only"):
            check_loopback(host)


def test_a_written_token_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token"
    token = write_token(path)
    assert len(token) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(path) == token
    assert write_token(path) != token  # a fresh one each time


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, TOKEN)
    os.chmod(path, 0o644)
    with pytest.raises(HttpGuardError, match="readable by others"):
        read_token(path)


def test_a_short_or_missing_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HttpGuardError, match="cannot read token file"):
        read_token(tmp_path / "absent")
    write_token(tmp_path / "short", "abc")
    with pytest.raises(HttpGuardError, match="at least 16"):
        read_token(tmp_path / "short")
    with pytest.raises(HttpGuardError, match="at least 16"):
        GuardSettings.for_loopback(PORT, "abc")


def test_one_segment_below_a_public_prefix_needs_no_token() -> None:
    app = _app(_settings(public_prefixes=["/v1/commitments/"]))

    @app.get("/v1/commitments/{root}")
    def commitment(root: str) -> dict[str, str]:
        return {"root": root}

    @app.get("/v1/stats")
    def stats() -> dict[str, int]:
        return {"requests": 0}

    http = TestClient(app, base_url=BASE)
    assert http.get("/v1/commitments/ab12").json() == {"root": "ab12"}
    for path in ("/v1/commitments/", "/v1/commitments/a/b", "/v1/commitments/..", "/v1/stats"):
        assert http.get(path).status_code == 401, path
    assert http.get("/v1/stats", headers=AUTH).status_code == 200
    settings = _settings(public_prefixes=["/v1/commitments/"])
    assert settings.is_public("/v1/commitments/ab12")
    for path in ("/v1/commitments/..", "/v1/commitments/.", "/v1/commitments/a/../../stats"):
        assert not settings.is_public(path), path


def test_a_public_prefix_must_end_with_a_slash() -> None:
    with pytest.raises(HttpGuardError, match="must start and end with '/'"):
        _settings(public_prefixes=["/v1/commitments"])


def test_a_public_method_reads_without_token_but_other_methods_still_need_it() -> None:
    app = _app(_settings(public_methods=["get"]))

    @app.get("/page")
    def page() -> dict[str, str]:
        return {"page": "ok"}

    http = TestClient(app, base_url=BASE)
    assert http.get("/page").json() == {"page": "ok"}
    assert http.post("/echo", content=b"x").status_code == 401
    assert http.post("/echo", content=b"x", headers=AUTH).json() == {"received": 1}
    # the host and origin checks still run before the method is looked at
    assert http.get("/page", headers={"host": "evil.example"}).status_code == 421
    assert http.get("/page", headers={"origin": "http://evil.example"}).status_code == 403
