"""The testbed pages and their JSON on a small lab store built for the test, and the
attacks: hostile logs, artifact paths, CSV formulas, unknown ids, a damaged job graph."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sealroom.lab.paths import LabPaths
from sealroom.workspace import Workspace
from tests.ui.serving import client
from tests.ui.testbed_lab import FORMULA, small_lab


@pytest.fixture(scope="module")
def lab_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One small lab shared by the read-only tests of this module (never mutated)."""
    ws = Workspace.create(tmp_path_factory.mktemp("testbed") / "ws")
    with small_lab(ws):
        yield ws


@pytest.fixture
def own_ws(workspace: Workspace) -> Iterator[Workspace]:
    """A lab of the test's own, for tests that damage it."""
    with small_lab(workspace):
        yield workspace


@pytest.fixture(scope="module")
def http(lab_ws: Workspace) -> TestClient:
    return client(lab_ws)


def sql(ws: Workspace, statement: str, *args: object) -> None:
    with sqlite3.connect(LabPaths.of_workspace(ws.home).db) as conn:
        conn.execute(statement, args)


def test_overview_lists_experiments_queues_workers_and_entry_points(http: TestClient) -> None:
    page = http.get("/testbed")
    assert page.status_code == 200
    assert 'href="/testbed/experiments/exp"' in page.text and "a small experiment" in page.text
    data = http.get("/api/testbed").json()
    (exp,) = data["experiments"]
    assert exp["jobs"] == 7
    assert exp["by_status"] == {"queued": 1, "succeeded": 4, "failed": 1, "cancelled": 1}
    assert {q["name"]: q["jobs_queued"] for q in data["queues"]}["nowhere"] == 1
    assert {e["name"] for e in data["entry_points"]} == {"step", "evaluate"}
    assert data["workers"] and data["server"] == {"running": False, "url": None}


def test_experiment_graph_has_a_node_per_job_coloured_by_status(http: TestClient) -> None:
    page = http.get("/testbed/experiments/exp").text
    data = http.get("/api/testbed/experiments/exp").json()
    for job in data["jobs"]:
        assert f'data-job="{job["id"]}" data-status="{job["status"]}"' in page
        assert f'href="/testbed/jobs/{job["id"]}"' in page
    assert 'data-from="job-1" data-to="job-2"' in page  # the dependency edge
    assert 'class="legend"' in page and 'data-status="failed"' in page


def test_the_graph_polls_while_a_job_is_queued(http: TestClient) -> None:
    page = http.get("/testbed/experiments/exp").text
    assert 'data-poll="/testbed/experiments/exp/live" data-every="2"' in page
    live = http.get("/testbed/experiments/exp/live")
    assert live.status_code == 200 and "<html" not in live.text
    assert 'data-job="job-7" data-status="queued"' in live.text


def test_job_page_shows_params_attempts_metrics_and_artifacts(http: TestClient) -> None:
    page = http.get("/testbed/jobs/job-1").text
    assert "train a" in page and "ran job-1" in page
    assert 'aria-label="loss:' in page  # the stepped metric drawn as a curve
    assert 'href="/testbed/jobs/job-1/artifacts/out"' in page
    data = http.get("/api/testbed/jobs/job-1").json()
    assert [p[1] for p in next(m for m in data["metrics"] if m["name"] == "loss")["points"]] == [
        1.0,
        0.5,
        pytest.approx(1 / 3),
    ]
    assert data["attempts"][0]["status"] == "succeeded"
    download = http.get("/testbed/jobs/job-1/artifacts/out")
    assert download.status_code == 200 and download.json() == {"ok": True}
    assert download.headers["content-disposition"].startswith("attachment")


def test_a_hostile_log_is_shown_escaped_without_terminal_escapes(http: TestClient) -> None:
    page = http.get("/testbed/jobs/job-1").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    assert "red text" in page
    assert "\x1b" not in http.get("/api/testbed/jobs/job-1").json()["log"]


def test_only_the_tail_of_a_long_log_is_shown(own_ws: Workspace) -> None:
    log = LabPaths.of_workspace(own_ws.home).logs / "job-1" / "1.log"
    log.write_text("".join(f"line {i}\n" for i in range(20000)))
    data = client(own_ws).get("/api/testbed/jobs/job-1").json()
    assert data["log_truncated"] and data["log"].endswith("line 19999\n")
    assert "line 0\n" not in data["log"] and len(data["log"]) <= 64 * 1024


@pytest.mark.parametrize(
    "path",
    [
        "/testbed/jobs/job-1/artifacts/..%2F..%2Flab.db",
        "/testbed/jobs/job-1/artifacts/%2Fetc%2Fpasswd",
        "/testbed/jobs/job-1/artifacts/%2E%2E",  # ".." itself (a client would fold it)
        "/testbed/jobs/job-1/artifacts/missing",
        "/testbed/jobs/..%2F..%2Fetc/artifacts/out",
    ],
)
def test_an_artifact_name_with_a_path_is_not_found(http: TestClient, path: str) -> None:
    assert http.get(path).status_code == 404


def test_an_artifact_record_pointing_outside_the_artifacts_folder_is_not_served(
    own_ws: Workspace,
) -> None:
    secret = own_ws.home / "secret.txt"
    secret.write_text("not for the dashboard")
    http = client(own_ws)
    for stored in ("../../secret.txt", str(secret)):
        sql(own_ws, "UPDATE artifacts SET path = ? WHERE job_id = 'job-1'", stored)
        response = http.get("/testbed/jobs/job-1/artifacts/out")
        assert response.status_code == 404 and "not for the dashboard" not in response.text


def test_csv_download_neutralises_formulas(http: TestClient) -> None:
    response = http.get("/api/testbed/metrics.csv?jobs=job-1,job-2")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="testbed-metrics.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:2] == ["job", "experiment"]
    assert {r[0] for r in rows[1:]} == {"job-1", "job-2"}
    assert any(r[3] == "'" + FORMULA for r in rows[1:])
    for row in rows[1:]:
        for cell in row[:6]:
            assert not cell.startswith(("=", "+", "-", "@"))


def test_compare_shows_chosen_jobs_side_by_side(http: TestClient) -> None:
    page = http.get("/testbed/compare?jobs=job-1&jobs=job-3")
    assert page.status_code == 200
    assert 'data-metric="loss"' in page.text and 'id="csv"' in page.text
    data = http.get("/api/testbed/compare?jobs=job-1,job-3").json()
    assert [c["job"]["id"] for c in data["jobs"]] == ["job-1", "job-3"]
    accuracy = next(m for m in data["metrics"] if m["name"] == "accuracy")
    assert accuracy["last"] == [pytest.approx(0.6), pytest.approx(0.6)]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/testbed/experiments/nope", 404),
        ("/api/testbed/nope", 404),
        ("/testbed/experiments/Bad%20Name", 404),
        ("/testbed/jobs/job-99", 404),
        ("/api/testbed/jobs/job-99", 404),
        ("/testbed/jobs/not-a-job", 404),
        ("/api/testbed/jobs/job-1?attempt=5", 404),
        ("/api/testbed/compare?jobs=job-1,job-99", 404),
        ("/api/testbed/metrics.csv?jobs=", 400),
    ],
)
def test_unknown_names_are_one_line_refusals(http: TestClient, path: str, status: int) -> None:
    response = http.get(path)
    assert response.status_code == status
    if path.startswith("/api/"):
        assert set(response.json()) == {"error"} and "\n" not in response.json()["error"]


def test_robustness_heatmap_and_curves_from_the_evaluation_results(http: TestClient) -> None:
    data = http.get("/api/testbed/experiments/exp").json()["robustness"]
    assert data["jobs"] == ["job-5", "job-6"] and data["eps"] == 0.2
    (pgd,) = data["heatmaps"]
    assert pgd["sources"] == ["a", "b"] and pgd["values"] == [[0.9, 0.25], [0.25, 0.9]]
    white = [c for c in data["curves"] if c["kind"] == "white-box"]
    assert {c["model"] for c in white} == {"a", "b"}
    assert white[0]["points"][0] == [0.0, 0.8]
    page = http.get("/testbed/experiments/exp").text
    assert 'data-row="a" data-column="b" data-value="0.25"' in page
    assert ">0.90</text>" in page and "robust accuracy, PGD (white-box)" in page


def test_a_dependency_cycle_and_a_missing_dependency_do_not_break_the_graph(
    own_ws: Workspace,
) -> None:
    sql(own_ws, "UPDATE jobs SET depends_on = '[\"job-2\"]' WHERE id = 'job-1'")
    sql(own_ws, "INSERT INTO edges VALUES ('job-1', 'job-2')")
    sql(own_ws, "UPDATE jobs SET depends_on = '[\"job-404\"]' WHERE id = 'job-3'")
    page = client(own_ws).get("/testbed/experiments/exp")
    assert page.status_code == 200
    assert "cycle · train a" in page.text
    assert 'data-job="job-404" data-status="missing"' in page.text
    assert 'href="/testbed/jobs/job-404"' not in page.text


def test_hostile_names_are_escaped_in_the_graph_and_tables(own_ws: Workspace) -> None:
    evil = '<svg onload="alert(1)">'
    sql(own_ws, "UPDATE jobs SET description = ?, status = ? WHERE id = 'job-1'", evil, evil)
    sql(own_ws, "UPDATE experiments SET description = ?", evil)
    http = client(own_ws)
    for path in (
        "/testbed",
        "/testbed/experiments/exp",
        "/testbed/experiments/exp/live",
        "/testbed/jobs/job-1",
    ):
        page = http.get(path)
        assert page.status_code == 200 and "<svg onload" not in page.text, path


def test_no_lab_means_an_empty_page_and_nothing_is_created(workspace: Workspace) -> None:
    http = client(workspace)
    page = http.get("/testbed")
    assert page.status_code == 200 and 'id="no-lab"' in page.text
    assert http.get("/testbed/experiments/exp").status_code == 404
    assert http.get("/api/testbed").json()["present"] is False
    assert not (workspace.home / "lab").exists()


def test_pages_never_show_the_lab_token(own_ws: Workspace) -> None:
    paths = LabPaths.of_workspace(own_ws.home)
    paths.token_file.write_text("lab-secret-token-" + "z" * 20)
    http = client(own_ws)
    for path in (
        "/testbed",
        "/api/testbed",
        "/testbed/experiments/exp",
        "/api/testbed/experiments/exp",
        "/testbed/jobs/job-1",
    ):
        assert "lab-secret-token" not in http.get(path).text


def test_json_matches_what_the_page_shows(http: TestClient) -> None:
    data = http.get("/api/testbed/jobs/job-3").json()
    page = http.get("/testbed/jobs/job-3").text
    assert data["job"]["status"] == "failed" and data["job"]["reason"] in page
    assert json.loads(json.dumps(data))["job"]["can_rerun"] is True
    assert 'data-action="/api/testbed/jobs/job-3/rerun"' in page
    assert 'data-action="/api/testbed/jobs/job-3/cancel"' not in page


def test_artifact_download_names_come_from_the_record(http: TestClient, lab_ws: Path) -> None:
    response = http.get("/testbed/jobs/job-5/artifacts/results")
    assert response.status_code == 200
    assert 'filename="robustness-a.json"' in response.headers["content-disposition"]


def test_a_queued_jobs_page_polls_its_status_and_an_ended_one_does_not(http: TestClient) -> None:
    assert 'data-poll="/testbed/jobs/job-7/live"' in http.get("/testbed/jobs/job-7").text
    assert "data-poll" not in http.get("/testbed/jobs/job-1").text
    live = http.get("/testbed/jobs/job-7/live")
    assert live.status_code == 200 and "<html" not in live.text
    assert "status-queued" in live.text
    assert http.get("/testbed/jobs/job-99/live").status_code == 404


def test_experiments_named_like_the_testbeds_own_routes_keep_their_pages(
    own_ws: Workspace,
) -> None:
    """Experiments live under /testbed/experiments/: one named "compare", "jobs" or
    "metrics.csv" is not shadowed by (and does not shadow) the compare, job and CSV routes."""
    from sealroom.lab.store import LabStore

    store = LabStore.open(LabPaths.of_workspace(own_ws.home))
    try:
        for name in ("compare", "jobs"):
            store.create_experiment(name, f"named {name}")
    finally:
        store.close()
    http = client(own_ws)
    for name in ("compare", "jobs"):
        assert f"named {name}" in http.get(f"/testbed/experiments/{name}").text
        assert http.get(f"/api/testbed/experiments/{name}").json()["name"] == name
        assert http.get(f"/testbed/experiments/{name}/live").status_code == 200
    compare = http.get("/testbed/compare").text  # still the compare route
    assert "choose jobs to compare" in compare and "named compare" not in compare
