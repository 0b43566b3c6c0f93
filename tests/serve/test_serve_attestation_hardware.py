"""A client that pins measurements holds hardware claims to the hardware terms too."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from sealroom.attest.evidence import Claims
from sealroom.attest.policy import HardwarePolicy, SnpPolicy
from sealroom.contract.schema import RoomPolicy
from sealroom.errors import AttestationError
from sealroom.serve.attestation import check_room_policy
from tests.attest.stub_hardware import SNP_CLAIMS, SNP_MEASUREMENT, TDX_CLAIMS
from tests.serve.test_serve_attestation import make_contract


def _claims(base: dict[str, Any], **changes: Any) -> Claims:
    return Claims.model_validate(
        {**base, **changes, "report_data": os.urandom(64), "issued_at": datetime.now(UTC)}
    )


def _hardware_contract() -> Any:
    signed = make_contract(allow_insecure=False, measurements=[])
    room = RoomPolicy(measurements=[], allow_insecure=False, tee_types=["sev-snp", "tdx"])
    contract = signed.contract.model_copy(update={"room": room})
    return signed.model_copy(update={"contract": contract})


def test_pinned_hardware_claims_meeting_the_default_terms_pass() -> None:
    check_room_policy(_claims(SNP_CLAIMS), _hardware_contract(), {SNP_MEASUREMENT})


@pytest.mark.parametrize(
    ("claims", "line"),
    [
        (_claims(SNP_CLAIMS, vmpl=2), "requested at VMPL 2"),
        (
            _claims(TDX_CLAIMS, measurement=SNP_MEASUREMENT, tcb_status="OutOfDate"),
            "TCB status is OutOfDate",
        ),
    ],
    ids=["snp-vmpl", "tdx-status"],
)
def test_pinned_hardware_claims_breaking_a_default_term_are_refused(
    claims: Claims, line: str
) -> None:
    with pytest.raises(AttestationError, match=line):
        check_room_policy(claims, _hardware_contract(), {SNP_MEASUREMENT})


def test_an_explicit_hardware_policy_replaces_the_default_terms() -> None:
    claims = _claims(SNP_CLAIMS, vmpl=2)
    lenient = HardwarePolicy(measurements=[SNP_MEASUREMENT], snp=SnpPolicy(max_vmpl=2))
    check_room_policy(claims, _hardware_contract(), {SNP_MEASUREMENT}, lenient)
    strict = HardwarePolicy(measurements=[SNP_MEASUREMENT], snp=SnpPolicy(min_tcb={"snp": 15}))
    with pytest.raises(AttestationError, match="component snp is 14 in the report, below"):
        check_room_policy(_claims(SNP_CLAIMS), _hardware_contract(), None, strict)
