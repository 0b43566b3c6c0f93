"""Any change to software evidence is caught; hardware attesters need a TEE guest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.attest import ConfigfsTsmAttester, Evidence, SoftwareAttester, verify_evidence
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(["payload", "signature"]),
    index=st.integers(0, 10_000),
    flip=st.integers(1, 255),
)
def test_flipping_any_byte_is_refused(
    workspace: Workspace, field: str, index: int, flip: int
) -> None:
    evidence = SoftwareAttester(workspace, measurement="cd" * 32).attest(bytes(64))
    data = bytearray(getattr(evidence, field))
    data[index % len(data)] ^= flip
    tampered = evidence.model_copy(update={field: bytes(data)})
    with pytest.raises(AttestationError):
        verify_evidence(tampered, workspace)


def test_relabelled_evidence_is_refused(workspace: Workspace) -> None:
    evidence = SoftwareAttester(workspace).attest(bytes(64))
    with pytest.raises(AttestationError, match=r"SEV-SNP report is \d+ bytes, expected 1184"):
        verify_evidence(evidence.model_copy(update={"tee_type": "sev-snp"}), workspace)


def test_configfs_attester_needs_a_tee_guest(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="not a TEE guest"):
        ConfigfsTsmAttester(tmp_path / "tsm" / "report")


def test_evidence_fields_are_bounded() -> None:
    with pytest.raises(ValueError):
        Evidence(tee_type="software", payload=b"x" * (1 << 17))
