"""The lab REST API over the real store and scheduler (inline engine, no Ray): catalogue
routes, a job's lifecycle, dependencies, cancel and rerun, plans, metrics across jobs, and
one-line JSON errors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sealroom.lab.api import create_app, guard_settings, scrub
from tests.lab.lab_api_helpers import (
    AUTH,
    BASE,
    PORT,
    SCORE,
    TOKEN,
    TickingLab,
)


def _submit(http: TestClient, **fields: object) -> dict[str, object]:
    body = {"experiment": "exp", "entry_point": "score", **fields}
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_catalogue_routes_create_list_and_show(http: TestClient) -> None:
    assert [e["name"] for e in http.get("/v1/experiments").json()] == ["exp"]
    assert http.get("/v1/experiments/exp").json()["name"] == "exp"
    again = http.post("/v1/experiments", json={"name": "exp"})
    assert again.status_code == 409 and "exp" in again.json()["detail"]
    assert http.get("/v1/experiments/nope").status_code == 404

    same = http.post("/v1/entrypoints", json={"text": SCORE}).json()
    assert same["version"] == 1  # same text, same version
    changed = http.post("/v1/entrypoints", json={"text": SCORE.replace("(test)", "(v2)")})
    assert changed.json()["version"] == 2
    assert "(test)" in http.get("/v1/entrypoints/score?version=1").json()["text"]
    assert http.get("/v1/entrypoints/score").json()["version"] == 2
    assert http.get("/v1/entrypoints/score?version=9").status_code == 404

    tasks = {t["name"]: t for t in http.get("/v1/tasks").json()}
    assert tasks["lab_api_score"]["outputs"] == ["report"]
    assert http.post("/v1/tasks", json={"name": "x"}).status_code == 405  # read-only

    assert http.post("/v1/queues", json={"name": "gpu"}).status_code == 201
    assert "gpu" in [q["name"] for q in http.get("/v1/queues").json()]
    assert http.get("/v1/health", headers={"authorization": ""}).json() == {"status": "ok"}


def test_a_job_runs_and_its_record_logs_and_artifact_come_back(
    http: TestClient, lab: TickingLab
) -> None:
    job = _submit(http, parameters={"value": 0.9, "label": "first"})
    assert job["id"] == "job-1" and job["trust"] == "outside-room"
    lab.wait("job-1")
    shown = http.get("/v1/jobs/job-1").json()
    assert shown["status"] == "succeeded" and shown["parameters"]["value"] == 0.9
    attempts = http.get("/v1/jobs/job-1/attempts").json()
    assert [(a["number"], a["status"]) for a in attempts] == [(1, "succeeded")]
    assert "scoring first at 0.9" in http.get("/v1/jobs/job-1/logs?attempt=1").json()["text"]
    assert http.get("/v1/jobs/job-1/logs?attempt=2").status_code == 404

    listed = http.get("/v1/jobs/job-1/artifacts").json()
    assert [a["name"] for a in listed] == ["report"] and "path" not in listed[0]
    download = http.get(listed[0]["url"])
    assert download.status_code == 200
    assert json.loads(download.content) == {"label": "first", "value": 0.9}
    assert download.headers["x-sealroom-sha256"] == hashlib.sha256(download.content).hexdigest()
    assert [j["id"] for j in http.get("/v1/jobs?status=succeeded").json()] == ["job-1"]
    assert http.get("/v1/jobs?status=bogus").status_code == 400


def test_a_dependency_artifact_reaches_the_dependant(http: TestClient, lab: TickingLab) -> None:
    _submit(http, parameters={"value": 0.25, "label": "src"})
    _submit(
        http,
        entry_point="consume",
        parameters={"source": "${jobs.job-1.artifacts.report}"},
        depends_on=["job-1"],
    )
    assert lab.wait("job-2").status == "succeeded"
    copy = http.get("/v1/jobs/job-2/artifacts/copy")
    assert json.loads(copy.content) == {"label": "src", "value": 0.25}


def test_a_failed_job_cancels_its_dependants_and_its_error_is_shown(
    http: TestClient, lab: TickingLab
) -> None:
    _submit(http, entry_point="fail")
    _submit(http, depends_on=["job-1"])
    _submit(http, depends_on=["job-1"], allow_failure=True)
    assert lab.wait("job-1").status == "failed"
    dependant = lab.wait("job-2")
    assert dependant.status == "cancelled" and "job-1" in dependant.reason
    assert lab.wait("job-3").status == "succeeded"
    attempt = http.get("/v1/jobs/job-1/attempts").json()[0]
    assert "always fails" in attempt["error"]


def test_cancel_a_waiting_job_and_rerun_a_finished_one(http: TestClient, lab: TickingLab) -> None:
    _submit(http, queue="nowhere")
    early = http.post("/v1/jobs/job-1/rerun")
    assert early.status_code == 409 and "job-1 is" in early.json()["detail"]
    cancelled = http.post("/v1/jobs/job-1/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    _submit(http, parameters={"value": 0.4})
    lab.wait("job-2")
    rerun = http.post("/v1/jobs/job-2/rerun")
    assert rerun.status_code == 201
    again = rerun.json()
    assert again["rerun_of"] == "job-2" and again["parameters"] == {"value": 0.4, "label": "a"}
    assert lab.wait(again["id"]).status == "succeeded"
    assert http.post("/v1/jobs/job-99/cancel").status_code == 404


def test_a_plan_is_submitted_whole_and_a_cycle_is_refused_naming_it(
    http: TestClient, lab: TickingLab
) -> None:
    plan = {
        "jobs": [
            {"key": "src", "experiment": "exp", "entry_point": "score"},
            {
                "key": "copy",
                "experiment": "exp",
                "entry_point": "consume",
                "depends_on": ["src"],
                "parameters": {"source": "${jobs.src.artifacts.report}"},
            },
        ]
    }
    created = http.post("/v1/plans", json=plan)
    assert created.status_code == 201, created.text
    ids = [j["id"] for j in created.json()]
    assert lab.wait(ids[1]).status == "succeeded"

    cycle = {
        "jobs": [
            {"key": "a", "experiment": "exp", "entry_point": "score", "depends_on": ["b"]},
            {"key": "b", "experiment": "exp", "entry_point": "score", "depends_on": ["a"]},
        ]
    }
    refused = http.post("/v1/plans", json=cycle)
    assert refused.status_code == 400
    assert "->" in refused.json()["detail"]
    assert len(http.get("/v1/jobs").json()) == 2  # nothing of the refused plan was kept


def test_metrics_of_several_jobs_come_back_as_one_table(http: TestClient, lab: TickingLab) -> None:
    _submit(http, parameters={"value": 0.3})
    _submit(http, parameters={"value": 0.9})
    lab.wait("job-1"), lab.wait("job-2")
    rows = http.get("/v1/metrics?jobs=job-2,job-1&names=acc").json()
    assert [(r["job"], r["metric"], r["step"]) for r in rows] == [
        *(("job-2", "acc", s) for s in range(3)),
        *(("job-1", "acc", s) for s in range(3)),
    ]
    assert rows[2]["value"] == pytest.approx(0.9) and rows[5]["value"] == pytest.approx(0.3)
    assert rows[0]["entry_point"] == "score" and rows[0]["parameters"]["value"] == 0.9
    everything = http.get("/v1/metrics?jobs=job-1").json()
    assert {r["metric"] for r in everything} == {"acc", "loss"}
    assert http.get("/v1/metrics?jobs=job-1,job-7").status_code == 404


def test_refusals_are_one_line_json_without_server_paths(
    http: TestClient, lab: TickingLab, tmp_path: Path
) -> None:
    refused = [
        http.post("/v1/jobs", json={"experiment": "nope", "entry_point": "score"}),
        http.post("/v1/jobs", json={"experiment": "exp", "entry_point": "score", "queue": 3}),
        http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}),
        http.post(
            "/v1/jobs",
            json={"experiment": "exp", "entry_point": "score", "parameters": {"value": 7}},
        ),
        http.get("/v1/jobs/..%2F..%2Fetc"),
        http.post("/v1/entrypoints", json={"text": "name: [unclosed"}),
    ]
    for response in refused:
        assert response.status_code in (400, 404), response.text
        detail = response.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and detail
        assert str(tmp_path) not in detail and "Traceback" not in detail
    assert "value" in refused[3].json()["detail"]


def test_paths_in_messages_are_made_relative_or_hidden(lab: TickingLab) -> None:
    inside = f"{lab.paths.root}/artifacts/job-1/1/x.json"
    line = scrub(
        f"cannot read {inside} nor /etc/passwd;\nsee http://127.0.0.1:8480/v1/jobs", lab.paths
    )
    assert line == (
        "cannot read lab/artifacts/job-1/1/x.json nor <path>; see http://127.0.0.1:8480/v1/jobs"
    )
    assert scrub("job a -> b -> a: ${jobs.job-1.artifacts.report}", lab.paths) == (
        "job a -> b -> a: ${jobs.job-1.artifacts.report}"
    )


def test_an_unexpected_error_is_a_500_without_its_text(
    lab: TickingLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> list[object]:
        raise RuntimeError("disk gone at /srv/secret/lab.db")

    monkeypatch.setattr(lab.store, "list_jobs", broken)
    app = create_app(lab, guard_settings(PORT, TOKEN))
    http = TestClient(app, base_url=BASE, headers=AUTH, raise_server_exceptions=False)
    response = http.get("/v1/jobs")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); see the lab server's log"}


def test_the_guides_entry_points_are_accepted(http: TestClient) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "lab.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, flags=re.DOTALL)
    assert len(blocks) == 2
    for text in blocks:
        response = http.post("/v1/entrypoints", json={"text": text})
        assert response.status_code == 201, response.text
