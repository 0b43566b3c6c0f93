"""KeyService.release_model: the model key reaches an attested serving room only for the model
its owner provisioned under a live inference contract; every other request is a key.denied."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealroom.attest import SoftwareAttester, make_report_data
from sealroom.contract.provision import make_statement, provision_model
from sealroom.contract.schema import SERVING_ONLY
from sealroom.contract.signed import SignedContract
from sealroom.contract.workflow import revoke_contract
from sealroom.crypto.hpke import generate_ephemeral, open_sealed
from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService, ModelReleaseRequest, release_info
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, MODEL_DIGEST, random_key_b64, store_contract

SERVE_ID = "mnist-serve"
NEW_MODEL = "sha256:" + "5" * 64
INSTANCE = "srv-20261126T031500-a1b2c3"


def inference_terms() -> dict[str, Any]:
    return {
        "clients": [{"name": "clinic", "signing_key": random_key_b64()}],
        "output": {"kind": "label"},
        "query_budget": 1000,
        "input": {"dtype": "float32", "shape": [1, 28, 28]},
    }


def store_serving(ws: Workspace, parties: dict[str, Party], **overrides: Any) -> SignedContract:
    fields: dict[str, Any] = {
        "id": SERVE_ID,
        "purpose": "serve the lab's classifier",
        "datasets": [],
        "constraints": SERVING_ONLY,
        "inference": inference_terms(),
    }
    fields.update(overrides)
    return store_contract(ws, parties, **fields)


def import_model(service: KeyService, digest: str = MODEL_DIGEST, **policy: Any) -> bytes:
    key = secrets.token_bytes(32)
    owner = policy.pop("owner", "lab")
    contract_id = policy.pop("contract_id", SERVE_ID)
    service.import_key(
        digest,
        key,
        owner,
        contract_id,
        default_policy(contract_id=contract_id, package_digest=digest, **policy),
    )
    return key


class ServingRoom:
    """A serving room's side of the protocol: nonce, evidence, ephemeral key, open."""

    def __init__(self, ws: Workspace) -> None:
        self.attester = SoftwareAttester(ws)
        self.private_key, self.public_b64 = generate_ephemeral()

    def request(self, service: KeyService, **overrides: Any) -> ModelReleaseRequest:
        nonce = overrides.pop("nonce", None) or service.request_nonce()
        self.private_key, self.public_b64 = generate_ephemeral()
        fields: dict[str, Any] = {
            "evidence": self.attester.attest(make_report_data(nonce, self.public_b64)),
            "nonce": nonce,
            "ephemeral_public_key": self.public_b64,
            "contract_id": SERVE_ID,
            "package_digest": MODEL_DIGEST,
            "instance": INSTANCE,
        }
        fields.update(overrides)
        return ModelReleaseRequest(**fields)

    def open(self, sealed: bytes, digest: str = MODEL_DIGEST) -> bytes:
        return open_sealed(self.private_key, sealed, release_info(digest))


@pytest.fixture
def serving(workspace: Workspace, parties: dict[str, Party]) -> SignedContract:
    return store_serving(workspace, parties)


@pytest.fixture
def room(workspace: Workspace) -> ServingRoom:
    return ServingRoom(workspace)


@pytest.fixture
def model_key(workspace: Workspace, serving: SignedContract, service: KeyService) -> bytes:
    """The model key imported by its owner and the model provisioned."""
    key = import_model(service)
    provision_model(workspace, SERVE_ID, "lab", "provision")
    return key


def _last(ws: Workspace, kind: str) -> dict[str, Any]:
    with Ledger.open(ws) as ledger:
        return ledger.entries(kind)[-1].payload


def _denied(service: KeyService, request: ModelReleaseRequest, match: str) -> None:
    with pytest.raises(KeyReleaseDenied, match=match):
        service.release_model(request)
    assert _last(service.ws, "key.denied")["purpose"] == "serve"


def test_the_provisioned_model_key_reaches_an_attested_room(
    workspace: Workspace, service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    sealed = service.release_model(room.request(service))
    assert model_key not in sealed
    assert room.open(sealed) == model_key
    entry = _last(workspace, "key.released")
    assert entry["purpose"] == "serve" and entry["instance"] == INSTANCE
    assert entry["contract_id"] == SERVE_ID and entry["package_digest"] == MODEL_DIGEST
    assert entry["owner"] == "lab" and entry["insecure"] is True
    with Ledger.open(workspace) as ledger:
        [provisioned] = ledger.entries("model.provisioned")
    assert entry["model_statement_seq"] == provisioned.seq


def test_a_model_never_provisioned_is_not_released(
    workspace: Workspace, serving: SignedContract, service: KeyService, room: ServingRoom
) -> None:
    import_model(service)
    _denied(service, room.request(service), "never provisioned by its owner")


def test_the_old_model_is_refused_after_rotation(
    workspace: Workspace, service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    new_key = import_model(service, NEW_MODEL)
    provision_model(workspace, SERVE_ID, "lab", "rotate", NEW_MODEL)
    _denied(
        service,
        room.request(service),
        f"package {MODEL_DIGEST} is not the model contract {SERVE_ID} serves "
        rf"\(current: {NEW_MODEL}\)",
    )
    sealed = service.release_model(room.request(service, package_digest=NEW_MODEL))
    assert room.open(sealed, NEW_MODEL) == new_key


def test_nothing_is_released_after_retirement(
    workspace: Workspace, service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    provision_model(workspace, SERVE_ID, "lab", "retire")
    _denied(service, room.request(service), "retired by its owner")


def test_an_operator_forged_rotation_releases_nothing(
    workspace: Workspace,
    service: KeyService,
    room: ServingRoom,
    model_key: bytes,
    serving: SignedContract,
    parties: dict[str, Party],
) -> None:
    """The operator imports a model of its own (claiming the owner's name: the embedded key
    service takes its word) and appends a rotation to it, signed with its own key."""
    import_model(service, NEW_MODEL)
    forged = make_statement(
        serving.contract, "rotate", NEW_MODEL, MODEL_DIGEST, "lab", parties["operator"].sign
    )
    with Ledger.open(workspace) as ledger:
        ledger.append("model.rotated", forged.model_dump(mode="json"))
    _denied(service, room.request(service, package_digest=NEW_MODEL), "is not the model")
    assert room.open(service.release_model(room.request(service))) == model_key


def test_a_training_contract_serves_no_model(
    workspace: Workspace, parties: dict[str, Party], service: KeyService, room: ServingRoom
) -> None:
    store_contract(workspace, parties)  # the MNIST training contract names the same model
    import_model(service, contract_id=CONTRACT_ID)
    _denied(
        service,
        room.request(service, contract_id=CONTRACT_ID),
        f"contract {CONTRACT_ID} is not an inference contract",
    )


def test_the_model_key_of_another_contract_is_not_released(
    workspace: Workspace,
    parties: dict[str, Party],
    serving: SignedContract,
    service: KeyService,
    room: ServingRoom,
) -> None:
    """The key was imported under the training contract only; the serving contract's id does
    not unlock it."""
    store_contract(workspace, parties)
    import_model(service, contract_id=CONTRACT_ID)
    provision_model(workspace, SERVE_ID, "lab", "provision")
    _denied(service, room.request(service), f"not released under contract {SERVE_ID}")


def test_an_expired_inference_contract_releases_nothing(
    workspace: Workspace, parties: dict[str, Party], service: KeyService, room: ServingRoom
) -> None:
    now = datetime.now(UTC)
    signed = store_serving(
        workspace,
        parties,
        not_before=(now - timedelta(days=30)).isoformat(),
        expires=(now - timedelta(days=1)).isoformat(),
    )
    import_model(service)
    # Provisioned (by the owner's genuine statement) while the contract was in force.
    statement = make_statement(
        signed.contract,
        "provision",
        MODEL_DIGEST,
        None,
        "lab",
        parties["lab"].sign,
        now - timedelta(days=10),
    )
    with Ledger.open(workspace) as ledger:
        ledger.append("model.provisioned", statement.model_dump(mode="json"))
    _denied(service, room.request(service), f"contract {SERVE_ID} expired")


def test_a_revoked_inference_contract_releases_nothing(
    workspace: Workspace, service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    revoke_contract(workspace, SERVE_ID, "hospital", "withdrawn")
    _denied(service, room.request(service), "revoked")


def test_a_measurement_the_contract_does_not_allow_is_refused(
    workspace: Workspace, parties: dict[str, Party], service: KeyService, room: ServingRoom
) -> None:
    other = "ab" * 32
    store_serving(
        workspace,
        parties,
        room={"measurements": [other], "allow_insecure": True, "tee_types": ["software"]},
    )
    import_model(service)
    provision_model(workspace, SERVE_ID, "lab", "provision")
    _denied(service, room.request(service), f"is not one contract {SERVE_ID} allows")


def test_a_measurement_the_key_policy_does_not_allow_is_refused(
    workspace: Workspace, serving: SignedContract, service: KeyService, room: ServingRoom
) -> None:
    import_model(service, measurements=["cd" * 32])
    provision_model(workspace, SERVE_ID, "lab", "provision")
    _denied(service, room.request(service), "is not one the key's release policy allows")


def test_insecure_evidence_needs_the_contract_to_allow_it(
    workspace: Workspace, parties: dict[str, Party], service: KeyService, room: ServingRoom
) -> None:
    store_serving(workspace, parties, room={"measurements": [], "allow_insecure": False})
    import_model(service)
    provision_model(workspace, SERVE_ID, "lab", "provision")
    _denied(service, room.request(service), f"not allowed by contract {SERVE_ID}")


def test_a_replayed_nonce_is_refused(
    service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    request = room.request(service)
    service.release_model(request)
    _denied(service, request, "already used")


def test_an_unissued_nonce_is_refused(
    service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    _denied(service, room.request(service, nonce=secrets.token_bytes(32)), "not issued")


def test_evidence_for_another_key_is_refused(
    service: KeyService, room: ServingRoom, model_key: bytes
) -> None:
    """A swapped ephemeral key: the evidence binds the room's, the request names another."""
    _, other = generate_ephemeral()
    _denied(
        service,
        room.request(service, ephemeral_public_key=other),
        "does not bind this nonce and ephemeral public key",
    )


def test_a_key_imported_by_someone_else_is_refused(
    workspace: Workspace, serving: SignedContract, service: KeyService, room: ServingRoom
) -> None:
    import_model(service, owner="hospital")
    provision_model(workspace, SERVE_ID, "lab", "provision")
    _denied(service, room.request(service), "not by the model owner")


def test_a_training_release_under_an_inference_contract_is_refused(
    workspace: Workspace, service: KeyService, model_key: bytes
) -> None:
    room = Room(workspace, SoftwareAttester(workspace))
    with pytest.raises(
        KeyReleaseDenied, match=f"contract {SERVE_ID} is an inference contract: no training run"
    ):
        service.release(room.request(service, contract_id=SERVE_ID, package_digest=MODEL_DIGEST))
    assert "no training run" in _last(workspace, "key.denied")["reason"]
