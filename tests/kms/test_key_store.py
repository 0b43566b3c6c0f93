"""Imported keys at rest: wrapped under the root key, bound to package and contract."""

from __future__ import annotations

import sqlite3

import pytest

from sealroom.attest import measure_runtime
from sealroom.kms import KeyImportError, KeyService, ReleasePolicy
from sealroom.kms.repository import MIGRATIONS, KmsRepository, NonceLimitReached, NonceState
from sealroom.kms.rootkey import ROOT_KEY_FILE, RootKey, RootKeyError
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, MODEL_DIGEST


def test_data_keys_are_never_stored_in_the_clear(
    workspace: Workspace, service: KeyService, data_key: bytes
) -> None:
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    assert data_key not in workspace.kms_db.read_bytes()
    assert (workspace.keys / ROOT_KEY_FILE).stat().st_mode & 0o077 == 0
    assert workspace.kms_db.stat().st_mode & 0o077 == 0


def test_import_is_recorded_in_the_ledger(
    workspace: Workspace, service: KeyService, data_key: bytes
) -> None:
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.imported")
    assert entry.payload["owner"] == "hospital"
    assert entry.payload["policy"]["allow_insecure"] is True
    assert data_key.hex() not in str(entry.payload)


def test_keys_survive_reopening(workspace: Workspace, data_key: bytes) -> None:
    with KeyService(workspace) as service:
        service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    with KeyService(workspace) as again:
        [record] = again.keys()
    assert record.policy == default_policy()
    root = RootKey.load_or_create(workspace.keys)
    assert root.unwrap(record.wrapped_key, DATASET_DIGEST, CONTRACT_ID) == data_key


def test_a_wrapped_key_moved_to_another_record_does_not_unwrap(
    workspace: Workspace, service: KeyService, data_key: bytes
) -> None:
    record = service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    root = RootKey.load_or_create(workspace.keys)
    with pytest.raises(RootKeyError, match="does not unwrap"):
        root.unwrap(record.wrapped_key, MODEL_DIGEST, CONTRACT_ID)
    with pytest.raises(RootKeyError):
        root.unwrap(record.wrapped_key, DATASET_DIGEST, "other")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"package_digest": MODEL_DIGEST}, "release policy names package"),
        ({"contract_id": "other"}, "release policy names contract"),
        ({"data_key": b"short"}, "data key must be 32 bytes"),
    ],
)
def test_inconsistent_imports_are_refused(
    service: KeyService, data_key: bytes, args: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {
        "package_digest": DATASET_DIGEST,
        "data_key": data_key,
        "owner": "hospital",
        "contract_id": CONTRACT_ID,
        "policy": default_policy(),
    }
    call.update(args)
    with pytest.raises(KeyImportError, match=message):
        service.import_key(**call)  # type: ignore[arg-type]


def test_only_the_owner_replaces_a_key(service: KeyService, data_key: bytes) -> None:
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    with pytest.raises(KeyImportError, match="belongs to hospital, not mallory"):
        service.import_key(DATASET_DIGEST, data_key, "mallory", CONTRACT_ID, default_policy())


def test_release_policy_makes_insecure_explicit() -> None:
    policy = default_policy(allow_insecure=True)
    assert "software" in policy.tee_types
    assert default_policy(allow_insecure=False).tee_types == ["sev-snp", "tdx"]
    with pytest.raises(ValueError, match="insecure"):
        ReleasePolicy(
            contract_id=CONTRACT_ID,
            package_digest=DATASET_DIGEST,
            measurements=[measure_runtime()],
            tee_types=["software"],
        )
    with pytest.raises(ValueError):
        default_policy(measurements=[])


def test_migrations_are_numbered_and_idempotent(workspace: Workspace) -> None:
    KmsRepository(workspace.kms_db).close()
    KmsRepository(workspace.kms_db).close()
    with sqlite3.connect(workspace.kms_db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_nonce_is_consumed_once(workspace: Workspace) -> None:
    repo = KmsRepository(workspace.kms_db)
    repo.add_nonce(b"n" * 32, expires_at=200.0, now=100.0, cap=10)
    assert repo.consume_nonce(b"n" * 32, now=150.0) is NonceState.FRESH
    assert repo.consume_nonce(b"n" * 32, now=150.0) is NonceState.USED
    repo.add_nonce(b"m" * 32, expires_at=200.0, now=100.0, cap=10)
    assert repo.consume_nonce(b"m" * 32, now=250.0) is NonceState.EXPIRED
    assert repo.consume_nonce(b"m" * 32, now=250.0) is NonceState.USED
    assert repo.consume_nonce(b"z" * 32, now=150.0) is NonceState.UNKNOWN
    repo.close()


def test_concurrent_consumers_share_one_nonce_use(workspace: Workspace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    KmsRepository(workspace.kms_db).add_nonce(b"c" * 32, expires_at=1e12, now=0.0, cap=10)

    def consume(_: int) -> NonceState:
        repo = KmsRepository(workspace.kms_db)  # own connection, as another process would
        try:
            return repo.consume_nonce(b"c" * 32, now=1.0)
        finally:
            repo.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(consume, range(8)))
    assert states.count(NonceState.FRESH) == 1
    assert states.count(NonceState.USED) == 7


def test_nonces_are_capped_and_expired_ones_purged_on_issue(workspace: Workspace) -> None:
    repo = KmsRepository(workspace.kms_db)
    for i in range(3):
        repo.add_nonce(bytes([i]) * 32, expires_at=160.0 + i, now=100.0, cap=3)
    with pytest.raises(NonceLimitReached, match="too many outstanding nonces") as refused:
        repo.add_nonce(b"x" * 32, expires_at=170.0, now=110.0, cap=3)
    assert refused.value.retry_after == pytest.approx(50.0)
    assert _nonce_rows(workspace) == 3
    # At t=161 the first two have expired: both are purged before the new one is stored.
    repo.add_nonce(b"y" * 32, expires_at=221.0, now=161.0, cap=3)
    assert _nonce_rows(workspace) == 2
    assert repo.consume_nonce(b"\x00" * 32, now=161.0) is NonceState.UNKNOWN
    repo.close()


def _nonce_rows(workspace: Workspace) -> int:
    with sqlite3.connect(workspace.kms_db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])
