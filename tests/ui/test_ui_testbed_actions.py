"""Cancel and rerun from the dashboard: refused without the token (nothing changes), done
with it, through the lab's store when no server runs and through its API when one does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sealroom.lab.paths import LabPaths
from sealroom.lab.spec import JobRequest
from sealroom.lab.store import LabStore
from sealroom.workspace import Workspace
from tests.lab.lab_api_helpers import api_client, seed_catalogue, served, ticking_lab
from tests.ui.serving import AUTH, client
from tests.ui.testbed_lab import small_lab


@pytest.fixture
def own_ws(workspace: Workspace) -> Iterator[Workspace]:
    with small_lab(workspace):
        yield workspace


def status_of(ws: Workspace, job_id: str) -> str:
    store = LabStore(LabPaths.of_workspace(ws.home), readonly=True)
    try:
        return store.get_job(job_id).status
    finally:
        store.close()


def test_actions_without_the_token_are_refused_and_change_nothing(own_ws: Workspace) -> None:
    http = client(own_ws)
    for action in ("cancel", "rerun"):
        response = http.post(f"/api/testbed/jobs/job-7/{action}")
        assert response.status_code == 401
    assert status_of(own_ws, "job-7") == "queued"
    assert http.get("/api/testbed").json()["experiments"][0]["jobs"] == 7


def test_cancel_then_rerun_through_the_store_without_a_server(own_ws: Workspace) -> None:
    http = client(own_ws)
    cancelled = http.post("/api/testbed/jobs/job-7/cancel", headers=AUTH)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "action": "cancel",
        "job": "job-7",
        "status": "cancelled",
        "new_job": None,
        "via": "lab store",
    }
    assert status_of(own_ws, "job-7") == "cancelled"
    rerun = http.post("/api/testbed/jobs/job-3/rerun", headers=AUTH).json()
    assert rerun["new_job"] == "job-8" and rerun["status"] == "queued"
    page = http.get("/testbed/jobs/job-8").text
    assert "job-3" in page and 'data-action="/api/testbed/jobs/job-8/cancel"' in page


def test_an_action_on_an_unknown_or_running_job_is_a_one_line_refusal(own_ws: Workspace) -> None:
    http = client(own_ws)
    assert http.post("/api/testbed/jobs/job-99/cancel", headers=AUTH).status_code == 404
    assert http.post("/api/testbed/jobs/nope/rerun", headers=AUTH).status_code == 404
    refused = http.post("/api/testbed/jobs/job-7/rerun", headers=AUTH)
    assert refused.status_code == 400 and "once it has ended" in refused.json()["error"]


def test_actions_go_through_a_running_lab_server(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ticking_lab(workspace.home / "lab", monkeypatch) as lab:
        api = api_client(lab)
        seed_catalogue(api)
        request = JobRequest(experiment="exp", entry_point="score", queue="nowhere")
        job_id = lab.scheduler.submit(request).id
        with served(lab):
            http = client(workspace)
            assert http.get("/api/testbed").json()["server"]["running"] is True
            assert http.post(f"/api/testbed/jobs/{job_id}/cancel").status_code == 401
            assert lab.store.get_job(job_id).status == "queued"
            done = http.post(f"/api/testbed/jobs/{job_id}/cancel", headers=AUTH).json()
            assert done["via"] == "lab server" and done["status"] == "cancelled"
            assert lab.store.get_job(job_id).status == "cancelled"
            again = http.post(f"/api/testbed/jobs/{job_id}/rerun", headers=AUTH).json()
            assert again["via"] == "lab server"
            assert lab.store.get_job(again["new_job"]).rerun_of == job_id
            token = lab.paths.token_file.read_text().strip()
            for path in ("/testbed", "/api/testbed", f"/testbed/jobs/{job_id}"):
                assert token not in http.get(path).text
