"""The release protocol end to end, embedded: a good room gets the key; anything else does not."""

from __future__ import annotations

import base64

import pytest

from sealroom.attest import measure_runtime
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.kms.fetch import fetch_data_key
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import pipeline_digest
from sealroom.workspace import Workspace
from tests.kms.conftest import Room
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    MODEL_DIGEST,
    consumer_signature,
    make_pipeline,
)


def test_an_attested_room_gets_the_key(imported: KeyService, room: Room, data_key: bytes) -> None:
    sealed = imported.release(room.request(imported))
    assert data_key not in sealed
    assert room.open(sealed) == data_key


def test_release_is_a_ledger_entry_without_the_key(
    workspace: Workspace, imported: KeyService, room: Room, data_key: bytes
) -> None:
    imported.release(room.request(imported))
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.released")
    assert entry.payload["package_digest"] == DATASET_DIGEST
    assert entry.payload["contract_id"] == CONTRACT_ID
    assert entry.payload["insecure"] is True
    assert entry.payload["measurement"] == measure_runtime()
    assert base64.b64encode(data_key).decode() not in str(entry.payload)


def test_fetch_data_key_runs_the_room_side(
    workspace: Workspace, imported: KeyService, room: Room, data_key: bytes
) -> None:
    pipeline = make_pipeline()
    digest = pipeline_digest(pipeline)
    key = fetch_data_key(
        imported,
        room.attester,
        contract_id=CONTRACT_ID,
        package_digest=DATASET_DIGEST,
        pipeline=pipeline,
        pipeline_digest=digest,
        pipeline_signature=consumer_signature(workspace, digest),
        run_id="run-1",
    )
    assert key == data_key
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.released")
    assert entry.payload["run_id"] == "run-1"
    assert entry.payload["pipeline_signer"] == "lab"


def test_the_model_key_is_released_under_the_same_contract(
    imported: KeyService, room: Room
) -> None:
    from tests.kms.conftest import default_policy

    model_key = bytes(range(32))
    policy = default_policy(package_digest=MODEL_DIGEST)
    imported.import_key(MODEL_DIGEST, model_key, "lab", CONTRACT_ID, policy)
    sealed = imported.release(room.request(imported, package_digest=MODEL_DIGEST))
    assert room.open(sealed, MODEL_DIGEST) == model_key


def test_a_sealed_key_opens_only_for_its_package(imported: KeyService, room: Room) -> None:
    sealed = imported.release(room.request(imported))
    with pytest.raises(Exception):
        room.open(sealed, MODEL_DIGEST)


def test_replayed_request_is_denied(imported: KeyService, room: Room) -> None:
    request = room.request(imported)
    imported.release(request)
    with pytest.raises(KeyReleaseDenied, match="already used"):
        imported.release(request)
