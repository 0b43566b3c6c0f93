"""The ledger records signed, chained entries and hands out receipts auditors check offline."""

from __future__ import annotations

import os
import sqlite3

import pytest

from sealroom.crypto.signing import SigningKey
from sealroom.errors import LedgerError
from sealroom.ledger import Ledger, Receipt, ReceiptInvalid
from sealroom.ledger.entries import GENESIS_HASH
from sealroom.ledger.keys import ledger_key_path
from sealroom.ledger.migrations import MIGRATIONS
from sealroom.workspace import Workspace
from tests.crypto.respell import respelled


def test_append_returns_receipts_that_chain_and_verify_offline(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        first = ledger.append("contract.registered", {"contract_id": "c1"})
        second = ledger.append("run.started", {"run_id": "r1", "contract_id": "c1"})
        public = ledger.public_key_b64
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.entry_hash
    # Offline: only the receipt (as JSON) and the public key.
    for receipt in (first, second):
        Receipt.model_validate_json(receipt.model_dump_json()).verify(public)
    first.check_payload({"contract_id": "c1"})


def test_receipt_fails_with_another_key_or_an_edited_field(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        receipt = ledger.append("run.completed", {"run_id": "r1"})
        public = ledger.public_key_b64
    with pytest.raises(ReceiptInvalid, match="entry 1: signature"):
        receipt.verify(SigningKey.generate().public_b64)
    with pytest.raises(ReceiptInvalid, match="entry 1: entry hash"):
        receipt.model_copy(update={"kind": "run.failed"}).verify(public)
    forged = receipt.model_copy(update={"signature": receipt.signature[:-4] + "AAA="})
    with pytest.raises(ReceiptInvalid):
        forged.verify(public)
    respelled_signature = receipt.model_copy(update={"signature": respelled(receipt.signature)})
    with pytest.raises(ReceiptInvalid, match="entry 1: signature"):
        respelled_signature.verify(public)
    with pytest.raises(ReceiptInvalid, match="payload does not match"):
        receipt.check_payload({"run_id": "r2"})


def test_find_matches_kind_and_payload_fields(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append("budget.charged", {"dataset": "a", "epsilon": 0.5})
        ledger.append("budget.charged", {"dataset": "b", "epsilon": 1.0})
        ledger.append("budget.reserved", {"dataset": "a", "epsilon": 0.5})
        found = ledger.find("budget.charged", dataset="a")
        assert [e.seq for e in found] == [1]
        assert found[0].payload == {"dataset": "a", "epsilon": 0.5}
        assert [e.seq for e in ledger.find("budget.charged")] == [1, 2]
        assert ledger.find("budget.charged", dataset="c") == []
        assert [e.kind for e in ledger.entries()] == [
            "budget.charged",
            "budget.charged",
            "budget.reserved",
        ]
        assert len(ledger.entries("budget.reserved")) == 1
        assert len(ledger) == 3
        entry = ledger.get(2)
        assert entry is not None and ledger.contains(entry.receipt())
        assert ledger.get(9) is None


def test_reopening_keeps_the_key_and_the_chain(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append("key.imported", {"package": "p"})
        public = ledger.public_key_b64
    with Ledger.open(workspace) as ledger:
        assert ledger.public_key_b64 == public
        assert ledger.append("key.released", {"package": "p"}).seq == 2
        assert ledger.verify() == 2


def test_ledger_key_is_private_to_the_owner(workspace: Workspace) -> None:
    Ledger.open(workspace).close()
    assert os.stat(ledger_key_path(workspace.keys)).st_mode & 0o777 == 0o600


def test_empty_ledger_verifies(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        assert ledger.verify() == 0
        assert ledger.entries() == []


@pytest.mark.parametrize("kind", ["", "Run.Started", "run..started", "run started", ".run"])
def test_append_refuses_malformed_kinds(workspace: Workspace, kind: str) -> None:
    with Ledger.open(workspace) as ledger, pytest.raises(LedgerError, match="kind"):
        ledger.append(kind, {})


def test_append_refuses_payloads_that_are_not_json(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger, pytest.raises(LedgerError, match="not JSON"):
        ledger.append("run.started", {"when": object()})


def test_schema_is_migrated_and_entries_are_append_only(workspace: Workspace) -> None:
    with Ledger.open(workspace) as ledger:
        ledger.append("run.started", {"run_id": "r"})
    conn = sqlite3.connect(workspace.ledger_db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE entries SET kind = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM entries")
    conn.close()


def test_unreadable_database_is_a_ledger_error(workspace: Workspace) -> None:
    workspace.ledger_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="ledger"):
        Ledger.open(workspace)
