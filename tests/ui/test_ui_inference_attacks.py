"""Attacks on the Inference page: the serving URL file and the stats server are workspace
data the dashboard's server acts on, and ledger entries carry text a room or an operator
chose. None of it may steer a fetch off loopback, leak the stats token, break the page, or
inject markup."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sealroom.httpguard import write_token
from sealroom.ledger import Ledger
from sealroom.serve.launcher import serving_url_path, stats_token_path
from sealroom.serve.stats import ServeStats
from sealroom.ui.charts.histogram import Bucket, histogram
from sealroom.ui.views import inference_live
from sealroom.ui.views.inference_live import RateMeter, loopback_url
from sealroom.workspace import Workspace
from tests.serve.helpers import CONTRACT_ID, Served, build, module_workspace
from tests.ui.serving import client

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("inference-attacks")
    with module_workspace(tmp) as ws:
        yield build(ws, tmp)


@pytest.fixture
def served(shared: Served) -> Served:
    """The module's workspace with no serving files left by an earlier test (tests that
    write to the ledger use ``fresh``)."""
    shutil.rmtree(shared.ws.home / "serve", ignore_errors=True)
    return shared


@pytest.fixture
def fresh(workspace: Workspace, tmp_path: Path) -> Served:
    return build(workspace, tmp_path)


class FakeRoom:
    """A stats server on loopback answering what a test chose; it records what it got."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status
        self.drip_s = 0.0  # > 0: send the body one byte at a time, this far apart
        self.seen: list[dict[str, str]] = []
        room = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                room.seen.append({"path": self.path, "auth": self.headers.get("authorization")})
                self.send_response(room.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(room.body)))
                self.end_headers()
                if not room.drip_s:
                    self.wfile.write(room.body)
                    return
                try:
                    for byte in room.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(room.drip_s)
                except OSError:  # the dashboard hung up, as it should
                    return

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a dripping handler does not hold up the test
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _announce(ws: Workspace, url: str) -> str:
    """What `sealroom serve` leaves: the URL file and the stats token (both 0600)."""
    write_token(serving_url_path(ws, CONTRACT_ID), url)
    return write_token(stats_token_path(ws, CONTRACT_ID))


@pytest.fixture
def fake_room() -> Iterator[FakeRoom]:
    room = FakeRoom(b"{}")
    yield room
    room.close()


def _real_stats(requests: int) -> dict[str, Any]:
    stats = ServeStats()
    for i in range(requests):
        stats.request_done(200, 0.003 * (i + 1))
    snapshot = stats.snapshot()
    snapshot["pending_commitments"] = 0
    snapshot["refusals"] = {}
    return snapshot


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "http://example.com:80",
        "file:///etc/passwd",
        "https://127.0.0.1:8470",
        "http://localhost:8470",
        "http://127.0.0.1.nip.io:8470",
        "http://user:pw@127.0.0.1:8470",
        "http://127.0.0.1:8470/v1/other",
        "http://127.0.0.1:8470?x=1",
        "http://10.0.0.1:8470",
        "http://[::ffff:8.8.8.8]:8470",
        "http://127.0.0.1",
        "http://127.0.0.1:8470\nhttp://example.com",
        "gopher://127.0.0.1:70",
    ],
)
def test_a_url_file_off_loopback_is_never_fetched(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    fetched: list[str] = []
    monkeypatch.setattr(inference_live, "_get", lambda url, token: fetched.append(url) or b"")
    serving_url_path(workspace, CONTRACT_ID).parent.mkdir(exist_ok=True)
    serving_url_path(workspace, CONTRACT_ID).write_text(text)
    write_token(stats_token_path(workspace, CONTRACT_ID))
    url, why = inference_live.fetch_stats(workspace, CONTRACT_ID)
    assert url is None and why == "the serving URL file names no loopback http address: not fetched"
    assert fetched == []


@pytest.mark.parametrize("text", ["http://example.com", "file:///etc/passwd"])
def test_the_page_of_an_off_loopback_url_reads_not_serving(
    served: Served, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    fetched: list[str] = []
    monkeypatch.setattr(inference_live, "_get", lambda url, token: fetched.append(url) or b"")
    serving_url_path(served.ws, CONTRACT_ID).parent.mkdir(exist_ok=True)
    serving_url_path(served.ws, CONTRACT_ID).write_text(text)
    write_token(stats_token_path(served.ws, CONTRACT_ID))
    ui = client(served.ws)
    data = ui.get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and data["url"] is None
    fragment = ui.get(f"/inference/{CONTRACT_ID}/live")
    assert fragment.status_code == 200 and "not serving" in fragment.text
    assert ui.get(f"/inference/{CONTRACT_ID}").status_code == 200
    assert fetched == []


def test_loopback_urls_are_rebuilt_from_their_parts() -> None:
    assert loopback_url("http://127.0.0.1:8470") == "http://127.0.0.1:8470"
    assert loopback_url("http://127.0.0.1:8470/") == "http://127.0.0.1:8470"
    assert loopback_url("http://[::1]:9") == "http://[::1]:9"
    assert loopback_url("http://127.1.2.3:80") == "http://127.1.2.3:80"


def test_a_symlinked_url_file_is_not_followed(served: Served, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.url"
    elsewhere.write_text("http://127.0.0.1:9")
    path = serving_url_path(served.ws, CONTRACT_ID)
    path.parent.mkdir(exist_ok=True)
    path.symlink_to(elsewhere)
    data = client(served.ws).get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and data["url"] is None


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json at all", 200, "malformed"),
        (b'{"requests": {"200": -5}}', 200, "malformed"),
        (json.dumps({"requests": "lots"}).encode(), 200, "malformed"),
        (b"[" * 5000 + b"]" * 5000, 200, "malformed"),
        (b'{"pad": "' + b"x" * (2 << 20) + b'"}', 200, "too large"),
        (b'{"error": "no"}', 401, "refused"),
        (b"", 500, "refused"),
    ],
)
def test_a_stats_server_answering_garbage_reads_unavailable(
    served: Served, fake_room: FakeRoom, body: bytes, status: int, reason: str
) -> None:
    fake_room.body, fake_room.status = body, status
    token = _announce(served.ws, fake_room.url)
    ui = client(served.ws)
    data = ui.get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and reason in data["reason"]
    page = ui.get(f"/inference/{CONTRACT_ID}")
    assert page.status_code == 200 and "not serving" in page.text
    assert token not in page.text and token not in json.dumps(data)
    assert fake_room.seen and fake_room.seen[0]["path"] == "/v1/stats"


def test_a_room_that_drips_its_stats_is_cut_off(served: Served, fake_room: FakeRoom) -> None:
    fake_room.body = json.dumps(_real_stats(3)).encode()
    fake_room.drip_s = 0.5  # under the read timeout each time, far over the whole deadline
    _announce(served.ws, fake_room.url)
    data = client(served.ws).get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and "too slowly" in data["reason"]


def test_the_token_goes_to_the_loopback_room_only_never_back(
    served: Served, fake_room: FakeRoom
) -> None:
    fake_room.body = json.dumps(_real_stats(3)).encode()
    token = _announce(served.ws, fake_room.url)
    ui = client(served.ws)
    answers = [
        ui.get(path)
        for path in (
            "/inference",
            f"/inference/{CONTRACT_ID}",
            f"/inference/{CONTRACT_ID}/live",
            "/api/inference",
            f"/api/inference/{CONTRACT_ID}",
            f"/api/inference/{CONTRACT_ID}/live",
        )
    ]
    assert all(a.status_code == 200 for a in answers)
    assert not any(token in a.text or token in str(a.headers) for a in answers)
    assert fake_room.seen[0]["auth"] == f"Bearer {token}"
    live = answers[-1].json()
    assert live["serving"] is True and live["total_requests"] == 3


def test_an_unsafe_token_file_is_not_used(served: Served, fake_room: FakeRoom) -> None:
    _announce(served.ws, fake_room.url)
    stats_token_path(served.ws, CONTRACT_ID).chmod(0o644)
    data = client(served.ws).get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and "token" in data["reason"]
    assert fake_room.seen == []


def test_hostile_stats_labels_are_escaped(served: Served, fake_room: FakeRoom) -> None:
    stats = _real_stats(2)
    stats["refusals"] = {HOSTILE: 4}
    stats["requests"] = {"200": 2, HOSTILE[:60]: 1}
    stats["latency_ms"]["buckets"][HOSTILE[:70]] = 1
    fake_room.body = json.dumps(stats).encode()
    _announce(served.ws, fake_room.url)
    html = client(served.ws).get(f"/inference/{CONTRACT_ID}").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_hostile_ledger_text_is_escaped(fresh: Served) -> None:
    """A room's instance id and an operator's stop reason are text in the ledger."""
    with Ledger.open(fresh.ws) as ledger:
        base = {"contract_id": CONTRACT_ID, "instance": HOSTILE}
        ledger.append("inference.started", {**base, "room_key": HOSTILE, "attestation": {}})
        ledger.append("inference.stopped", {**base, "reason": HOSTILE})
        ledger.append("inference.receipts", {**base, "room_key": "k", "batches": [HOSTILE]})
    ui = client(fresh.ws)
    page = ui.get(f"/inference/{CONTRACT_ID}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    view = ui.get(f"/api/inference/{CONTRACT_ID}").json()
    assert view["instances"][0]["attestation"].startswith("FAIL")
    assert view["commitments"][0]["room_ok"] is False  # k is no attested room key


def test_an_edited_commitment_shows_unverified(fresh: Served) -> None:
    with Ledger.open(fresh.ws) as ledger:
        payload = {"contract_id": CONTRACT_ID, "instance": "i1", "room_key": "k", "batches": []}
        receipt = ledger.append("inference.receipts", payload)
    edited = json.dumps({**payload, "batches": [{"root": "ab" * 32, "size": 99}]})
    with sqlite3.connect(fresh.ws.ledger_db) as db:  # an attacker with the file drops the guard
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("UPDATE entries SET payload = ? WHERE seq = ?", (edited, receipt.seq))
    ui = client(fresh.ws)
    view = ui.get(f"/api/inference/{CONTRACT_ID}").json()
    assert view["chain"]["ok"] is False and view["chain"]["first_bad"] == receipt.seq
    (entry,) = view["commitments"]
    assert entry["signature_ok"] is False and entry["chain_ok"] is False
    assert f'<tr class="bad" data-seq="{receipt.seq}"' in ui.get(f"/inference/{CONTRACT_ID}").text


# (a bare ".." never reaches the route: the client resolves "/inference/.." to "/")
@pytest.mark.parametrize("contract_id", ["nope", "%2e%2e", "%2e%2e%2fetc", "a" * 80, "UPPER"])
def test_unknown_or_odd_contract_ids_are_one_line_404s(served: Served, contract_id: str) -> None:
    ui = client(served.ws)
    for path in (f"/inference/{contract_id}", f"/api/inference/{contract_id}/live"):
        response = ui.get(path)
        assert response.status_code == 404, path


def test_a_training_contract_is_not_an_inference_page(fresh: Served) -> None:
    data = json.loads((fresh.ws.contracts / f"{CONTRACT_ID}.json").read_text())
    data.update(id="trainer", inference=None)
    (fresh.ws.contracts / "trainer.json").write_text(json.dumps(data))
    response = client(fresh.ws).get("/api/inference/trainer")
    assert response.status_code == 404


def test_rate_comes_from_successive_snapshots_and_restarts_with_the_room() -> None:
    meter = RateMeter(window_s=30.0)
    assert meter.observe("c", "http://127.0.0.1:1", 10, now=100.0) is None
    assert meter.observe("c", "http://127.0.0.1:1", 12, now=100.5) is None  # too close
    rate = meter.observe("c", "http://127.0.0.1:1", 30, now=102.0)
    assert rate is not None and rate.source == "snapshots"
    assert rate.requests_per_s == pytest.approx(10.0) and rate.over_s == pytest.approx(2.0)
    assert meter.observe("c", "http://127.0.0.1:2", 5, now=103.0) is None  # another room
    assert meter.observe("c", "http://127.0.0.1:2", 1, now=105.0) is None  # counter reset
    later = meter.observe("c", "http://127.0.0.1:2", 41, now=145.0)
    assert later is not None and later.requests_per_s == pytest.approx(1.0)


def test_histogram_escapes_labels_and_carries_counts() -> None:
    svg = str(histogram([Bucket(HOSTILE, 3), Bucket("≤ 5", 0)], title=HOSTILE, x_label="ms"))
    assert "<script>" not in svg and "<img" not in svg
    assert svg.count('data-count="3"') == 1 and 'data-count="0"' in svg
    assert "no data" in str(histogram([], title="t", x_label="ms"))


def test_model_history_shows_rotation_retirement_and_left_out_forgeries(
    fresh: Served, tmp_path: Path
) -> None:
    import numpy as np

    from sealroom.contract.provision import provision_model
    from tests.serve.helpers import seal_model, tiny_classifier

    ws, lab = fresh.ws, fresh.parties["lab"]
    newer, _key = seal_model(ws, lab, tmp_path, tiny_classifier(np.ones((4, 3))), "newer")
    statement, _state, _receipt = provision_model(ws, CONTRACT_ID, "lab", "rotate", newer)
    forged = statement.model_copy(
        update={
            "statement_id": "f" * 32,
            "signer": "operator",
            "action": "retire",
            "package_digest": newer,
            "previous_digest": None,
        }
    )
    with Ledger.open(ws) as ledger:  # the operator holds the ledger key, not the owner's
        ledger.append("model.retired", forged.model_dump(mode="json"))
    ui = client(ws)
    model = ui.get(f"/api/inference/{CONTRACT_ID}").json()["model"]
    assert [e["action"] for e in model["history"]] == ["provision", "rotate"]
    assert model["digest"] == newer and model["retired"] is False
    assert len(model["skipped"]) == 1 and "not the model owner" in model["skipped"][0]
    provision_model(ws, CONTRACT_ID, "lab", "retire")
    model = ui.get(f"/api/inference/{CONTRACT_ID}").json()["model"]
    assert [e["action"] for e in model["history"]] == ["provision", "rotate", "retire"]
    assert model["retired"] is True and model["digest"] == newer
    assert "retired" in ui.get("/inference").text


def test_a_damaged_contract_file_hides_no_served_model(fresh: Served) -> None:
    (fresh.ws.contracts / "broken.json").write_text("{not json")
    ui = client(fresh.ws)
    page = ui.get("/inference")
    assert page.status_code == 200
    assert CONTRACT_ID in page.text and "Not read: broken" in page.text
    view = ui.get("/api/inference").json()
    assert [m["contract_id"] for m in view["models"]] == [CONTRACT_ID]
    assert view["unreadable"] == ["broken"]
