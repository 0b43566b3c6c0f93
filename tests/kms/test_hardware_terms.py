"""Hardware evidence must meet the key owner's hardware terms (TCB floor, VMPL, host data,
TDX status and RTMRs...), each broken term a denial naming it in the ledger.

The verifiers are stubbed (tests.attest.stub_hardware): what is tested here is the key
service applying the release policy's hardware terms to verified claims.
"""

from __future__ import annotations

from typing import Any

import pytest

from sealroom.attest.policy import SnpPolicy, TdxPolicy
from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService, ReleasePolicy
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.attest import stub_hardware
from tests.attest.stub_hardware import (
    SNP_CLAIMS,
    SNP_MEASUREMENT,
    TDX_CLAIMS,
    TDX_MEASUREMENT,
    StubHardwareAttester,
)
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, store_contract

HARDWARE_ROOM = {"measurements": [], "allow_insecure": False, "tee_types": ["sev-snp", "tdx"]}


def hardware_policy(**changes: Any) -> ReleasePolicy:
    fields: dict[str, Any] = {
        "measurements": [SNP_MEASUREMENT, TDX_MEASUREMENT],
        "allow_insecure": False,
        "snp": SnpPolicy(
            min_tcb={"snp": 14, "microcode": 200},
            host_data="00" * 32,
            families=["Milan"],
            signing_keys=["vcek"],
        ),
        "tdx": TdxPolicy(rtmrs=[None, "22" * 48]),
    }
    fields.update(changes)
    return default_policy(**fields)


@pytest.fixture
def hardware(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    data_key: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> KeyService:
    stub_hardware.install(monkeypatch)
    store_contract(workspace, parties, room=HARDWARE_ROOM)
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, hardware_policy())
    return service


BROKEN_TERMS = [
    (SNP_CLAIMS, {"debug": True}, "the sev-snp guest allows debugging"),
    (SNP_CLAIMS, {"measurement": "ab" * 48}, f"measurement {'ab' * 48} is not one"),
    (SNP_CLAIMS, {"platform": "Genoa"}, "SEV-SNP family Genoa is not allowed"),
    (SNP_CLAIMS, {"signing_key": "vlek"}, "signed by a vlek key"),
    (SNP_CLAIMS, {"vmpl": 1}, "requested at VMPL 1"),
    (SNP_CLAIMS, {"tcb": {**SNP_CLAIMS["tcb"], "snp": 13}}, "component snp is 13"),
    (SNP_CLAIMS, {"tcb": {"snp": 14}}, "component microcode is None"),
    (SNP_CLAIMS, {"host_data": "01" * 32}, f"host_data {'01' * 32} is not"),
    (TDX_CLAIMS, {"debug": True}, "the tdx guest allows debugging"),
    (TDX_CLAIMS, {"tcb_status": "OutOfDate"}, "TCB status is OutOfDate"),
    (TDX_CLAIMS, {"advisory_ids": ["INTEL-SA-00837"]}, "advisories INTEL-SA-00837"),
    (TDX_CLAIMS, {"rtmrs": ["11" * 48, "23" * 48]}, f"RTMR1 is {'23' * 48}"),
]


@pytest.mark.parametrize(
    ("claims", "changes", "line"),
    BROKEN_TERMS,
    ids=[f"{c['tee_type']}-{next(iter(ch))}-{i}" for i, (c, ch, _) in enumerate(BROKEN_TERMS)],
)
def test_a_broken_hardware_term_is_denied_with_its_line_in_the_ledger(
    workspace: Workspace,
    hardware: KeyService,
    room: Room,
    claims: dict[str, Any],
    changes: dict[str, Any],
    line: str,
) -> None:
    room.attester = StubHardwareAttester(claims, **changes)  # type: ignore[assignment]
    with pytest.raises(KeyReleaseDenied, match="evidence rejected") as denied:
        hardware.release(room.request(hardware))
    assert line in str(denied.value)
    with Ledger.open(workspace) as ledger:
        assert ledger.entries("key.released") == []
        [entry] = ledger.entries("key.denied")
    assert entry.payload["reason"].startswith("evidence rejected: ")
    assert line in entry.payload["reason"]


@pytest.mark.parametrize("claims", [SNP_CLAIMS, TDX_CLAIMS], ids=["sev-snp", "tdx"])
def test_hardware_claims_meeting_every_term_get_the_key(
    workspace: Workspace, hardware: KeyService, room: Room, data_key: bytes, claims: dict[str, Any]
) -> None:
    room.attester = StubHardwareAttester(claims)  # type: ignore[assignment]
    assert room.open(hardware.release(room.request(hardware))) == data_key
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.released")
    assert entry.payload["insecure"] is False
    assert entry.payload["measurement"] == claims["measurement"]


def test_a_tee_type_the_policy_does_not_name_is_refused_by_the_release_rule(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    room: Room,
    data_key: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stub_hardware.install(monkeypatch)
    store_contract(workspace, parties, room=HARDWARE_ROOM)
    policy = hardware_policy(tee_types=["tdx"])
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, policy)
    room.attester = StubHardwareAttester(SNP_CLAIMS)  # type: ignore[assignment]
    with pytest.raises(KeyReleaseDenied, match="TEE type sev-snp is not allowed by the key's"):
        service.release(room.request(service))


def test_hardware_report_data_must_still_bind_the_nonce_and_key(
    hardware: KeyService, room: Room
) -> None:
    room.attester = StubHardwareAttester(SNP_CLAIMS)  # type: ignore[assignment]
    request = room.request(hardware)
    other = room.request(hardware)  # another nonce and key, so its evidence binds those
    with pytest.raises(KeyReleaseDenied, match="does not bind this nonce"):
        hardware.release(request.model_copy(update={"evidence": other.evidence}))


def test_policies_stored_without_hardware_terms_load_with_the_defaults() -> None:
    policy = default_policy(allow_insecure=False, tee_types=["sev-snp"])
    stored = policy.model_dump(mode="json")
    assert "snp" not in stored and "tdx" not in stored  # grants signed before still verify
    loaded = ReleasePolicy.model_validate(stored)
    assert loaded.snp == SnpPolicy() and loaded.tdx == TdxPolicy()
    assert loaded.hardware_policy().tdx.tcb_statuses == ["UpToDate"]
    strict = policy.model_copy(update={"snp": SnpPolicy(max_vmpl=2)})
    assert ReleasePolicy.model_validate_json(strict.model_dump_json()).snp.max_vmpl == 2


def test_a_model_release_applies_the_hardware_terms_too(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sealroom.contract.provision import provision_model
    from tests.kms.test_kms_model_release import (
        MODEL_DIGEST,
        SERVE_ID,
        ServingRoom,
        import_model,
        store_serving,
    )

    stub_hardware.install(monkeypatch)
    store_serving(workspace, parties, room=HARDWARE_ROOM)
    fields = hardware_policy().model_dump(exclude={"contract_id", "package_digest"})
    key = import_model(service, **{**fields, "snp": SnpPolicy(max_vmpl=0)})
    provision_model(workspace, SERVE_ID, "lab", "provision")
    room = ServingRoom(workspace)
    room.attester = StubHardwareAttester(SNP_CLAIMS, vmpl=1)  # type: ignore[assignment]
    with pytest.raises(KeyReleaseDenied, match=r"evidence rejected: .*requested at VMPL 1"):
        service.release_model(room.request(service))
    room.attester = StubHardwareAttester(SNP_CLAIMS)  # type: ignore[assignment]
    assert room.open(service.release_model(room.request(service)), MODEL_DIGEST) == key
