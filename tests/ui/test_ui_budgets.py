"""The budgets page: each budget's numbers as the budget book has them (bar, legend, table
and API agree), the page never writes, key-service budgets from the ledger's mirror, and
the ε curve of each private run."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from sealroom.contract import SignedContract
from sealroom.ledger import Ledger
from sealroom.privacy.budget import BudgetBook
from sealroom.workspace import Workspace
from tests.ui.registry_world import registered, with_parties, write_receipt
from tests.ui.serving import client

BAR_PART = re.compile(r'data-part="(\w+)" data-value="([^"]+)"')
TRAJECTORY = {
    "epsilon_spent": 2.9,
    "epsilon_target": 3.0,
    "delta": 1e-5,
    "noise_multiplier": 1.2,
    "steps": 30,
    "accountant": "prv",
}


@pytest.fixture
def contract(workspace: Workspace, tmp_path: Path) -> SignedContract:
    return registered(with_parties(workspace), tmp_path)


def test_bar_legend_table_and_api_carry_the_books_numbers(
    workspace: Workspace, contract: SignedContract
) -> None:
    with BudgetBook(workspace) as book:
        book.reserve("run-a", contract.contract, 8.0, 1e-5)
        book.settle("run-a", 6.5)
        book.reserve("run-b", contract.contract, 4.0, 1e-5)
        expected = book.summary()[0]
    http = client(workspace)
    (api,) = http.get("/api/budgets").json()["budgets"]
    assert (api["total_epsilon"], api["spent"], api["reserved"], api["remaining"]) == (
        16.0,
        6.5,
        4.0,
        5.5,
    )
    assert api["remaining"] == expected.remaining and api["spent_delta"] == expected.spent_delta
    assert [(r["run_id"], r["state"]) for r in api["runs"]] == [
        ("run-a", "charged"),
        ("run-b", "reserved"),
    ]
    page = http.get("/budgets").text
    bar = {name: float(value) for name, value in BAR_PART.findall(page)}
    assert bar == {"spent": 6.5, "reserved": 4.0, "remaining": 5.5}
    assert "spent 6.5" in page and "reserved 4" in page and "remaining 5.5" in page  # legend
    assert 'data-field="remaining">5.5<' in page and 'data-field="total_epsilon">16<' in page


def test_the_page_reads_without_writing(workspace: Workspace, contract: SignedContract) -> None:
    """An expired reservation counts as charged on the page, as the next writer will record
    it, but the page itself appends nothing and changes no budget row."""
    with BudgetBook(workspace, clock=lambda: 1000.0) as book:
        book.reserve("run-dead", contract.contract, 5.0, 1e-5)
    with Ledger.open(workspace) as ledger:
        before = len(ledger)
    db = workspace.home / "budget.db"
    rows_before = _charges(db)
    (api,) = client(workspace).get("/api/budgets").json()["budgets"]
    assert (api["spent"], api["reserved"]) == (5.0, 0.0)
    with Ledger.open(workspace) as ledger:
        assert len(ledger) == before
    assert _charges(db) == rows_before


def _charges(db: Path) -> list[tuple[object, ...]]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM charges").fetchall()
    finally:
        conn.close()


def test_a_key_service_budget_is_shown_from_the_ledgers_mirror(
    workspace: Workspace, tmp_path: Path
) -> None:
    with_parties(workspace)
    signed = registered(workspace, tmp_path, datasets=[_remote_dataset()])
    url = "https://kms.hospital.example"
    with Ledger.open(workspace) as ledger:
        for run_id, eps in (("run-1", 3.0), ("run-2", 2.0)):
            ledger.append(
                "budget.mirrored",
                {
                    "op": "reserve",
                    "key_service": url,
                    "run_id": run_id,
                    "contract_id": signed.id,
                    "epsilon": eps,
                    "delta": 1e-5,
                    "kept": {"datasets": ["mnist"], "max_runtime_s": 1800},
                },
            )
        ledger.append(
            "budget.mirrored",
            {
                "op": "settle",
                "key_service": url,
                "run_id": "run-1",
                "contract_id": signed.id,
                "spent_epsilon": 2.5,
                "charged": {"charged_epsilon": 3.0},
            },
        )
    (api,) = client(workspace).get("/api/budgets").json()["budgets"]
    assert api["source"].startswith(f"key service {url}")
    assert (api["spent"], api["reserved"], api["remaining"]) == (3.0, 2.0, 11.0)


def _remote_dataset() -> dict[str, object]:
    return {
        "id": "mnist",
        "provider": "hospital",
        "package_digest": "sha256:" + "0" * 64,
        "key_service": "https://kms.hospital.example",
        "declaration_digest": "sha256:" + "2" * 64,
        "privacy": {
            "per_run_epsilon": 8.0,
            "per_run_delta": 1e-5,
            "total_epsilon": 16.0,
            "total_delta": 2e-5,
        },
    }


def test_the_epsilon_curve_comes_from_the_public_run_record(workspace: Workspace) -> None:
    privacy = {
        **TRAJECTORY,
        "epochs": 3,
        "planned_steps": 30,
        "epsilon_trajectory": [[0, 0.0], [10, 1.1], [20, 1.9], [30, 2.6]],
    }
    write_receipt(workspace, "run-dp", "c1", privacy)
    write_receipt(workspace, "run-plain", "c1", None)
    http = client(workspace)
    (curve,) = http.get("/api/budgets").json()["curves"]
    assert curve["run_id"] == "run-dp" and curve["x_label"] == "epoch"
    assert curve["points"] == [[0.0, 0.0], [1.0, 1.1], [2.0, 1.9], [3.0, 2.6]]
    page = http.get("/budgets").text
    assert 'id="curve-run-dp"' in page and "<polyline" in page
    assert page.count("<circle") == 4


def test_an_older_run_uses_the_decrypted_report_only_when_its_digest_matches(
    workspace: Workspace, tmp_path: Path
) -> None:
    report = json.dumps(
        {"epochs": 2, "planned_steps": 20, "epsilon_trajectory": [[0, 0.0], [10, 1.0], [20, 1.7]]}
    ).encode()
    run = write_receipt(workspace, "run-old", "c1", TRAJECTORY)
    record = run.record.model_copy(
        update={
            "outputs": [
                run.record.outputs[0].model_copy(
                    update={"sha256": hashlib.sha256(report).hexdigest()}
                )
            ]
        }
    )
    run.model_copy(update={"record": record}).save(workspace.runs / "run-old")
    outputs = tmp_path / "decrypted"
    (outputs / "run-old").mkdir(parents=True)
    (outputs / "run-old" / "privacy_report.json").write_bytes(report)
    (curve,) = client(workspace, outputs=(outputs,)).get("/api/budgets").json()["curves"]
    assert curve["points"] == [[0.0, 0.0], [1.0, 1.0], [2.0, 1.7]]
    assert "decrypted" in curve["source"]
    (outputs / "run-old" / "privacy_report.json").write_bytes(report.replace(b"1.7", b"0.1"))
    (curve,) = client(workspace, outputs=(outputs,)).get("/api/budgets").json()["curves"]
    assert curve["points"] == [[0.0, 0.0], [30.0, 2.9]] and curve["x_label"] == "step"
    assert "only the final" in curve["source"]


def test_hostile_run_folders_and_receipts_do_not_break_the_page(workspace: Workspace) -> None:
    (workspace.runs / "bad-receipt").mkdir(parents=True)
    (workspace.runs / "bad-receipt" / "receipt.json").write_text("<script>alert(1)</script>")
    write_receipt(workspace, "run-x", "c1", {**TRAJECTORY, "epsilon_trajectory": "junk"})
    http = client(workspace)
    page = http.get("/budgets")
    assert page.status_code == 200 and "<script>alert" not in page.text
    data = http.get("/api/budgets").json()
    assert any("bad-receipt" in p for p in data["problems"])
    assert data["curves"][0]["points"] == [[0.0, 0.0], [30.0, 2.9]]


def test_a_hostile_run_id_inside_a_receipt_is_escaped_in_the_chart(workspace: Workspace) -> None:
    evil = '<script>alert(1)</script>"><svg onload=alert(2)>'
    run = write_receipt(workspace, "run-evil", "c1", TRAJECTORY)
    record = run.record.model_copy(update={"run_id": evil})
    run.model_copy(update={"record": record}).save(workspace.runs / "run-evil")
    page = client(workspace).get("/budgets").text
    assert "<script>alert(1)" not in page and "<svg onload" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
