"""The overview: the workspace, parties (public fingerprints), counts, and what needs
attention, each item linking to the page that explains it."""

from __future__ import annotations

from pathlib import Path

from sealroom.crypto.identity import list_identities
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.workspace import Workspace
from tests.ui.registry_world import append, proposed, registered, tamper, with_parties
from tests.ui.serving import client


def _attention(ws: Workspace) -> list[tuple[str, str, str]]:
    return [
        (a["what"], a["severity"], a["link"])
        for a in client(ws).get("/api/overview").json()["attention"]
    ]


def test_a_healthy_workspace_needs_nothing(workspace: Workspace, tmp_path: Path) -> None:
    registered(with_parties(workspace), tmp_path)
    http = client(workspace)
    data = http.get("/api/overview").json()
    assert data["workspace"] == str(workspace.home)
    assert data["attention"] == [] and data["ledger_verified"] is True
    fingerprints = {i.name: i.fingerprint for i in list_identities(workspace)}
    assert {p["name"]: p["fingerprint"] for p in data["parties"]} == fingerprints
    with Ledger.open(workspace) as ledger:
        entries = len(ledger)
    assert data["counts"] == {
        "parties": 3,
        "contracts": 1,
        "runs": 0,
        "ledger_entries": entries,
        "packages": 0,
        "lab_experiments": None,
        "lab_jobs": None,
    }
    page = http.get("/").text
    assert 'id="attention-none"' in page
    for name, fingerprint in fingerprints.items():
        assert name in page and fingerprint in page


def test_a_broken_ledger_links_to_its_first_bad_entry(workspace: Workspace) -> None:
    append(workspace, 6)
    tamper(workspace, "UPDATE entries SET payload = ? WHERE seq = 4", '{"i":0}')
    assert ("ledger", "bad", "/ledger/4") in _attention(workspace)
    assert 'href="/ledger/4"' in client(workspace).get("/").text


def test_failed_runs_the_last_five(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        for i in range(7):
            ledger.append(
                "run.failed",
                {"run_id": f"run-{i}", "stage": "train", "reason": "<b>boom</b>"},
            )
    runs = [link for what, _, link in _attention(workspace) if what == "run"]
    assert runs == [f"/runs/run-{i}" for i in (6, 5, 4, 3, 2)]
    page = client(workspace).get("/").text
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt;" in page


def test_budgets_contracts_and_jobs_that_need_attention(
    workspace: Workspace, tmp_path: Path
) -> None:
    with_parties(workspace)
    signed = registered(workspace, tmp_path)
    proposed(workspace, tmp_path, id="unsigned-one")
    registered(workspace, tmp_path, id="short-lived", expires="3d")
    with BudgetBook(workspace) as book:
        book.reserve("run-a", signed.contract, 8.0, 1e-5)
        book.settle("run-a", 8.0)
        book.reserve("run-b", signed.contract, 5.0, 1e-5)  # 13 of 16: 81 %
    _failed_lab_job(workspace)
    items = _attention(workspace)
    assert ("budget", "warn", "/budgets#budget-mnist-demo-mnist") in items
    assert ("contract", "warn", "/contracts/unsigned-one") in items
    assert ("contract", "warn", "/contracts/short-lived") in items
    assert ("job", "bad", "/testbed/jobs/job-1") in items
    assert not any(link == "/contracts/mnist-demo" for _, _, link in items)
    counts = client(workspace).get("/api/overview").json()["counts"]
    assert counts["contracts"] == 3 and counts["lab_jobs"] == 1 and counts["lab_experiments"] == 1


def _failed_lab_job(ws: Workspace) -> None:
    from sealroom.lab.paths import LabPaths
    from sealroom.lab.store import LabStore
    from sealroom.lab.store_jobs import end_job, insert_job

    store = LabStore.open(LabPaths.of_workspace(ws.home))
    try:
        store.create_experiment("exp")
        fields = {
            "experiment": "exp",
            "entry_point": "train",
            "entry_point_version": 1,
            "parameters": {},
            "queue": "default",
            "depends_on": [],
            "allow_failure": False,
            "timeout_s": None,
            "max_retries": 0,
            "description": "",
            "seed": 0,
        }
        with store.transaction() as conn:
            job_id = insert_job(conn, 1, fields, 0.0)
            end_job(conn, job_id, "failed", "out of memory", 1.0)
    finally:
        store.close()


def test_these_pages_only_read(workspace: Workspace) -> None:
    """No action lives here: a POST without the token is refused by the guard, and with it
    there is still nothing to do."""
    from tests.ui.serving import AUTH

    http = client(workspace)
    for url in ("/api/overview", "/api/contracts", "/api/ledger", "/api/budgets"):
        assert http.post(url).status_code == 401, url
        assert http.post(url, headers=AUTH).status_code == 405, url
