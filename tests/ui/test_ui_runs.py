"""The Runs pages on small workspaces: the list, a run's timeline from its event log or the
ledger, the live event stream, and hostile ids and event text."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sealroom.ledger import Ledger
from sealroom.room.events import STAGES, RoomEvent
from sealroom.room.live import LiveLog, event_log_path
from sealroom.room.receipt import COMPLETED, FAILED, STARTED
from sealroom.ui.app import create_app
from sealroom.ui.pages import runs as runs_page
from sealroom.workspace import Workspace
from tests.ui.serving import client, live_server, settings


def _started(ws: Workspace, run_id: str, contract: str = "c1") -> None:
    with Ledger.open(ws) as ledger:
        payload = {"run_id": run_id, "contract_id": contract, "pipeline_digest": "sha256:0"}
        ledger.append(STARTED, payload)


def _failed(ws: Workspace, run_id: str, reason: str, stage: str = "train") -> None:
    with Ledger.open(ws) as ledger:
        payload = {"run_id": run_id, "contract_id": "c1", "stage": stage, "reason": reason}
        ledger.append(FAILED, payload)


def _live(ws: Workspace, run_id: str, stages: list[str], outcome: str | None = None) -> LiveLog:
    log = LiveLog.start(ws, run_id, "c1")
    for stage in stages:
        log.event(RoomEvent(type="stage", stage=stage, message=STAGES[stage]))
    if outcome == "completed":
        log.finish(run_id, None)
    elif outcome is not None:
        log.finish(run_id, outcome)
    return log


def _stages(data: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in data["timeline"]["stages"]}


def test_list_shows_running_and_failed_runs_with_the_public_reason(workspace: Workspace) -> None:
    _started(workspace, "run-a")
    _failed(workspace, "run-a", "training failed: IndexError raised by the model")
    _live(workspace, "run-b", ["contract", "policy"])
    page = client(workspace).get("/runs")
    assert page.status_code == 200
    assert "training failed: IndexError raised by the model" in page.text
    data = client(workspace).get("/api/runs").json()
    status = {r["run_id"]: r["status"] for r in data["runs"]}
    assert status == {"run-a": "failed", "run-b": "running"}
    assert data["counts"] == {"running": 1, "completed": 0, "failed": 1}
    failed = next(r for r in data["runs"] if r["run_id"] == "run-a")
    assert failed["failed_stage"] == "train" and failed["contract_id"] == "c1"


def test_empty_workspace_says_how_to_start_a_run(workspace: Workspace) -> None:
    page = client(workspace).get("/runs")
    assert page.status_code == 200 and 'id="no-runs"' in page.text


def test_a_hundred_runs_are_paginated(workspace: Workspace) -> None:
    for i in range(100):
        _live(workspace, f"run-{i:03d}", ["contract"], outcome=f"reason {i}")
    app = client(workspace)
    started = time.perf_counter()
    first = app.get("/runs")
    print(f"runs list, 100 runs: {(time.perf_counter() - started) * 1000:.0f} ms")
    assert first.status_code == 200 and first.text.count('class="run-row') == 25
    assert 'href="/runs?page=2"' in first.text and "page 1 of 4" in first.text
    data = app.get("/api/runs", params={"page": 4, "per_page": 30}).json()
    assert (data["page"], data["pages"], data["total"], len(data["runs"])) == (4, 4, 100, 10)
    assert app.get("/api/runs", params={"per_page": 10_000}).status_code == 422


def test_a_run_page_draws_its_stages_from_the_event_log(workspace: Workspace) -> None:
    log = _live(workspace, "run-c", ["contract", "policy", "attest", "keys", "train"])
    log.event(RoomEvent(type="epoch", epoch=2, epochs=4, batches=10))
    log.event(RoomEvent(type="batch", epoch=2, epochs=4, batch=5, batches=10))
    data = client(workspace).get("/api/runs/run-c").json()
    assert _stages(data) == {
        "contract": "done",
        "policy": "done",
        "budget": "skipped",
        "attest": "done",
        "keys": "done",
        "train": "running",
        "release": "pending",
        "receipt": "pending",
    }
    assert data["timeline"]["progress"] == {"epoch": 2, "epochs": 4, "batch": 5, "batches": 10}
    page = client(workspace).get("/runs/run-c")
    assert 'data-sse="/runs/run-c/events"' in page.text and 'value="38"' in page.text
    assert data["receipt"] is None and data["metrics"] is None


def test_a_failed_run_marks_its_stage_failed(workspace: Workspace) -> None:
    _live(
        workspace, "run-d", ["contract", "policy", "attest", "keys"], outcome="key release denied"
    )
    _failed(workspace, "run-d", "key release denied", stage="keys")
    data = client(workspace).get("/api/runs/run-d").json()
    stages = _stages(data)
    assert stages["keys"] == "failed" and stages["attest"] == "done"
    assert stages["train"] == "pending" and data["timeline"]["reason"] == "key release denied"
    page = client(workspace).get("/runs/run-d").text
    assert "data-sse" not in page and "key release denied" in page


def test_without_an_event_log_the_ledger_gives_the_stages(workspace: Workspace) -> None:
    _started(workspace, "run-e")
    _failed(workspace, "run-e", "releasing outputs failed: OSError", stage="release")
    data = client(workspace).get("/api/runs/run-e").json()
    assert data["timeline"]["source"] == "ledger"
    stages = _stages(data)
    assert stages["release"] == "failed" and stages["train"] == "done"
    assert stages["receipt"] == "pending"


def test_room_text_in_events_is_escaped(workspace: Workspace) -> None:
    log = _live(workspace, "run-f", ["contract"])
    log.event(RoomEvent(type="log", message="<script>alert(1)</script><img src=x onerror=y>"))
    log.finish("run-f", '<script>alert("reason")</script>')
    for path in ("/runs/run-f", "/runs", "/runs/run-f/events"):
        text = client(workspace).get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client(workspace).get("/runs/run-f").text


# (a bare ".." never reaches a route: the client resolves "/runs/.." to "/")
@pytest.mark.parametrize(
    "path",
    [
        "/runs/%2e%2e",
        "/runs/..%2f..%2fkeys",
        "/runs/run-x%00",
        "/runs/.events",
        "/runs/.staging-run-g",
        "/runs/%3Cscript%3E",
        "/runs/run-nope",
        "/api/runs/..%2fledger.db",
        "/api/runs/run-nope",
        "/runs/run-g/outputs/..%2f..%2fkeys%2fledger.key",
        "/runs/run-g/outputs/metrics.json",
        "/runs/..%2f/outputs/x.png",
        "/runs/run-nope/events",
    ],
)
def test_odd_run_ids_and_output_names_are_not_found(workspace: Workspace, path: str) -> None:
    _live(workspace, "run-g", ["contract"], outcome="completed")
    (workspace.runs / ".staging-run-g").mkdir()
    response = client(workspace).get(path)
    assert response.status_code == 404, response.text[:200]


def _events(body: str) -> list[tuple[str, str]]:
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], fields.get("data", "")))
    return found


def test_events_stream_the_timeline_until_the_run_ends(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _live(workspace, "run-h", ["contract", "policy"])
    looks = {"n": 0}
    real = runs_page.find_run

    def find_run(ws: Workspace, run_id: str) -> Any:
        looks["n"] += 1
        if looks["n"] == 3:  # the run moves on while the page watches, then ends
            log.event(RoomEvent(type="stage", stage="attest"))
        if looks["n"] == 5:
            log.finish("run-h", None)
        return real(ws, run_id)

    monkeypatch.setattr(runs_page, "find_run", find_run)
    monkeypatch.setattr(runs_page, "TICK_S", 0.01)
    body = client(workspace).get("/runs/run-h/events").text
    events = _events(body)
    assert [kind for kind, _ in events] == ["fragment", "fragment", "fragment", "end"]
    htmls = [json.loads(data) for kind, data in events if kind == "fragment"]
    assert {d["target"] for d in htmls} == {"run-timeline"}
    assert 'data-stage="attest" data-state="running"' in htmls[1]["html"]
    assert 'id="run-status">completed' in htmls[2]["html"]
    assert json.loads(events[-1][1]) == {"status": "completed"}


def test_a_stream_ends_at_its_lifetime(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _live(workspace, "run-i", ["contract"])
    monkeypatch.setattr(runs_page, "TICK_S", 0.01)
    monkeypatch.setattr(runs_page, "STREAM_LIFETIME_S", 0.2)
    events = _events(client(workspace).get("/runs/run-i/events").text)
    assert [kind for kind, _ in events] == ["fragment"]  # one look changed nothing; no end


def test_a_folder_the_ledger_does_not_know_is_not_shown_as_running(workspace: Workspace) -> None:
    (workspace.runs / "run-j").mkdir()
    (workspace.runs / "run-j" / "receipt.json").write_text("{}")
    data = client(workspace).get("/api/runs/run-j").json()
    assert data["summary"]["status"] == "failed"
    assert data["receipt"] is None


def test_event_log_lines_that_are_not_events_are_skipped(workspace: Workspace) -> None:
    _live(workspace, "run-k", ["contract"])
    with event_log_path(workspace, "run-k").open("a") as handle:
        handle.write('not json\n[1,2]\n{"type": 5}\n{"t": "x", "type": "log"}\n')
        handle.write(json.dumps({"t": 1.0, "type": "stage", "stage": "../../etc"}) + "\n")
        handle.write(json.dumps({"t": 1.0, "type": "epoch", "epoch": -3, "epochs": True}) + "\n")
    data = client(workspace).get("/api/runs/run-k").json()
    assert _stages(data)["contract"] == "running"
    assert data["timeline"]["progress"] == {"epoch": 0, "epochs": 0, "batch": 0, "batches": 0}
    assert client(workspace).get("/runs/run-k").status_code == 200


def test_post_is_refused_without_the_token(workspace: Workspace, tmp_path: Path) -> None:
    _live(workspace, "run-l", ["contract"])
    assert client(workspace).post("/api/runs/run-l").status_code == 401


def test_a_completed_run_without_its_folder_is_not_verified(workspace: Workspace) -> None:
    _live(workspace, "run-m", list(STAGES), outcome="completed")
    data = client(workspace).get("/api/runs/run-m").json()
    assert data["summary"]["status"] == "completed"
    assert {s["state"] for s in data["timeline"]["stages"]} == {"done"}
    assert data["receipt"]["verified"] is False and "no receipt" in data["receipt"]["reason"]
    assert 'class="badge bad"' in client(workspace).get("/runs/run-m").text


def test_a_completed_run_passed_every_stage_its_capped_log_lacks(workspace: Workspace) -> None:
    _live(workspace, "run-n", ["contract"], outcome="completed")
    stages = _stages(client(workspace).get("/api/runs/run-n").json())
    assert stages.pop("budget") == "skipped" and set(stages.values()) == {"done"}


def test_a_stream_stops_looking_once_the_client_goes(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _live(workspace, "run-o", ["contract"])
    looks = {"n": 0}
    real = runs_page.find_run

    def find_run(ws: Workspace, run_id: str) -> Any:
        looks["n"] += 1
        return real(ws, run_id)

    monkeypatch.setattr(runs_page, "find_run", find_run)
    monkeypatch.setattr(runs_page, "TICK_S", 0.02)
    with live_server(workspace) as url, httpx.stream("GET", f"{url}/runs/run-o/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: fragment"):
                break
        stream.close()
        still, last, deadline = 0, -1, time.monotonic() + 20
        while still < 5 and time.monotonic() < deadline:  # five quiet looks in a row
            time.sleep(0.1)
            still, last = (still + 1, last) if looks["n"] == last else (0, looks["n"])
        assert still == 5, f"the stream went on looking ({looks['n']} looks)"


def test_a_flood_of_event_streams_is_capped_and_the_count_comes_back(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stream looks at its run twice a second for minutes: past MAX_STREAMS open at once
    a new one is refused (503, Retry-After) instead of holding more of the server."""
    _live(workspace, "run-f", ["contract"], outcome="completed")
    monkeypatch.setattr(runs_page, "MAX_STREAMS", 2)
    app = create_app(settings(workspace))
    http = TestClient(app, base_url=settings(workspace).url)
    app.state.open_streams = 2  # two streams still open elsewhere
    refused = http.get("/runs/run-f/events")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
    assert "live streams are open" in refused.json()["error"]
    app.state.open_streams = 1
    events = _events(http.get("/runs/run-f/events").text)
    assert [kind for kind, _ in events] == ["fragment", "end"]
    assert app.state.open_streams == 1  # the finished stream gave its place back


def test_a_run_the_ledger_records_is_running_until_the_operator_has_its_folder(
    workspace: Workspace,
) -> None:
    """The room appends run.completed before the operator checks the receipt and renames the
    staging folder: a page that ended the stream then would reload onto "no receipt"."""
    log = _live(workspace, "run-r", list(STAGES))
    with Ledger.open(workspace) as ledger:
        ledger.append(COMPLETED, {"run_id": "run-r", "contract_id": "c1"})
    data = client(workspace).get("/api/runs/run-r").json()
    assert data["summary"]["status"] == "running" and data["receipt"] is None
    assert data["timeline"]["status"] == "running"  # so the live page's stream goes on
    (workspace.runs / "run-r").mkdir()
    assert client(workspace).get("/api/runs/run-r").json()["summary"]["status"] == "completed"
    log.finish("run-r", None)
    assert client(workspace).get("/api/runs/run-r").json()["summary"]["status"] == "completed"
