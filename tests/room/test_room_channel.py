"""The room channel: bounded lines, typed calls, an operator that refuses what is not its run."""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest

from sealroom.contract.schema import Contract
from sealroom.contract.signed import SignedContract
from sealroom.errors import KeyReleaseDenied
from sealroom.ledger import Ledger
from sealroom.room.channel import (
    MAX_LINE_BYTES,
    ChannelError,
    LineTooLong,
    Request,
    Response,
    RoomChannel,
    parse_room_line,
    read_line,
)
from sealroom.room.events import RoomEvent
from sealroom.room.operator import OperatorDesk
from sealroom.workspace import Workspace

KEY = base64.b64encode(bytes(32)).decode()
DIGEST = "sha256:" + "ab" * 32


def _contract() -> SignedContract:
    contract = Contract.model_validate(
        {
            "id": "c1",
            "purpose": "p",
            "parties": [
                {"name": "lab", "role": "consumer", "signing_key": KEY, "encryption_key": KEY},
                {"name": "h", "role": "provider", "signing_key": KEY, "encryption_key": KEY},
            ],
            "datasets": [{"id": "d", "provider": "h", "package_digest": DIGEST}],
            "consumer": "lab",
            "constraints": {
                "model_formats": ["onnx"],
                "optimizers": ["sgd"],
                "losses": ["cross_entropy"],
                "metrics": ["accuracy"],
                "max_epochs": 1,
                "released_outputs": ["model"],
            },
            "not_before": "2026-01-01T00:00:00Z",
            "expires": "2027-01-01T00:00:00Z",
        }
    )
    return SignedContract(contract=contract)


def _call(op: str, ident: int = 1, **body: object) -> bytes:
    return json.dumps({"type": "call", "id": ident, "call": {"op": op, **body}}).encode()


def _refused(desk: OperatorDesk, line: bytes) -> str:
    answer = desk.answer(line)
    assert isinstance(answer, Response) and not answer.ok
    return answer.error


def test_lines_are_bounded_and_an_oversize_one_is_refused_unread() -> None:
    stream = io.BytesIO(b"a" * 10 + b"\n" + b"b" * (3 * 100) + b"\nnext\n")
    assert read_line(stream, limit=100) == b"a" * 10
    with pytest.raises(LineTooLong, match="longer than 100 bytes"):
        read_line(stream, limit=100)
    # Refused at the limit: nothing more of the line is read (a peer that never ends it
    # cannot hold the reader; the conversation ends there).
    assert stream.tell() == 11 + 101
    exact = io.BytesIO(b"c" * MAX_LINE_BYTES + b"\n")
    assert read_line(exact) == b"c" * MAX_LINE_BYTES


def test_events_calls_and_noise_are_told_apart() -> None:
    assert isinstance(parse_room_line(b'{"type": "stage", "stage": "train"}'), RoomEvent)
    assert parse_room_line(b"library chatter") is None
    call = parse_room_line(_call("nonce", package_digest=DIGEST))
    assert isinstance(call, Request) and call.call.op == "nonce"
    with pytest.raises(ChannelError, match="unknown op 'shell'"):
        parse_room_line(_call("shell", cmd="cat keys/kms-root.key"))
    with pytest.raises(ChannelError, match="malformed nonce call"):
        parse_room_line(_call("nonce", package_digest="../../keys"))


def test_unknown_op_is_answered_with_a_refusal(workspace: Workspace) -> None:
    desk = OperatorDesk(workspace, "run-1", _contract())
    assert "unknown op" in _refused(desk, _call("ledger.key", ident=7))
    with pytest.raises(ChannelError):  # no id to answer: the launcher kills the room
        desk.answer(b'{"type": "call", "call": {"op": "nope"}}')


def test_a_room_cannot_record_a_foreign_kind_or_another_runs_entry(workspace: Workspace) -> None:
    desk = OperatorDesk(workspace, "run-1", _contract())
    started = {"run_id": "run-1", "contract_id": "c1", "pipeline_digest": DIGEST}
    assert "may not record 'key.released'" in _refused(
        desk, _call("record", kind="key.released", payload=started)
    )
    other = {**started, "run_id": "run-0"}
    assert "not this run" in _refused(desk, _call("record", kind="run.started", payload=other))
    foreign = {**started, "contract_id": "c2"}
    assert "another contract" in _refused(
        desk, _call("record", kind="run.started", payload=foreign)
    )
    extra = {**started, "reason": "index 831"}
    assert "may not carry 'reason'" in _refused(
        desk, _call("record", kind="run.started", payload=extra)
    )
    assert "before run.started" in _refused(
        desk, _call("record", kind="run.completed", payload=started)
    )
    answer = desk.answer(_call("record", kind="run.started", payload=started))
    assert isinstance(answer, Response) and answer.ok
    assert "cannot record run.started now" in _refused(
        desk, _call("record", kind="run.started", payload=started)
    )
    with Ledger.open(workspace) as ledger:
        assert [e.kind for e in ledger.entries()] == ["run.started"]


def test_failure_reasons_are_one_bounded_line_of_a_known_stage(workspace: Workspace) -> None:
    desk = OperatorDesk(workspace, "run-1", _contract())
    failed = {"run_id": "run-1", "contract_id": "c1", "pipeline_digest": "", "stage": "x"}
    assert "unknown stage" in _refused(
        desk, _call("record", kind="run.failed", payload={**failed, "reason": "r"})
    )
    answer = desk.answer(
        _call(
            "record",
            kind="run.failed",
            payload={**failed, "stage": "train", "reason": "a\nb" * 400},
        )
    )
    assert isinstance(answer, Response) and answer.ok
    assert desk.failure is not None
    assert "\n" not in desk.failure["reason"] and len(desk.failure["reason"]) <= 300
    assert desk.failure["recorded_by"] == "room"


def test_release_for_another_contract_or_package_is_refused(workspace: Workspace) -> None:
    desk = OperatorDesk(workspace, "run-1", _contract())
    other = "sha256:" + "cd" * 32
    assert "not named by contract c1" in _refused(desk, _call("nonce", package_digest=other))


def test_the_rooms_client_raises_the_operators_refusal_by_type() -> None:
    answers = io.BytesIO(
        Response(id=1, ok=False, error="denied: no budget", error_type="KeyReleaseDenied")
        .model_dump_json()
        .encode()
        + b"\n"
        + Response(id=2, ok=False, error="x", error_type="SystemExit").model_dump_json().encode()
        + b"\n"
    )
    sent: list[str] = []
    channel = RoomChannel(sent.append, answers)
    with pytest.raises(KeyReleaseDenied, match="no budget"):
        channel.nonce(DIGEST)
    with pytest.raises(ChannelError):  # anything but the known refusals is a channel error
        channel.nonce(DIGEST)
    assert [json.loads(line)["id"] for line in sent] == [1, 2]
    with pytest.raises(ChannelError, match="closed the channel"):
        channel.nonce(DIGEST)


def test_a_dataset_naming_its_key_service_is_routed_there(workspace: Workspace) -> None:
    """The operator forwards that dataset's calls to the provider's own service (here a
    loopback port nobody listens on) instead of opening its embedded key service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    signed = _contract()
    dataset = signed.contract.datasets[0].model_copy(
        update={"key_service": f"http://127.0.0.1:{port}"}
    )
    contract = signed.contract.model_copy(update={"datasets": [dataset]})
    desk = OperatorDesk(workspace, "run-1", SignedContract(contract=contract))
    try:
        error = _refused(desk, _call("nonce", package_digest=DIGEST))
    finally:
        desk.close()
    assert f"key service at http://127.0.0.1:{port} is unreachable" in error
    assert not workspace.kms_db.exists()  # the embedded service was never opened
