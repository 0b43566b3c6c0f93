"""status() walks the chain like verify() but reports the first bad entry instead of raising,
and the ledger's public key is readable without its private key (ledger.pub)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sealroom.crypto.signing import SigningKey
from sealroom.ledger import ChainBroken, Ledger
from sealroom.ledger.keys import load_or_create_ledger_key, read_ledger_public_key
from sealroom.ledger.verify import chain_status

KEY = SigningKey.generate()


def _ledger(tmp_path: Path, n: int = 5) -> Path:
    db = tmp_path / "ledger.db"
    with Ledger(db, KEY) as ledger:
        for i in range(n):
            ledger.append("run.started", {"run_id": f"run-{i}"})
    return db


def _edit(db: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute(sql, args)
    conn.close()


def _status_and_verify(db: Path) -> tuple[int | None, int | None]:
    with Ledger(db, KEY) as ledger:
        status = ledger.status()
        try:
            ledger.verify()
            raised = None
        except ChainBroken as exc:
            raised = exc.seq
    return status.first_bad, raised


def test_an_honest_ledger_reports_every_entry_verified(tmp_path: Path) -> None:
    with Ledger(_ledger(tmp_path), KEY) as ledger:
        status = ledger.status()
    assert status.verified and status.entries == 5 and status.reason is None


def test_an_edited_payload_is_the_first_bad_entry_as_verify_says(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    _edit(db, "UPDATE entries SET payload = ? WHERE seq = 3", '{"run_id":"forged"}')
    assert _status_and_verify(db) == (3, 3)


def test_a_deleted_entry_is_reported_missing(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    _edit(db, "DELETE FROM entries WHERE seq = 2")
    with Ledger(db, KEY) as ledger:
        status = ledger.status()
    assert status.first_bad == 2 and status.reason is not None and "missing" in status.reason


def test_a_forged_head_signature_is_reported_at_the_head(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    _edit(db, "UPDATE head SET signature = ?", "AAAA")
    with Ledger(db, KEY) as ledger:
        status = ledger.status()
    assert status.first_bad == 5 and not status.verified


def test_chain_status_with_the_wrong_key_names_entry_one(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    with Ledger(db, KEY) as ledger:
        rows, head = ledger._repo.snapshot()
    status = chain_status(rows, head, SigningKey.generate().public_b64)
    assert status.first_bad == 1


def test_the_public_key_is_written_beside_the_private_one(tmp_path: Path) -> None:
    assert read_ledger_public_key(tmp_path) is None
    key = load_or_create_ledger_key(tmp_path)
    assert read_ledger_public_key(tmp_path) == key.public_b64
    (tmp_path / "ledger.pub").write_text("not a key\n")
    assert read_ledger_public_key(tmp_path) is None
    assert load_or_create_ledger_key(tmp_path).public_b64 == key.public_b64
    assert read_ledger_public_key(tmp_path) == key.public_b64
