"""`sealroom ledger ...` through typer's runner: verify, show, public key, offline receipts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

runner = CliRunner()


def _fill(ws: Workspace) -> None:
    with Ledger.open(ws) as ledger:
        receipt = ledger.append("contract.registered", {"contract_id": "c1"})
        ledger.append("run.started", {"run_id": "r1"})
        ledger.append("run.completed", {"run_id": "r1"})
    (ws.home / "receipt.json").write_text(receipt.model_dump_json())


def test_verify_reports_entries(workspace: Workspace) -> None:
    _fill(workspace)
    result = runner.invoke(app, ["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "3 entries" in result.output
    report = json.loads(runner.invoke(app, ["ledger", "verify", "--json"]).stdout)
    assert report["verified"] is True and report["entries"] == 3


def test_head_is_printed_pinned_and_checked(workspace: Workspace) -> None:
    _fill(workspace)
    result = runner.invoke(app, ["ledger", "head"])
    assert result.exit_code == 0, result.output
    pin = result.stdout.strip()
    assert pin.startswith("3:") and len(pin) == 2 + 64
    report = json.loads(runner.invoke(app, ["ledger", "head", "--json"]).stdout)
    assert report["head"] == pin and report["seq"] == 3
    result = runner.invoke(app, ["ledger", "verify", "--expect-head", pin])
    assert result.exit_code == 0, result.output
    assert f"head: {pin}" in result.stdout
    with Ledger.open(workspace) as ledger:
        ledger.append("run.started", {"run_id": "r2"})
    result = runner.invoke(app, ["ledger", "verify", "--expect-head", pin, "--json"])
    assert result.exit_code == 0, result.output  # a longer ledger still holds the pinned entry
    assert json.loads(result.stdout)["expected_head"] == pin
    forked = "3:" + "0" * 64
    result = runner.invoke(app, ["ledger", "verify", "--expect-head", forked])
    assert result.exit_code == 1
    assert "ledger entry 3 in the ledger at" in result.stderr
    result = runner.invoke(app, ["ledger", "verify", "--expect-head", "3"])
    assert result.exit_code == 1 and "is not SEQ:HASH" in result.stderr


def test_head_of_an_empty_ledger_is_refused(workspace: Workspace) -> None:
    result = runner.invoke(app, ["ledger", "head"])
    assert result.exit_code == 1 and "the ledger is empty" in result.stderr


def test_verify_names_the_first_bad_entry(workspace: Workspace) -> None:
    _fill(workspace)
    conn = sqlite3.connect(workspace.ledger_db)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute('UPDATE entries SET payload = \'{"run_id":"r2"}\' WHERE seq = 2')
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["ledger", "verify"])
    assert result.exit_code == 1
    assert "ledger entry 2 was edited" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_filters_by_kind_and_emits_json(workspace: Workspace) -> None:
    _fill(workspace)
    result = runner.invoke(app, ["ledger", "show"])
    assert result.exit_code == 0, result.output
    assert "run.completed" in result.output
    entries = json.loads(
        runner.invoke(app, ["ledger", "show", "--kind", "run.started", "--json"]).stdout
    )
    assert [(e["seq"], e["payload"]) for e in entries] == [(2, {"run_id": "r1"})]
    last = json.loads(runner.invoke(app, ["ledger", "show", "--last", "1", "--json"]).stdout)
    assert [e["seq"] for e in last] == [3]


def test_public_key_and_offline_receipt_check(workspace: Workspace, tmp_path: Path) -> None:
    _fill(workspace)
    pub = tmp_path / "ledger.pub"
    result = runner.invoke(app, ["ledger", "public-key", "--out", str(pub)])
    assert result.exit_code == 0, result.output
    key = json.loads(runner.invoke(app, ["ledger", "public-key", "--json"]).stdout)["public_key"]
    assert pub.read_text().strip() == key
    receipt = str(workspace.home / "receipt.json")
    result = runner.invoke(app, ["ledger", "check-receipt", receipt, "--key-file", str(pub)])
    assert result.exit_code == 0, result.output
    assert "ledger entry 1 (contract.registered)" in result.output

    other = Workspace.create(tmp_path / "other")
    with Ledger.open(other) as ledger:
        wrong = ledger.public_key_b64
    result = runner.invoke(app, ["ledger", "check-receipt", receipt, "--key", wrong])
    assert result.exit_code == 1
    assert "signature does not verify" in result.stderr


def test_check_receipt_needs_a_key_and_a_receipt(workspace: Workspace, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ledger", "check-receipt", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "--key or --key-file" in result.stderr
    result = runner.invoke(app, ["ledger", "check-receipt", str(tmp_path / "r.json"), "--key", "x"])
    assert result.exit_code == 1
    assert "not a readable receipt" in result.stderr


def test_help_shows_an_example() -> None:
    for command in ("verify", "head", "show", "public-key", "check-receipt"):
        result = runner.invoke(app, ["ledger", command, "--help"])
        assert result.exit_code == 0
        assert "Example: sealroom ledger" in result.output
