"""The key service's SQLite repository: wrapped keys, release policies, nonces and releases.

Same shape as the ledger's: WAL mode, numbered migrations recorded in ``PRAGMA
user_version``, writes under ``BEGIN IMMEDIATE`` so a nonce is consumed exactly once even
when several processes serve releases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from sealroom.errors import SealroomError
from sealroom.kms.models import KeyRecord, ReleasePolicy
from sealroom.sqlite_store import SqliteStore

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: keys (one per package and contract) and issued nonces.
    (
        """CREATE TABLE keys (
            package_digest TEXT NOT NULL,
            contract_id TEXT NOT NULL,
            owner TEXT NOT NULL,
            policy TEXT NOT NULL,
            wrapped_key BLOB NOT NULL,
            imported_at TEXT NOT NULL,
            PRIMARY KEY (package_digest, contract_id)
        )""",
        """CREATE TABLE nonces (
            nonce BLOB PRIMARY KEY,
            expires_at REAL NOT NULL,
            used_at REAL
        )""",
    ),
    # 2: expired nonces are swept by expiry.
    ("CREATE INDEX nonces_expiry ON nonces(expires_at)",),
    # 3: one row per key released to a run: a contract's max_runs counts distinct runs.
    (
        """CREATE TABLE releases (
            contract_id TEXT NOT NULL,
            package_digest TEXT NOT NULL,
            run_id TEXT NOT NULL,
            released_at REAL NOT NULL,
            PRIMARY KEY (contract_id, package_digest, run_id)
        )""",
    ),
)


class KmsStoreError(SealroomError):
    """The key service database is unreadable or unavailable."""


class NonceLimitReached(SealroomError):
    """The service holds as many unexpired nonces as it allows; retry after one expires."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NonceState(Enum):
    FRESH = "fresh"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


class ReleaseClaim(Enum):
    CLAIMED = "claimed"
    RUN_REPEATED = "run repeated"
    LIMIT_REACHED = "limit reached"


class KmsRepository:
    """Rows in, records out; crypto and policy live in :mod:`sealroom.kms.service`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store = SqliteStore(
            path, MIGRATIONS, KmsStoreError, "key service database", private=True
        )
        self._tx = self._store.transaction

    def close(self) -> None:
        self._store.close()

    def put_key(self, record: KeyRecord) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO keys (package_digest, contract_id, owner, policy, "
                "wrapped_key, imported_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.package_digest,
                    record.contract_id,
                    record.owner,
                    record.policy.model_dump_json(),
                    record.wrapped_key,
                    record.imported_at.isoformat(),
                ),
            )

    def get_key(self, package_digest: str, contract_id: str) -> KeyRecord | None:
        with self._tx("DEFERRED") as conn:
            row = conn.execute(
                "SELECT package_digest, contract_id, owner, policy, wrapped_key, imported_at "
                "FROM keys WHERE package_digest = ? AND contract_id = ?",
                (package_digest, contract_id),
            ).fetchone()
        return _record(row) if row else None

    def keys(self, package_digest: str | None = None) -> list[KeyRecord]:
        with self._tx("DEFERRED") as conn:
            rows = conn.execute(
                "SELECT package_digest, contract_id, owner, policy, wrapped_key, imported_at "
                "FROM keys WHERE ? IS NULL OR package_digest = ? "
                "ORDER BY package_digest, contract_id",
                (package_digest, package_digest),
            ).fetchall()
        return [_record(row) for row in rows]

    def add_nonce(self, nonce: bytes, expires_at: float, now: float, cap: int) -> None:
        """Store a fresh nonce unless ``cap`` unexpired ones (used or not) are held.

        Expired nonces are deleted first, so the table never holds more than ``cap`` rows
        and a flood of nonce requests costs the service nothing once the cap is reached.
        """
        with self._tx() as conn:
            conn.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
            held, first_expiry = conn.execute(
                "SELECT COUNT(*), MIN(expires_at) FROM nonces"
            ).fetchone()
            if held >= cap:
                raise NonceLimitReached(
                    f"too many outstanding nonces ({held} unexpired, the cap is {cap})",
                    retry_after=max(0.0, first_expiry - now),
                )
            conn.execute(
                "INSERT INTO nonces (nonce, expires_at, used_at) VALUES (?, ?, NULL)",
                (nonce, expires_at),
            )

    def consume_nonce(self, nonce: bytes, now: float) -> NonceState:
        """Mark the nonce used (once) and say what state it was in."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT expires_at, used_at FROM nonces WHERE nonce = ?", (nonce,)
            ).fetchone()
            if row is None:
                return NonceState.UNKNOWN
            if row[1] is not None:
                return NonceState.USED
            conn.execute("UPDATE nonces SET used_at = ? WHERE nonce = ?", (now, nonce))
            return NonceState.EXPIRED if now >= row[0] else NonceState.FRESH

    def claim_release(
        self,
        contract_id: str,
        package_digest: str,
        run_id: str,
        max_runs: int | None,
        now: float,
    ) -> ReleaseClaim:
        """Record that ``run_id`` receives this package's key, unless it already did or
        ``max_runs`` runs already have; counted and written in one transaction, so
        concurrent releases cannot both take the last run."""
        with self._tx() as conn:
            seen = conn.execute(
                "SELECT 1 FROM releases WHERE contract_id = ? AND package_digest = ? "
                "AND run_id = ?",
                (contract_id, package_digest, run_id),
            ).fetchone()
            if seen is not None:
                return ReleaseClaim.RUN_REPEATED
            if max_runs is not None:
                (runs,) = conn.execute(
                    "SELECT COUNT(*) FROM releases WHERE contract_id = ? AND package_digest = ?",
                    (contract_id, package_digest),
                ).fetchone()
                if runs >= max_runs:
                    return ReleaseClaim.LIMIT_REACHED
            conn.execute(
                "INSERT INTO releases (contract_id, package_digest, run_id, released_at) "
                "VALUES (?, ?, ?, ?)",
                (contract_id, package_digest, run_id, now),
            )
            return ReleaseClaim.CLAIMED

    def drop_release(self, contract_id: str, package_digest: str, run_id: str) -> None:
        """Undo a claim whose key never left the service (sealing it failed)."""
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM releases WHERE contract_id = ? AND package_digest = ? AND run_id = ?",
                (contract_id, package_digest, run_id),
            )


def _record(row: tuple[str, str, str, str, bytes, str]) -> KeyRecord:
    return KeyRecord(
        package_digest=row[0],
        contract_id=row[1],
        owner=row[2],
        policy=ReleasePolicy.model_validate_json(row[3]),
        wrapped_key=bytes(row[4]),
        imported_at=datetime.fromisoformat(row[5]).astimezone(UTC),
    )
