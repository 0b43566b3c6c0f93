"""LabClient: finding the workspace's server, the server's refusal as one LabError line,
artifact downloads checked against the recorded digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sealroom.errors import LabError
from sealroom.httpguard import write_token
from sealroom.lab.client import NO_SERVER, LabClient
from sealroom.lab.paths import LabPaths
from tests.lab.lab_api_helpers import (
    BASE,
    CONSUME,
    FAIL,
    SCORE,
    TOKEN,
    TickingLab,
    free_socket,
    served,
)


def _in_process(lab: TickingLab, token: str = TOKEN) -> LabClient:
    from sealroom.lab.api import create_app, guard_settings

    app = create_app(lab, guard_settings(8480, TOKEN))
    return LabClient(BASE, token, http=TestClient(app, base_url=BASE))


def test_from_workspace_without_a_live_server_says_how_to_start_one(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path / "lab").create()
    with pytest.raises(LabError, match="start one with `sealroom lab start`"):
        LabClient.from_workspace(paths)  # no server file
    write_token(paths.token_file, TOKEN)
    paths.server_file.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 2**22 + 7}))
    with pytest.raises(LabError) as dead:
        LabClient.from_workspace(paths)  # its process is gone
    assert str(dead.value) == NO_SERVER
    sock = free_socket()  # bound, not listening: nothing answers there
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    paths.server_file.write_text(json.dumps({"url": url, "pid": __import__("os").getpid()}))
    try:
        with (
            LabClient.from_workspace(paths) as client,
            pytest.raises(LabError, match="no lab server running"),
        ):
            client.list_jobs()
    finally:
        sock.close()


def test_a_refusal_comes_back_as_the_servers_one_line(lab: TickingLab) -> None:
    client = _in_process(lab)
    with pytest.raises(LabError) as unknown:
        client.get_job("job-42")
    assert "job-42" in str(unknown.value) and "\n" not in str(unknown.value)
    with pytest.raises(LabError, match="experiment"):
        client.submit_job({"experiment": "missing", "entry_point": "score"})
    stranger = _in_process(lab, token="wrong-token-0123456789abcdef")
    with pytest.raises(LabError, match="refused this client's token"):
        stranger.list_jobs()


def test_the_client_covers_a_whole_story(lab: TickingLab, tmp_path: Path) -> None:
    client = _in_process(lab)
    assert client.health()
    client.create_experiment("exp", "client story")
    for text in (SCORE, CONSUME, FAIL):
        client.add_entry_point(text)
    assert {e["name"] for e in client.list_entry_points()} == {"score", "consume", "fail"}
    assert "lab_api_read" in {t["name"] for t in client.list_tasks()}
    job = client.submit_job({"experiment": "exp", "entry_point": "score"})
    plan = client.submit_plan(
        {
            "jobs": [
                {
                    "key": "copy",
                    "experiment": "exp",
                    "entry_point": "consume",
                    "depends_on": [job["id"]],
                    "parameters": {"source": f"${{jobs.{job['id']}.artifacts.report}}"},
                }
            ]
        }
    )
    assert lab.wait(plan[0]["id"]).status == "succeeded"
    assert client.get_job(job["id"])["status"] == "succeeded"
    assert [a["status"] for a in client.attempts(job["id"])] == ["succeeded"]
    assert "scoring a" in client.logs(job["id"], 1)
    saved = client.download_artifact(job["id"], "report", tmp_path)
    assert saved == tmp_path / "report.json"
    assert json.loads(saved.read_text()) == {"label": "a", "value": 0.5}
    rows = client.compare([job["id"]], ["loss"])
    assert [(r["metric"], r["value"]) for r in rows] == [("loss", 0.5)]
    assert client.status()["jobs"] == {"succeeded": 2}
    assert client.list_models() == [] and isinstance(client.list_workers(), list)


def test_a_download_whose_bytes_do_not_match_the_record_is_refused(
    lab: TickingLab, tmp_path: Path
) -> None:
    client = _in_process(lab)
    client.create_experiment("exp")
    client.add_entry_point(SCORE)
    job = client.submit_job({"experiment": "exp", "entry_point": "score"})
    lab.wait(job["id"])
    record = lab.store.artifacts(job["id"])[0]
    (lab.paths.artifacts / record.path).write_bytes(b'{"tampered": true}')
    target = tmp_path / "out.json"
    with pytest.raises(LabError, match="do not match the recorded sha256"):
        client.download_artifact(job["id"], "report", target)
    assert not target.exists()  # nothing half-written
    assert list(tmp_path.glob(".out.json.*")) == []


def test_from_workspace_reaches_a_real_loopback_server(lab: TickingLab) -> None:
    with served(lab) as url, LabClient.from_workspace(lab.paths) as client:
        assert client.url == url
        assert client.create_experiment("exp")["name"] == "exp"
        assert client.list_experiments()[0]["name"] == "exp"


def test_a_rate_limited_read_is_asked_again_and_a_write_is_not(lab: TickingLab) -> None:
    from sealroom.lab.api import create_app, guard_settings

    app = create_app(lab, guard_settings(8480, TOKEN, rate=2.0))  # bursts of 4
    client = LabClient(BASE, TOKEN, http=TestClient(app, base_url=BASE))
    for _ in range(6):  # past the burst: each read waits for the server's Retry-After
        assert client.list_jobs() == []
    refusals = []
    for _ in range(6):
        try:
            client.create_experiment("exp")
        except LabError as exc:
            refusals.append(str(exc))
    assert refusals and all("too many requests (retry after" in r for r in refusals)
    assert app.state.refusals["rate"] > len(refusals)  # some reads were refused, then retried
