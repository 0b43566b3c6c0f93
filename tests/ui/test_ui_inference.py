"""The Inference page against a REAL serving room (tests/serve/helpers: a tiny sealed ONNX
classifier provisioned under a registered contract, served from a sandboxed room on
loopback): its live stats, request counts and latency histogram come from real requests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sealroom.ledger import Ledger
from sealroom.serve.desk import RECEIPTS
from sealroom.serve.launcher import serving_url_path, stats_token_path
from sealroom.workspace import Workspace
from tests.serve.helpers import CONTRACT_ID, Served, build, module_workspace, running_room
from tests.ui.serving import client

REQUESTS = 7  # real inference requests sent to the room, one example each


@dataclass
class Live:
    served: Served
    url: str
    ui: TestClient


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("inference-ui")
    with module_workspace(tmp) as ws:
        served = build(ws, tmp)
        with running_room(served) as (url, _instance):
            with served.client(url) as inference:
                inference.attest()
                for i in range(REQUESTS):
                    inference.infer(np.full((1, 4), float(i), dtype=np.float32))
            _wait_for_commitments(served, REQUESTS)
            yield Live(served, url, client(ws))


def _wait_for_commitments(served: Served, receipts: int, timeout: float = 20.0) -> None:
    """The room commits receipt roots every half second: wait until all are in the ledger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Ledger.open(served.ws) as ledger:
            entries = ledger.find(RECEIPTS, contract_id=served.signed.id)
        if sum(b["size"] for e in entries for b in e.payload["batches"]) >= receipts:
            return
        time.sleep(0.1)
    raise AssertionError("the room did not commit its receipt roots")


def test_sealroom_serve_announces_its_loopback_url_in_a_private_file(live: Live) -> None:
    path = serving_url_path(live.served.ws, CONTRACT_ID)
    assert path.read_text().strip() == live.url
    assert path.stat().st_mode & 0o777 == 0o600


def test_live_stats_count_the_real_requests(live: Live) -> None:
    data = live.ui.get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is True
    assert data["url"] == live.url
    assert data["total_requests"] == REQUESTS
    assert data["answered"] == REQUESTS
    assert data["stats"]["requests"] == {"200": REQUESTS}
    assert sum(data["stats"]["latency_ms"]["buckets"].values()) == REQUESTS
    assert data["rate"] is not None and data["rate"]["requests_per_s"] >= 0


def test_latency_histogram_draws_the_real_bucket_counts(live: Live) -> None:
    buckets = live.ui.get(f"/api/inference/{CONTRACT_ID}/live").json()["stats"]["latency_ms"]
    html = live.ui.get(f"/inference/{CONTRACT_ID}/live").text
    drawn = [int(n) for n in re.findall(r'data-count="(\d+)"', html)]
    assert sum(drawn) == REQUESTS
    assert sorted(n for n in drawn if n) == sorted(n for n in buckets["buckets"].values() if n)
    assert 'id="total-requests">7<' in html


def test_page_lists_the_served_model_and_its_live_room(live: Live) -> None:
    models = live.ui.get("/api/inference").json()["models"]
    (model,) = models
    assert model["contract_id"] == CONTRACT_ID
    assert model["digest"] == live.served.model_digest
    assert model["provisioned_by"] == "lab" and model["retired"] is False
    assert model["announced"] is True
    page = live.ui.get("/inference")
    assert page.status_code == 200
    assert f'href="/inference/{CONTRACT_ID}"' in page.text
    detail = live.ui.get(f"/inference/{CONTRACT_ID}")
    assert detail.status_code == 200
    assert f'data-poll="/inference/{CONTRACT_ID}/live" data-every="2"' in detail.text
    assert "<svg" in detail.text


def test_committed_receipt_batches_verify(live: Live) -> None:
    view = live.ui.get(f"/api/inference/{CONTRACT_ID}").json()
    assert view["chain"]["ok"] is True
    assert view["receipts_total"] == REQUESTS
    assert view["commitments"]
    for entry in view["commitments"]:
        assert (entry["signature_ok"], entry["chain_ok"], entry["room_ok"]) == (True, True, True)
    (room,) = view["instances"]
    assert room["stopped_at"] is None
    assert room["attestation"].startswith("ok: software evidence binds")
    assert "sealroom receipt verify" in " ".join(view["verify"])


def test_the_stats_token_never_appears_in_any_answer(live: Live) -> None:
    token = stats_token_path(live.served.ws, CONTRACT_ID).read_text().strip()
    assert len(token) >= 16
    paths = ["/inference", f"/inference/{CONTRACT_ID}", f"/inference/{CONTRACT_ID}/live"]
    paths += ["/api" + p for p in paths]
    for path in paths:
        response = live.ui.get(path)
        assert response.status_code == 200, path
        assert token not in response.text, path
        assert token not in str(response.headers), path


def test_per_client_usage_is_not_shown(live: Live) -> None:
    """The charged totals name client fingerprints: they are not public (docs/inference.md)."""
    with Ledger.open(live.served.ws) as ledger:
        charged = [e.payload for e in ledger.entries("inference.charged")]
    fingerprints = {name for payload in charged for name in payload["charged"]}
    assert fingerprints  # the room did charge alice
    for path in ("/inference", f"/inference/{CONTRACT_ID}", f"/api/inference/{CONTRACT_ID}"):
        text = live.ui.get(path).text
        assert not any(f in text for f in fingerprints), path


def test_a_stopped_room_reads_not_serving(tmp_path: Path, workspace: Workspace) -> None:
    served = build(workspace, tmp_path)
    with running_room(served) as (url, _instance):
        assert serving_url_path(workspace, CONTRACT_ID).read_text().strip() == url
    assert not serving_url_path(workspace, CONTRACT_ID).exists()  # removed when it stopped
    ui = client(workspace)
    data = ui.get(f"/api/inference/{CONTRACT_ID}/live").json()
    assert data["serving"] is False and data["stats"] is None
    fragment = ui.get(f"/inference/{CONTRACT_ID}/live")
    assert fragment.status_code == 200 and "not serving" in fragment.text
    (room,) = ui.get(f"/api/inference/{CONTRACT_ID}").json()["instances"]
    assert room["stopped_at"] is not None


def test_an_empty_workspace_says_there_is_nothing_served(workspace: Workspace) -> None:
    ui = client(workspace)
    assert ui.get("/api/inference").json() == {"models": [], "unreadable": []}
    page = ui.get("/inference")
    assert page.status_code == 200 and 'id="no-models"' in page.text


def test_a_contract_pinning_no_ledger_key_is_shown_unverified(
    tmp_path: Path, workspace: Workspace
) -> None:
    """Statements and commitments are checked with the key the contract pins, never with
    the workspace ledger's private key: without a pin nothing is claimed verified."""
    import json

    build(workspace, tmp_path)
    path = workspace.contracts / f"{CONTRACT_ID}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "ledger_public_key": None}))
    ui = client(workspace)
    view = ui.get(f"/api/inference/{CONTRACT_ID}").json()
    assert view["model"]["digest"] is None and "pins no ledger key" in view["model"]["problem"]
    assert view["chain"]["ok"] is False and view["commitments"] == []
    assert "pins no ledger key" in ui.get(f"/inference/{CONTRACT_ID}").text
