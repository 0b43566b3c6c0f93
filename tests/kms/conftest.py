"""A workspace with three parties, a registered contract and the dataset key imported."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sealroom.attest import SoftwareAttester, make_report_data, measure_runtime
from sealroom.crypto.hpke import generate_ephemeral, open_sealed
from sealroom.crypto.identity import Party
from sealroom.kms import KeyService, ReleasePolicy, ReleaseRequest, release_info
from sealroom.pipeline.compose import pipeline_digest
from sealroom.workspace import Workspace
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    consumer_signature,
    make_parties,
    make_pipeline,
    store_contract,
)


@dataclass
class Room:
    """What a test room holds: its attester and the ephemeral key of its last request."""

    ws: Workspace
    attester: SoftwareAttester
    private_key: X25519PrivateKey | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def request(self, service: Any, **overrides: Any) -> ReleaseRequest:
        """A valid release request for the dataset key (the pipeline signed by the contract's
        consumer, when the contract is stored), with fields overridden."""
        nonce = overrides.pop("nonce", None) or service.request_nonce()
        self.private_key, public_b64 = generate_ephemeral()
        pipeline = overrides.pop("pipeline_model", None) or make_pipeline()
        evidence = self.attester.attest(make_report_data(nonce, public_b64))
        fields: dict[str, Any] = {
            "evidence": evidence,
            "nonce": nonce,
            "ephemeral_public_key": public_b64,
            "contract_id": CONTRACT_ID,
            "pipeline_digest": pipeline_digest(pipeline),
            "package_digest": DATASET_DIGEST,
            "pipeline": pipeline.model_dump(mode="json"),
            "pipeline_signature": consumer_signature(self.ws, pipeline_digest(pipeline)),
        }
        fields.update(overrides)
        return ReleaseRequest(**fields)

    def open(self, sealed: bytes, package_digest: str = DATASET_DIGEST) -> bytes:
        assert self.private_key is not None
        return open_sealed(self.private_key, sealed, release_info(package_digest))


def default_policy(**changes: Any) -> ReleasePolicy:
    fields: dict[str, Any] = {
        "contract_id": CONTRACT_ID,
        "package_digest": DATASET_DIGEST,
        "measurements": [measure_runtime()],
        "allow_insecure": True,
    }
    fields.update(changes)
    return ReleasePolicy(**fields)


@pytest.fixture
def parties(workspace: Workspace) -> dict[str, Party]:
    return make_parties(workspace)


@pytest.fixture
def data_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def service(workspace: Workspace) -> Iterator[KeyService]:
    with KeyService(workspace) as svc:
        yield svc


@pytest.fixture
def imported(
    workspace: Workspace, parties: dict[str, Party], service: KeyService, data_key: bytes
) -> KeyService:
    """The contract registered and the dataset key imported under the default policy."""
    store_contract(workspace, parties)
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, default_policy())
    return service


@pytest.fixture
def room(workspace: Workspace) -> Room:
    return Room(workspace, SoftwareAttester(workspace))
