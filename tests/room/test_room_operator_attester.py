"""The operator desk answers a room's attest call with the attester SEALROOM_ATTESTER names."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from sealroom.attest.evidence import Evidence
from sealroom.attest.select import ENV_ATTESTER
from sealroom.attest.software import SoftwareAttester
from sealroom.attest.tsm import ConfigfsTsmAttester
from sealroom.room.channel import Response
from sealroom.room.operator import OperatorDesk
from sealroom.workspace import Workspace
from tests.attest.fake_tsm import SNP, FakeTsmKernel
from tests.room.test_room_channel import _contract

REPORT_DATA = bytes(range(64))


def _attest(desk: OperatorDesk) -> Response:
    body = {"op": "attest", "report_data": base64.b64encode(REPORT_DATA).decode()}
    answer = desk.answer(json.dumps({"type": "call", "id": 1, "call": body}).encode())
    assert isinstance(answer, Response)
    return answer


def test_default_is_software_evidence(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_ATTESTER, raising=False)
    desk = OperatorDesk(workspace, "run-1", _contract())
    answer = _attest(desk)
    assert answer.ok
    evidence = Evidence.model_validate(answer.result["evidence"])
    assert evidence.tee_type == "software" and isinstance(desk.attester, SoftwareAttester)
    assert desk.issued == set()  # software evidence is checked by its signer instead


@pytest.mark.skipif(os.path.isdir("/sys/kernel/config/tsm/report"), reason="a TEE guest")
def test_configfs_tsm_on_a_host_without_it_is_refused(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "configfs-tsm")
    answer = _attest(OperatorDesk(workspace, "run-1", _contract()))
    assert not answer.ok and "no configfs-tsm at /sys/kernel/config/tsm/report" in answer.error


def test_hardware_reports_are_remembered_for_run_completed(
    workspace: Workspace, tmp_path: Path
) -> None:
    kernel = FakeTsmKernel(tmp_path / "report", SNP)
    desk = OperatorDesk(workspace, "run-1", _contract())
    desk.attester = ConfigfsTsmAttester(kernel.root, fs=kernel)
    answer = _attest(desk)
    evidence = Evidence.model_validate(answer.result["evidence"])
    assert evidence.tee_type == "sev-snp"
    assert desk.issued == {hashlib.sha256(evidence.payload).hexdigest()}
