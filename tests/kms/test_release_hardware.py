"""A data key released to SEV-SNP evidence end to end: the real SnpVerifier, a report laid
out and signed as a chip signs it, the key service's checks in their real order.

The chain is the test-only fake AMD PKI (tests/attest/snp_factory.py), registered as the
only roots for the duration of a test: no real chip can sign a report binding this test's
nonce. Every refusal below is one a real chain would give for the same report.
"""

from __future__ import annotations

from typing import Any

import pytest

from sealroom.attest.evidence import Evidence
from sealroom.attest.policy import SnpPolicy
from sealroom.attest.snp import SnpVerifier
from sealroom.attest.verifiers import VERIFIERS
from sealroom.crypto.identity import Party
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.ledger import Ledger
from sealroom.workspace import Workspace
from tests.attest.snp_factory import FakeAmd
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import CONTRACT_ID, DATASET_DIGEST, store_contract

MEASUREMENT = b"\x3f" * 48
SNP_ROOM = {"measurements": [], "allow_insecure": False, "tee_types": ["sev-snp"]}


class FakeChipAttester:
    """What configfs-tsm gives inside a SEV-SNP guest: a signed report and the VCEK."""

    tee_type = "sev-snp"

    def __init__(self, fake: FakeAmd, **report: Any) -> None:
        self.fake = fake
        self.report = {"measurement": MEASUREMENT, **report}

    def attest(self, report_data: bytes) -> Evidence:
        payload = self.fake.report(report_data=report_data, **self.report)
        return Evidence(tee_type="sev-snp", payload=payload, certificates=[self.fake.vcek_pem])


@pytest.fixture
def fake() -> FakeAmd:
    return FakeAmd.create("Milan")


@pytest.fixture
def snp_service(
    workspace: Workspace,
    parties: dict[str, Party],
    service: KeyService,
    data_key: bytes,
    fake: FakeAmd,
    room: Room,
    monkeypatch: pytest.MonkeyPatch,
) -> KeyService:
    monkeypatch.setitem(VERIFIERS._entries, "sev-snp", SnpVerifier(roots=fake.roots))
    store_contract(workspace, parties, room=SNP_ROOM)
    policy = default_policy(
        measurements=[MEASUREMENT.hex()],
        allow_insecure=False,
        tee_types=["sev-snp"],
        snp=SnpPolicy(min_tcb={"snp": 8, "microcode": 115}, families=["Milan"]),
    )
    service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, policy)
    room.attester = FakeChipAttester(fake)  # type: ignore[assignment]
    return service


def denial(workspace: Workspace) -> str:
    with Ledger.open(workspace) as ledger:
        assert ledger.entries("key.released") == []
        return str(ledger.entries("key.denied")[-1].payload["reason"])


def test_a_genuine_report_binding_the_nonce_and_key_gets_the_data_key(
    workspace: Workspace, snp_service: KeyService, room: Room, data_key: bytes
) -> None:
    assert room.open(snp_service.release(room.request(snp_service))) == data_key
    with Ledger.open(workspace) as ledger:
        [entry] = ledger.entries("key.released")
    assert entry.payload["insecure"] is False
    assert entry.payload["measurement"] == MEASUREMENT.hex()


def test_a_replayed_request_is_refused(
    workspace: Workspace, snp_service: KeyService, room: Room
) -> None:
    request = room.request(snp_service)
    snp_service.release(request)
    with pytest.raises(KeyReleaseDenied, match="nonce was already used"):
        snp_service.release(request)


@pytest.mark.parametrize(
    ("report", "line"),
    [
        ({"policy": 0x30000 | 1 << 19}, "allows debugging"),
        ({"vmpl": 1}, "requested at VMPL 1"),
        ({"measurement": b"\x40" * 48}, f"measurement {'40' * 48} is not one the policy"),
        ({"tcb": {"bootloader": 3, "tee": 0, "snp": 7, "microcode": 115}}, "component snp is 7"),
    ],
    ids=["debug", "vmpl", "measurement", "tcb"],
)
def test_a_genuine_report_breaking_a_term_is_denied(
    workspace: Workspace,
    snp_service: KeyService,
    room: Room,
    fake: FakeAmd,
    report: dict[str, Any],
    line: str,
) -> None:
    if "tcb" in report:  # a VCEK is issued per TCB: the chip's key for that older firmware
        key, cert = fake.issue_vcek(tcb=report["tcb"])
        other = FakeAmd(**{**fake.__dict__, "vcek_key": key, "vcek": cert})
        room.attester = FakeChipAttester(other, **report)  # type: ignore[assignment]
    else:
        room.attester = FakeChipAttester(fake, **report)  # type: ignore[assignment]
    with pytest.raises(KeyReleaseDenied, match="evidence rejected"):
        snp_service.release(room.request(snp_service))
    assert line in denial(workspace)


def test_a_report_signed_by_another_key_is_denied(
    workspace: Workspace, snp_service: KeyService, room: Room, fake: FakeAmd
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    forger = ec.generate_private_key(ec.SECP384R1())
    room.attester = FakeChipAttester(fake, key=forger)  # type: ignore[assignment]
    with pytest.raises(KeyReleaseDenied, match="evidence rejected"):
        snp_service.release(room.request(snp_service))
    assert "signature" in denial(workspace)


def test_evidence_from_another_request_is_denied(snp_service: KeyService, room: Room) -> None:
    request = room.request(snp_service)
    other = room.request(snp_service)
    with pytest.raises(KeyReleaseDenied, match="does not bind this nonce"):
        snp_service.release(request.model_copy(update={"evidence": other.evidence}))


def test_the_real_roots_refuse_the_test_chain(
    snp_service: KeyService, room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(VERIFIERS._entries, "sev-snp", SnpVerifier())
    with pytest.raises(KeyReleaseDenied, match="evidence rejected"):
        snp_service.release(room.request(snp_service))
