"""The key service enforces the contract's pins: the consumer's pipeline signature, a pinned
pipeline digest and max_runs. Each refusal is a key.denied entry with its own reason."""

from __future__ import annotations

from typing import Any

import pytest

from sealroom.contract.canonical import contract_digest
from sealroom.contract.pipeline_signature import PipelineSignature, sign_pipeline, signed_message
from sealroom.crypto.identity import Party
from sealroom.crypto.signing import b64
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import pipeline_digest
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    consumer_signature,
    contract_data,
    make_contract,
    make_pipeline,
    store_contract,
)

OTHER = make_pipeline(name="operator-choice")


def _setup(
    ws: Workspace, parties: dict[str, Party], service: KeyService, key: bytes, **pins: Any
) -> None:
    constraints = {**contract_data()["constraints"], **pins}
    store_contract(ws, parties, constraints=constraints)
    service.import_key(DATASET_DIGEST, key, "hospital", CONTRACT_ID, default_policy())


def _denials(ws: Workspace) -> list[str]:
    with Ledger.open(ws) as ledger:
        return [str(e.payload["reason"]) for e in ledger.entries("key.denied")]


def _released(ws: Workspace) -> int:
    with Ledger.open(ws) as ledger:
        return len(ledger.entries("key.released"))


def _operator_signature(ws: Workspace, parties: dict[str, Party]) -> PipelineSignature:
    """The operator signs the pipeline it substituted, posing as a signer."""
    from sealroom.contract.store import load_contract

    contract = load_contract(ws, CONTRACT_ID).contract
    digest, sha = pipeline_digest(make_pipeline()), contract_digest(contract)
    signature = parties["operator"].sign(signed_message(CONTRACT_ID, sha, digest))
    return PipelineSignature(
        contract_id=CONTRACT_ID,
        contract_digest=sha,
        pipeline_digest=digest,
        signer="operator",
        signature=b64(signature),
    )


def _for_another_contract(parties: dict[str, Party]) -> PipelineSignature:
    ids = {n: p.identity for n, p in parties.items()}
    other = make_contract(ids, id="another-contract")
    return sign_pipeline(other, pipeline_digest(make_pipeline()), parties["lab"])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ws, parties: None, "carries no signature from the consumer 'lab'"),
        (_operator_signature, "signed by 'operator', not by the contract's consumer 'lab'"),
        (lambda ws, parties: _for_another_contract(parties), "is for contract another-contract"),
        (
            lambda ws, parties: consumer_signature(ws, pipeline_digest(OTHER)),
            "the pipeline signature covers",
        ),
    ],
    ids=["unsigned", "operator", "another-contract", "another-digest"],
)
def test_a_pipeline_the_consumer_did_not_sign_for_this_contract_gets_no_key(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
    make: Any,
    reason: str,
) -> None:
    _setup(workspace, parties, service, data_key)
    request = room.request(service, pipeline_signature=make(workspace, parties))
    with pytest.raises(KeyReleaseDenied, match=reason):
        service.release(request)
    assert _released(workspace) == 0
    [denied] = _denials(workspace)
    assert reason in denied


def test_a_pinned_contract_releases_only_to_its_pipeline(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
) -> None:
    pinned = pipeline_digest(make_pipeline())
    _setup(workspace, parties, service, data_key, pipeline_digest=pinned)
    # Even signed by the consumer, another pipeline is refused: the pin is the contract's.
    with pytest.raises(KeyReleaseDenied, match=f"pins pipeline {pinned}"):
        service.release(room.request(service, pipeline_model=OTHER))
    assert room.open(service.release(room.request(service))) == data_key


def test_max_runs_caps_the_runs_that_get_the_key(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
) -> None:
    _setup(workspace, parties, service, data_key, max_runs=1)
    # A refused request (unsigned) does not use the run up.
    with pytest.raises(KeyReleaseDenied):
        service.release(room.request(service, pipeline_signature=None, run_id="run-0"))
    assert room.open(service.release(room.request(service, run_id="run-1"))) == data_key
    with pytest.raises(KeyReleaseDenied, match=r"allows 1 run \(max_runs\)"):
        service.release(room.request(service, run_id="run-2"))
    with pytest.raises(KeyReleaseDenied, match="already received this package's key"):
        service.release(room.request(service, run_id="run-1"))
    assert _released(workspace) == 1
    assert any("max_runs" in reason for reason in _denials(workspace))


def test_requests_without_a_run_id_each_count_as_a_run(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
) -> None:
    _setup(workspace, parties, service, data_key, max_runs=2)
    service.release(room.request(service))
    service.release(room.request(service))
    with pytest.raises(KeyReleaseDenied, match=r"allows 2 runs \(max_runs\)"):
        service.release(room.request(service))


def test_a_key_that_could_not_be_sealed_does_not_use_a_run(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup(workspace, parties, service, data_key, max_runs=1)

    def broken(*args: object) -> bytes:
        raise ValueError("no such key")

    with monkeypatch.context() as patch:
        patch.setattr("sealroom.kms.service.seal_to", broken)
        with pytest.raises(KeyReleaseDenied, match="cannot seal to the ephemeral key"):
            service.release(room.request(service, run_id="run-1"))
    assert room.open(service.release(room.request(service, run_id="run-1"))) == data_key
