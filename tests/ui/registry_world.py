"""Small workspaces for the overview, contracts, ledger and budgets pages: three parties,
contracts proposed and signed from the docs' template, ledger entries, budgets, run receipts.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from sealroom.contract import SignedContract, propose_contract, sign_contract
from sealroom.crypto.identity import create_party
from sealroom.ledger import Ledger
from sealroom.room.receipt import RunReceipt
from sealroom.workspace import Workspace

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "contract-template.yaml"
PARTIES = (("hospital", "provider"), ("lab", "consumer"), ("operator", "operator"))
ZERO_KEY = base64.b64encode(bytes(32)).decode()


def with_parties(ws: Workspace) -> Workspace:
    for name, role in PARTIES:
        create_party(ws, name, role)  # type: ignore[arg-type]
    return ws


def draft(folder: Path, **overrides: Any) -> Path:
    """The docs' contract template with top-level overrides, as a YAML file."""
    data = {**yaml.safe_load(TEMPLATE.read_text()), **overrides}
    path = folder / f"draft-{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def proposed(ws: Workspace, folder: Path, **overrides: Any) -> SignedContract:
    """Proposed by the lab: the hospital and the operator have not signed yet."""
    return propose_contract(ws, draft(folder, **overrides), "lab")


def registered(ws: Workspace, folder: Path, **overrides: Any) -> SignedContract:
    """Signed by every party, hence registered in the ledger."""
    signed = proposed(ws, folder, **overrides)
    sign_contract(ws, signed.id, "hospital")
    return sign_contract(ws, signed.id, "operator")


def append(ws: Workspace, n: int, kind: str = "test.event") -> None:
    with Ledger.open(ws) as ledger:
        for i in range(n):
            ledger.append(kind, {"i": i, "note": f"entry {i}"})


def tamper(ws: Workspace, sql: str, *args: object) -> None:
    """Edit ledger.db behind the ledger's back (its triggers dropped first), as an attacker
    with the file would."""
    conn = sqlite3.connect(ws.ledger_db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS entries_no_update")
        conn.execute("DROP TRIGGER IF EXISTS entries_no_delete")
        conn.execute(sql, args)
    finally:
        conn.close()


def write_receipt(
    ws: Workspace, run_id: str, contract_id: str, privacy: dict[str, Any] | None
) -> RunReceipt:
    """A run receipt with the fields the budgets page reads (not a verifiable one: the page
    does not verify receipts; the runs page does)."""
    digest = "sha256:" + "0" * 64
    record = {
        "run_id": run_id,
        "contract_id": contract_id,
        "contract_digest": digest,
        "pipeline": "p",
        "pipeline_digest": digest,
        "datasets": {"mnist": digest},
        "model_digest": None,
        "room": {"tee_type": "software", "measurement": "00", "insecure": True},
        "insecure": True,
        "consumer": "lab",
        "consumer_fingerprint": "0" * 32,
        "outputs": [
            {
                "name": "privacy_report.json",
                "kind": "privacy_report",
                "size": 1,
                "sha256": "0" * 64,
                "sealed_sha256": "0" * 64,
            }
        ],
        "outputs_key_sha256": "0" * 64,
        "privacy": privacy,
        "key_custody": "embedded",
        "sandbox": "none",
        "started": "2026-01-01T00:00:00Z",
        "ended": "2026-01-01T00:01:00Z",
        "room_key": ZERO_KEY,
        "room_evidence": {"tee_type": "software", "payload": "", "signature": "", "signer": ""},
    }
    receipt = {
        "seq": 1,
        "kind": "run.completed",
        "timestamp": "2026-01-01T00:01:00.000000Z",
        "prev_hash": "0" * 64,
        "payload_sha256": "0" * 64,
        "entry_hash": "0" * 64,
        "signature": "",
    }
    run = RunReceipt.model_validate(
        {"record": record, "receipt": receipt, "ledger_public_key": ZERO_KEY}
    )
    folder = ws.runs / run_id
    folder.mkdir(parents=True)
    run.save(folder)
    return run
