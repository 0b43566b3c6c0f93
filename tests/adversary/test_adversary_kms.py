"""`kms serve` under load and abuse (issue 12): each attack fails, the audit log stays
readable, memory stays flat, nothing leaks. Loopback only; every flood is bounded."""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from sealroom.attest import SoftwareAttester
from sealroom.kms import KeyService, KmsClient
from sealroom.kms.server import DENIALS_PER_MINUTE
from sealroom.kms.service import MAX_OUTSTANDING_NONCES
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, make_parties, store_contract
from tests.kms.http_server import Served, rss_kib, subprocess_server, threaded_server

FLOOD = 300
BIG_BODY = 200 << 20
RSS_GROWTH_KIB = 8 << 10  # a few MiB of allocator noise; buffering the body would be 200+
BODY_DEADLINE_S = 30.0


@pytest.fixture
def data_key() -> bytes:
    return b"k" * 32


@pytest.fixture
def key_service(workspace: Workspace, data_key: bytes) -> Workspace:
    """A workspace with a registered contract and the dataset key imported."""
    store_contract(workspace, make_parties(workspace))
    with KeyService(workspace) as service:
        service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    return workspace


@pytest.fixture
def served(key_service: Workspace) -> Iterator[Served]:
    with threaded_server(key_service) as server:
        yield server


def _ledger_size(ws: Workspace) -> int:
    with Ledger.open(ws) as ledger:
        return len(ledger.entries())


def _stats(served: Served) -> dict[str, int]:
    with served.client() as http:
        stats: dict[str, int] = http.get("/v1/stats").json()["refused"]
    return stats


def _release_works(served: Served, ws: Workspace, data_key: bytes) -> bool:
    room = Room(ws, SoftwareAttester(ws))
    run_id = f"run-{secrets.token_hex(4)}"  # the dataset is private: the run reserves first
    with KmsClient(served.url, token=served.token) as client:
        client.reserve(run_id, CONTRACT_ID, 2.0, 1e-5)
        return room.open(client.release(room.request(client, run_id=run_id))) == data_key


def test_junk_flood_is_counted_not_ledgered(
    served: Served, key_service: Workspace, data_key: bytes
) -> None:
    before = _ledger_size(key_service)
    junk = [b"", b"{", b'{"nonce": 5}', b"\xff\xfe", b"[]", b'{"evidence": null}']
    with served.client(**{"content-type": "application/json"}) as http:
        codes = Counter(
            http.post("/v1/release", content=junk[i % len(junk)]).status_code for i in range(FLOOD)
        )
    assert codes == {400: FLOOD}
    assert _ledger_size(key_service) == before  # not one entry for junk
    assert _stats(served) == {"malformed": FLOOD}
    assert _release_works(served, key_service, data_key)  # and the service still answers


def test_denied_flood_is_ledgered_only_up_to_the_per_client_cap(
    served: Served, key_service: Workspace
) -> None:
    room = Room(key_service, SoftwareAttester(key_service))
    denied = room.request(None, nonce=b"x" * 32).model_dump_json().encode()  # never issued
    before = _ledger_size(key_service)
    with served.client() as http:
        responses = [
            http.post("/v1/release", content=denied) for _ in range(2 * DENIALS_PER_MINUTE)
        ]
    codes = Counter(r.status_code for r in responses)
    assert codes == {403: DENIALS_PER_MINUTE, 429: DENIALS_PER_MINUTE}
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
    with Ledger.open(key_service) as ledger:
        entries = ledger.entries("key.denied")
    assert len(entries) == DENIALS_PER_MINUTE
    assert _ledger_size(key_service) == before + DENIALS_PER_MINUTE
    assert _stats(served) == {"denial_cap": DENIALS_PER_MINUTE}


def test_forwarded_headers_cannot_multiply_one_client(key_service: Workspace) -> None:
    """uvicorn, by default, takes X-Forwarded-For from 127.0.0.1 as the client address:
    one client posing as many would get a rate bucket and a denial cap each."""
    room = Room(key_service, SoftwareAttester(key_service))
    denied = room.request(None, nonce=b"x" * 32).model_dump_json().encode()
    before = _ledger_size(key_service)
    with threaded_server(key_service, proxy_headers=True) as served, served.client() as http:
        codes = Counter(
            http.post(
                "/v1/release", content=denied, headers={"x-forwarded-for": f"10.0.{i}.1"}
            ).status_code
            for i in range(2 * DENIALS_PER_MINUTE)
        )
        assert _stats(served) == {"proxy": 2 * DENIALS_PER_MINUTE}
    assert codes == {400: 2 * DENIALS_PER_MINUTE}
    assert _ledger_size(key_service) == before


def test_unauthenticated_flood_gets_401_and_no_ledger_entries(
    served: Served, key_service: Workspace
) -> None:
    before = _ledger_size(key_service)
    with served.client(authorization="") as http:
        codes = Counter(
            http.post("/v1/release" if i % 2 else "/v1/nonce", content=b"{}").status_code
            for i in range(FLOOD)
        )
    assert codes == {401: FLOOD}
    assert _ledger_size(key_service) == before
    assert _stats(served) == {"auth": FLOOD}
    with sqlite3.connect(key_service.kms_db) as conn:  # no nonce was issued either
        assert conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0] == 0


def test_wrong_token_is_refused(served: Served) -> None:
    for header in (f"Bearer {served.token[:-1]}x", f"Basic {served.token}", served.token):
        with served.client(authorization=header) as http:
            response = http.post("/v1/nonce")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert served.token not in response.text
    with served.client(authorization="") as http:
        assert http.get("/v1/health").status_code == 200  # the one public path
        assert http.get("/v1/stats").status_code == 401


def test_large_bodies_are_refused_before_buffering(key_service: Workspace) -> None:
    before = _ledger_size(key_service)
    with subprocess_server(key_service) as served:
        rss_before = rss_kib(served.pid)
        started = time.monotonic()

        def stream() -> Iterator[bytes]:
            chunk = b" " * (64 << 10)
            for _ in range(BIG_BODY // len(chunk)):
                if time.monotonic() - started > BODY_DEADLINE_S:
                    return
                yield chunk

        with served.client() as http:
            chunked = http.post("/v1/release", content=stream())
        declared = _raw_post(served, f"Content-Length: {BIG_BODY}", b"{" * (64 << 10))
        understated = _raw_post(served, "Content-Length: 16", b"{" * (8 << 20))
        elapsed = time.monotonic() - started
        rss_after = rss_kib(served.pid)
        stats = _stats(served)
    assert chunked.status_code == 413
    assert declared.startswith(b"HTTP/1.1 413 ")
    # 16 bytes of '{' are malformed JSON; the rest is no HTTP request: the server says 400.
    assert understated.startswith(b"HTTP/1.1 400 ")
    assert rss_after - rss_before < RSS_GROWTH_KIB, (rss_before, rss_after)
    assert elapsed < BODY_DEADLINE_S
    assert stats == {"body_too_large": 2, "malformed": 1}
    assert _ledger_size(key_service) == before


def _raw_post(served: Served, length_header: str, body: bytes) -> bytes:
    """POST with a hand-written Content-Length; send until refused, return the answer."""
    head = (
        f"POST /v1/release HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Type: application/json\r\n"
        f"{length_header}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # refused and closed early: read its answer
            sock.sendall(head + body)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
    return answer


def test_nonce_flood_is_capped(served: Served, key_service: Workspace) -> None:
    with served.client() as http:
        responses = [http.post("/v1/nonce") for _ in range(FLOOD)]
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: MAX_OUTSTANDING_NONCES, 429: FLOOD - MAX_OUTSTANDING_NONCES}
    refused = next(r for r in responses if r.status_code == 429)
    assert "too many outstanding nonces" in refused.json()["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    with sqlite3.connect(key_service.kms_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0] == MAX_OUTSTANDING_NONCES
        # A minute later every one of them has expired: the next issue purges them all.
        conn.execute("UPDATE nonces SET expires_at = expires_at - 61")
    with served.client() as http:
        assert http.post("/v1/nonce").status_code == 200
    with sqlite3.connect(key_service.kms_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0] == 1
    assert _stats(served) == {"nonce_cap": FLOOD - MAX_OUTSTANDING_NONCES}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_generated_docs(served: Served, path: str) -> None:
    with served.client() as http:
        assert http.get(path).status_code == 404


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}"]
)
def test_foreign_host_header_is_refused(served: Served, host: str) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still says its name."""
    with served.client(host=host.format(port=served.port)) as http:
        response = http.post("/v1/nonce")
    assert response.status_code == 421
    assert _stats(served) == {"host": 1}


def test_foreign_origin_is_refused(served: Served) -> None:
    with served.client(origin="http://evil.example") as http:
        assert http.post("/v1/nonce").status_code == 403
    with served.client(origin=f"http://localhost:{served.port}") as http:
        assert http.post("/v1/nonce").status_code == 200
    assert _stats(served) == {"origin": 1}


def test_rate_limit_answers_429_with_retry_after(key_service: Workspace) -> None:
    with threaded_server(key_service, rate=5.0) as served, served.client() as http:
        responses = [http.get("/v1/health") for _ in range(40)]
        codes = Counter(r.status_code for r in responses)
        # A burst of 10 (2 x rate) then about 5 a second: most of 40 quick requests wait.
        assert 10 <= codes[200] < 40
        assert codes[429] == 40 - codes[200]
        limited = next(r for r in responses if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        time.sleep(1.0)  # let the bucket refill so that the stats request itself gets in
        assert _stats(served)["rate"] == codes[429]


def test_nothing_secret_in_refusals(served: Served, data_key: bytes) -> None:
    with served.client(authorization="Bearer nope") as http:
        texts = [http.post("/v1/release", content=b"{}").text, http.get("/v1/stats").text]
    with served.client() as http:
        texts.append(http.post("/v1/release", content=b"{}").text)
    for text in texts:
        assert served.token not in text
        assert base64.b64encode(data_key).decode() not in text
