"""Attacks on the lab API, each a test that fails if its defence is removed: no or a wrong
token, an oversized body, YAML bombs, code named as a task, path traversal to a file
that is not an artifact, a flood of submits, and an artifact taken from a job the
submitter did not declare as a dependency."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sealroom.lab.api import MAX_BODY_BYTES
from sealroom.lab.spec import MAX_YAML_DEPTH
from tests.lab.lab_api_helpers import (
    BASE,
    TickingLab,
)


def _entry_point_count(http: TestClient) -> int:
    return len(http.get("/v1/entrypoints").json())


def test_no_token_or_a_wrong_token_is_refused_on_every_route(http: TestClient) -> None:
    routes = [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/experiments"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/metrics?jobs=job-1"),
        ("GET", "/v1/jobs/job-1/artifacts/report"),
    ]
    for token in (None, "Bearer wrong-token-0123456789abcdef", "Basic abc"):
        headers = {"authorization": token} if token else {}
        stranger = TestClient(http.app, base_url=BASE, headers=headers)
        for method, route in routes:
            response = stranger.request(method, route, json={})
            assert response.status_code == 401, (token, route, response.text)
    assert TestClient(http.app, base_url=BASE).get("/v1/health").status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(http: TestClient) -> None:
    huge = "x" * (MAX_BODY_BYTES + 1)
    response = http.post("/v1/entrypoints", json={"text": huge})
    assert response.status_code == 413
    assert _entry_point_count(http) == 3


def test_yaml_bombs_and_oversized_entry_points_are_refused(http: TestClient) -> None:
    # A small "billion laughs": a valid entry point if aliases were expanded (and then
    # refs_in and the store would walk every copy); any alias is refused.
    bomb = "\n".join(
        [
            "name: bomb",
            "steps:",
            "  - name: s",
            "    task: lab_api_score",
            "    args:",
            "      value: 0.5",
            '      label: &a ["lol", "lol", "lol", "lol", "lol"]',
            "  - name: t",
            "    task: lab_api_score",
            "    args: {value: 0.5, label: [*a, *a, *a, *a, *a]}",
        ]
    )
    refused = http.post("/v1/entrypoints", json={"text": bomb})
    assert refused.status_code == 400
    assert "aliases" in refused.json()["detail"]

    deep = "name: deep\nsteps:\n  - name: s\n    task: lab_api_score\n    args:\n"
    deep += (
        "      value: 0.5\n      label: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1)
    )
    refused = http.post("/v1/entrypoints", json={"text": deep})
    assert refused.status_code == 400 and "nested deeper" in refused.json()["detail"]

    big = "name: big\ndescription: " + "y" * (300 * 1024) + "\nsteps: []\n"
    refused = http.post("/v1/entrypoints", json={"text": big})
    assert refused.status_code == 400
    assert _entry_point_count(http) == 3


def test_a_module_path_or_callable_named_as_a_task_is_refused(http: TestClient) -> None:
    for task in ("os.system", "subprocess:run", "builtins.eval", "os", "eval", "__import__"):
        text = f"name: evil\nsteps:\n  - name: s\n    task: '{task}'\n"
        response = http.post("/v1/entrypoints", json={"text": text})
        assert response.status_code == 400, (task, response.text)
        detail = response.json()["detail"]
        assert "not registered" in detail or "task" in detail, detail
    # a job cannot carry a task or code of its own either
    smuggled = {"experiment": "exp", "entry_point": "score", "task": "os:system"}
    assert http.post("/v1/jobs", json=smuggled).status_code == 400
    assert http.post("/v1/tasks", json={"name": "x", "source": "import os"}).status_code == 405
    assert _entry_point_count(http) == 3


def test_path_traversal_never_reaches_a_file_that_is_not_a_committed_artifact(
    http: TestClient, lab: TickingLab
) -> None:
    assert http.post("/v1/jobs", json={"experiment": "exp", "entry_point": "score"}).is_success
    assert lab.wait("job-1").status == "succeeded"
    assert http.get("/v1/jobs/job-1/artifacts/report").status_code == 200
    for raw in (
        "/v1/jobs/job-1/artifacts/..%2F..%2F..%2Flab.db",
        "/v1/jobs/job-1/artifacts/%2e%2e%2f%2e%2e%2f%2e%2e%2ftoken",
        "/v1/jobs/job-1/artifacts/report.json",
        "/v1/jobs/..%2Fjob-1/artifacts/report",
        "/v1/jobs/job-1%2F..%2F..%2F/artifacts/report",
    ):
        response = http.get(raw)
        assert response.status_code == 404, (raw, response.status_code)
        assert b"SQLite" not in response.content
    # A record whose stored path leaves the artifacts folder (a corrupted or forged row) is
    # not served either: the file must lie under lab/artifacts.
    with lab.store.transaction() as conn:
        conn.execute("UPDATE artifacts SET path = '../lab.db' WHERE job_id = 'job-1'")
    response = http.get("/v1/jobs/job-1/artifacts/report")
    assert response.status_code == 404 and b"SQLite" not in response.content


def test_a_flood_of_job_submits_is_rate_limited_and_bounded(
    http: TestClient, lab: TickingLab
) -> None:
    body = {"experiment": "exp", "entry_point": "score", "queue": "nowhere"}
    statuses = [http.post("/v1/jobs", json=body).status_code for _ in range(150)]
    accepted = statuses.count(201)
    assert statuses.count(429) > 0 and set(statuses) <= {201, 429}
    assert accepted < 100  # the per-client bucket (burst 40, 20/s) bounds what gets in
    assert len(lab.store.list_jobs()) == accepted


def test_an_artifact_of_a_job_outside_depends_on_is_refused(
    http: TestClient, lab: TickingLab
) -> None:
    assert http.post("/v1/experiments", json={"name": "other"}).status_code == 201
    theirs = http.post("/v1/jobs", json={"experiment": "other", "entry_point": "score"})
    assert theirs.status_code == 201
    assert lab.wait("job-1").status == "succeeded"
    stealing = {
        "experiment": "exp",
        "entry_point": "consume",
        "parameters": {"source": "${jobs.job-1.artifacts.report}"},
    }
    refused = http.post("/v1/jobs", json=stealing)
    assert refused.status_code == 400
    assert "depends_on" in refused.json()["detail"]
    assert [j.id for j in lab.store.list_jobs()] == ["job-1"]
