"""The operator's desk for a serving room: each call of the untrusted room checked
(sealroom/serve/desk.py), the charged totals apart from the public receipt roots."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from sealroom.attest.evidence import make_report_data
from sealroom.attest.software import SoftwareAttester
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.kms.models import ModelReleaseRequest
from sealroom.room.channel import (
    CountsCall,
    ModelReleaseCall,
    NonceCall,
    RecordCall,
    Request,
    ReserveCall,
    Response,
)
from sealroom.serve.attestation import attest_room, new_instance_id
from sealroom.serve.desk import CHARGED, RECEIPTS, STARTED, ServeDesk
from sealroom.workspace import Workspace
from tests.serve.helpers import Served, build


def _desk_and_room(workspace: Workspace, tmp_path: Path) -> tuple[Served, ServeDesk]:
    served = build(workspace, tmp_path)
    desk = ServeDesk(workspace, served.signed, new_instance_id(), served.model_digest)
    return served, desk


def _call(desk: ServeDesk, call: Any) -> Response:
    return desk.handle(Request(id=1, call=call))


def _started(desk: ServeDesk, served: Served, nonce: bytes | None = None) -> dict[str, Any]:
    hpke, room_key = RoomHpkeKey.generate(), SigningKey.generate()
    if nonce is None:
        result = _call(desk, NonceCall(op="nonce", package_digest=served.model_digest))
        nonce = base64.b64decode(result.result["nonce"])
    att = attest_room(
        SoftwareAttester(served.ws).attest,
        nonce=nonce,
        hpke_public_key=hpke.public_raw,
        room_key=room_key.public_b64,
        model_digest=served.model_digest,
        contract_digest=served.signed.digest,
        instance=desk.instance,
    )
    return {
        "contract_id": served.signed.id,
        "instance": desk.instance,
        "room_key": att.room_key,
        "hpke_public_key": att.hpke_public_key,
        "model_digest": served.model_digest,
        "attestation": att.model_dump(mode="json"),
    }


def test_desk_records_a_started_room_once_and_only_with_an_issued_nonce(
    workspace: Workspace, tmp_path: Path
) -> None:
    served, desk = _desk_and_room(workspace, tmp_path)
    stray = _started(desk, served, nonce=b"n" * 32)  # a nonce the desk never issued
    refused = _call(desk, RecordCall(op="record", kind=STARTED, payload=stray))
    assert not refused.ok and "nonce was not issued" in refused.error
    payload = _started(desk, served)
    swapped = {**payload, "hpke_public_key": base64.b64encode(b"k" * 32).decode()}
    refused = _call(desk, RecordCall(op="record", kind=STARTED, payload=swapped))
    assert not refused.ok and "binds other keys" in refused.error
    assert _call(desk, RecordCall(op="record", kind=STARTED, payload=payload)).ok
    again = _call(desk, RecordCall(op="record", kind=STARTED, payload=payload))
    assert not again.ok and "already started" in again.error


def test_desk_refuses_a_charged_total_that_goes_down(workspace: Workspace, tmp_path: Path) -> None:
    served, desk = _desk_and_room(workspace, tmp_path)
    started = _started(desk, served)
    assert _call(desk, RecordCall(op="record", kind=STARTED, payload=started)).ok
    alice = "sha256:" + "a" * 64
    own = {"contract_id": served.signed.id, "instance": desk.instance}

    def charged(totals: dict[str, int], **over: str) -> Response:
        payload = {**own, "room_key": started["room_key"], "charged": totals, **over}
        return _call(desk, RecordCall(op="record", kind=CHARGED, payload=payload))

    assert charged({alice: 5}).ok
    lower = charged({alice: 4})
    assert not lower.ok and "would go down" in lower.error
    dropped = charged({})
    assert not dropped.ok and "would go down" in dropped.error
    bad = charged({alice: -1})
    assert not bad.ok and "is not a count" in bad.error
    other = charged({alice: 6}, room_key=SigningKey.generate().public_b64)
    assert not other.ok and "another room key" in other.error
    foreign = charged({alice: 6}, instance="srv-20260101T000000-abcdef")
    assert not foreign.ok and "another serving instance" in foreign.error
    assert charged({alice: 6, "anonymous": 1}).ok
    counts = _call(desk, CountsCall(op="counts", contract_id=served.signed.id))
    [entry] = counts.result["entries"]
    assert entry["receipt"]["kind"] == CHARGED
    assert entry["payload"]["charged"] == {alice: 6, "anonymous": 1}


def test_desk_refuses_usage_in_the_public_receipts_entry(
    workspace: Workspace, tmp_path: Path
) -> None:
    """inference.receipts is served to any client: the desk records roots only."""
    served, desk = _desk_and_room(workspace, tmp_path)
    started = _started(desk, served)
    assert _call(desk, RecordCall(op="record", kind=STARTED, payload=started)).ok
    roots = {
        "contract_id": served.signed.id,
        "instance": desk.instance,
        "room_key": started["room_key"],
        "batches": [{"root": "0" * 64, "size": 1, "first_sequence": 0}],
    }
    leaky = {**roots, "charged": {"sha256:" + "a" * 64: 5}}
    refused = _call(desk, RecordCall(op="record", kind=RECEIPTS, payload=leaky))
    assert not refused.ok and "may not carry 'charged'" in refused.error
    assert _call(desk, RecordCall(op="record", kind=RECEIPTS, payload=roots)).ok
    counts = _call(desk, CountsCall(op="counts", contract_id=served.signed.id))
    assert counts.result["entries"] == []  # roots are no totals


def test_desk_refuses_training_calls_other_contracts_and_other_models(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, desk = _desk_and_room(workspace, tmp_path)
    reserve = _call(desk, ReserveCall(op="budget.reserve", epsilon=1.0, delta=1e-5))
    assert not reserve.ok and "serving room may not call 'budget.reserve'" in reserve.error
    other = _call(desk, NonceCall(op="nonce", package_digest="sha256:" + "b" * 64))
    assert not other.ok and "not the model this room serves" in other.error
    run = _call(desk, RecordCall(op="record", kind="run.completed", payload={}))
    assert not run.ok and "may not record 'run.completed'" in run.error
    counts = _call(desk, CountsCall(op="counts", contract_id="another"))
    assert not counts.ok and "another contract" in counts.error


def test_desk_releases_the_model_key_once_for_this_instance_only(
    workspace: Workspace, tmp_path: Path
) -> None:
    served, desk = _desk_and_room(workspace, tmp_path)

    def release(instance: str) -> Response:
        nonce = base64.b64decode(
            _call(desk, NonceCall(op="nonce", package_digest=served.model_digest)).result["nonce"]
        )
        _, public = generate_ephemeral()
        request = ModelReleaseRequest(
            evidence=SoftwareAttester(served.ws).attest(make_report_data(nonce, public)),
            nonce=nonce,
            ephemeral_public_key=public,
            contract_id=served.signed.id,
            package_digest=served.model_digest,
            instance=instance,
        )
        call = ModelReleaseCall(op="release_model", request=request.model_dump(mode="json"))
        return _call(desk, call)

    other = release(new_instance_id())
    assert not other.ok and "another serving instance" in other.error
    assert release(desk.instance).ok
    again = release(desk.instance)
    assert not again.ok and "already has its model key" in again.error
