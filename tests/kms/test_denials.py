"""The negative-case matrix: each way a release can be wrong is denied with its own reason,
recorded in the ledger, and no key bytes leave the service.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import pytest

from sealroom.attest import SoftwareAttester
from sealroom.contract.schema import Contract
from sealroom.contract.store import load_contract, save_contract
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService, ReleaseRequest
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import pipeline_digest
from sealroom.pipeline.schema import Pipeline
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, make_pipeline, store_contract

W: TypeAlias = Workspace
P: TypeAlias = dict[str, Party]
S: TypeAlias = KeyService
Case = Callable[[W, P, S, Room, bytes], ReleaseRequest]


def _import(service: KeyService, data_key: bytes, **policy: Any) -> None:
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy(**policy))


def good_contract(ws: Workspace, parties: dict[str, Party], **overrides: Any) -> None:
    store_contract(ws, parties, **overrides)


def wrong_measurement(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    room.attester = SoftwareAttester(ws, measurement="ab" * 32)
    return room.request(service)


def wrong_contract(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    return room.request(service, contract_id="another-contract")


def expired_contract(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    now = datetime.now(UTC)
    good_contract(
        ws,
        parties,
        not_before=(now - timedelta(days=10)).isoformat(),
        expires=(now - timedelta(days=1)).isoformat(),
    )
    _import(service, key)
    return room.request(service)


def missing_signature(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    store_contract(ws, parties, signers=["hospital", "lab"], registered=False)
    _import(service, key)
    return room.request(service)


def invalid_signature(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    signed = load_contract(ws, CONTRACT_ID)
    forged = {**signed.signatures, "operator": signed.signatures["hospital"]}
    save_contract(ws, signed.model_copy(update={"signatures": forged}))
    _import(service, key)
    return room.request(service)


def unregistered_contract(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    store_contract(ws, parties, registered=False)
    _import(service, key)
    return room.request(service)


def unknown_nonce(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    return room.request(service, nonce=b"x" * 32)


def expired_nonce(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    room.extra["monkeypatch"].setattr("sealroom.kms.service.NONCE_TTL_S", -1.0)
    return room.request(service)


def evidence_for_another_key(
    ws: W, parties: P, service: S, room: Room, key: bytes
) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    request = room.request(service)
    _, attacker_key = generate_ephemeral()
    return request.model_copy(update={"ephemeral_public_key": attacker_key})


def insecure_forbidden_by_policy(
    ws: W, parties: P, service: S, room: Room, key: bytes
) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key, allow_insecure=False)
    return room.request(service)


def insecure_forbidden_by_contract(
    ws: W, parties: P, service: S, room: Room, key: bytes
) -> ReleaseRequest:
    good_contract(ws, parties, room={"measurements": [], "allow_insecure": False, "tee_types": []})
    _import(service, key)
    return room.request(service)


def expired_release_policy(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key, expires=datetime.now(UTC) - timedelta(minutes=1))
    return room.request(service)


def pipeline_digest_mismatch(
    ws: W, parties: P, service: S, room: Room, key: bytes
) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    other = make_pipeline(name="something-else")
    return room.request(service, pipeline_digest=pipeline_digest(other))


def no_pipeline(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    _import(service, key)
    return room.request(service, pipeline=None)


def _violating(**changes: Any) -> Case:
    def case(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
        good_contract(ws, parties)
        _import(service, key)
        return room.request(service, pipeline_model=make_pipeline(**changes))

    return case


def no_key_for_package(ws: W, parties: P, service: S, room: Room, key: bytes) -> ReleaseRequest:
    good_contract(ws, parties)
    return room.request(service)


MATRIX: list[tuple[Case, str]] = [
    (wrong_measurement, "measurement abab"),
    (wrong_contract, "not released under contract another-contract (imported for: mnist-demo)"),
    (expired_contract, "contract mnist-demo expired at"),
    (missing_signature, "missing signature from 'operator'"),
    (invalid_signature, "signature from 'operator' does not verify"),
    (unregistered_contract, "is not registered in the ledger"),
    (unknown_nonce, "nonce was not issued by this key service"),
    (expired_nonce, "nonce expired"),
    (evidence_for_another_key, "does not bind this nonce and ephemeral public key"),
    (insecure_forbidden_by_policy, "not allowed by the key's release policy"),
    (insecure_forbidden_by_contract, "not allowed by contract mnist-demo"),
    (expired_release_policy, "the key's release policy expired"),
    (pipeline_digest_mismatch, "pipeline digest mismatch"),
    (no_pipeline, "carries no pipeline document"),
    (
        _violating(train={"optimizer": {"name": "rmsprop"}, "epochs": 1}),
        "optimizer rmsprop is not allowed",
    ),
    (
        _violating(train={"optimizer": {"name": "adam"}, "epochs": 50}),
        "epochs 50 exceed the contract's limit 5",
    ),
    (
        _violating(privacy={"epsilon": 5.0, "delta": 1e-5}),
        "epsilon 5.0 exceeds dataset mnist's limit 3.0",
    ),
    (no_key_for_package, "no key is imported for this package"),
]


@pytest.mark.parametrize(("case", "reason"), MATRIX, ids=[c.__name__ for c, _ in MATRIX])
def test_denied_with_its_own_reason_recorded_and_no_key(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
    case: Case,
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room.extra["monkeypatch"] = monkeypatch
    request = case(workspace, parties, service, room, data_key)
    with pytest.raises(KeyReleaseDenied) as denied:
        service.release(request)
    assert reason in str(denied.value)
    with Ledger.open(workspace) as ledger:
        assert ledger.entries("key.released") == []
        [entry] = ledger.entries("key.denied")
    assert reason in entry.payload["reason"]
    assert entry.payload["package_digest"] == request.package_digest
    for text in (str(denied.value), str(entry.payload)):
        assert base64.b64encode(data_key).decode() not in text
        assert data_key.hex() not in text


def test_reasons_are_all_different() -> None:
    reasons = [reason for _, reason in MATRIX]
    assert len(set(reasons)) == len(reasons)


def test_a_denied_nonce_cannot_be_retried(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
) -> None:
    request = wrong_measurement(workspace, parties, service, room, data_key)
    with pytest.raises(KeyReleaseDenied):
        service.release(request)
    room.attester = SoftwareAttester(workspace)
    with pytest.raises(KeyReleaseDenied, match="already used"):
        service.release(room.request(service, nonce=request.nonce))


def test_a_broken_contract_rule_is_a_recorded_denial(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
) -> None:
    store_contract(workspace, parties, policy_rego="package sealroom.extra\ndeny contains {")
    _import(service, data_key)
    with pytest.raises(KeyReleaseDenied, match="does not parse"):
        service.release(room.request(service))
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.denied")
    assert "does not parse" in entry.payload["reason"]


def test_a_release_guard_denies_over_budget_runs(
    workspace: Workspace, parties: dict[str, Party], room: Room, data_key: bytes
) -> None:
    """Guards plug extra checks in (the privacy budget left lives with the DP budget store)."""
    remaining = {"mnist": 1.0}

    def budget_left(contract: Contract, pipeline: Pipeline, request: ReleaseRequest) -> str | None:
        assert pipeline.privacy is not None
        for dataset in pipeline.datasets:
            if pipeline.privacy.epsilon > remaining[dataset.id]:
                return (
                    f"epsilon {pipeline.privacy.epsilon} exceeds dataset {dataset.id}'s "
                    f"remaining budget {remaining[dataset.id]}"
                )
        return None

    store_contract(workspace, parties)
    with KeyService(workspace, guards=[budget_left]) as service:
        _import(service, data_key)
        with pytest.raises(
            KeyReleaseDenied, match=r"exceeds dataset mnist's remaining budget 1\.0"
        ):
            service.release(room.request(service))
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.denied")
    assert "remaining budget" in entry.payload["reason"]
