"""Fail closed: each refusal stops the run with one line, records run.failed, leaves nothing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.contract.store import load_contract
from sealroom.contract.workflow import propose_contract, sign_contract
from sealroom.errors import RoomError
from sealroom.ledger import Ledger
from sealroom.pipeline.signing import sign_pipeline_file
from sealroom.room.events import RoomEvent
from sealroom.room.launcher import run_room
from tests.e2e.stories import PlayedStory


def _pipeline(story: PlayedStory, tmp_path: Path, **train: object) -> Path:
    """The story's pipeline with ``train`` changed, signed by the consumer as a new pipeline."""
    document = json.loads((story.base / "consumer-lab" / "pipeline.json").read_text())
    document["train"].update(train)
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(document))
    sign_pipeline_file(story.ws, path, "mnist-demo", "lab")
    return path


def _failure(story: PlayedStory, run_id: str) -> dict[str, object]:
    with Ledger.open(story.ws) as ledger:
        failed = ledger.find("run.failed", run_id=run_id)
        assert not ledger.find("run.completed", run_id=run_id)
    assert len(failed) == 1
    return failed[0].payload


def _released(story: PlayedStory) -> int:
    with Ledger.open(story.ws) as ledger:
        return len(ledger.entries("key.released"))


def _assert_clean(story: PlayedStory, run_id: str) -> None:
    assert not (story.ws.runs / run_id).exists()
    assert not list(story.ws.runs.glob(".staging-*"))
    assert story.leaks() == []


def test_pipeline_breaking_the_contract_is_refused_before_any_key_release(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _released(mnist_story)
    pipeline = _pipeline(mnist_story, tmp_path, epochs=50)
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    done = CliRunner().invoke(app, ["run", "--contract", "mnist-demo", "--pipeline", str(pipeline)])
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "epochs 50 exceed" in " ".join(done.output.split())
    assert _released(mnist_story) == before
    with Ledger.open(mnist_story.ws) as ledger:
        failed = ledger.entries("run.failed")
    assert failed[-1].payload["stage"] == "policy"
    run_id = str(failed[-1].payload["run_id"])
    assert not (mnist_story.ws.runs / run_id).exists()
    _assert_clean(mnist_story, run_id)


def test_tampered_dataset_package_stops_the_run(mnist_story: PlayedStory) -> None:
    chunks = mnist_story.ws.packages / "mnist.sealed" / "chunks.bin"
    original = chunks.read_bytes()
    edited = bytearray(original)
    edited[len(edited) // 2] ^= 0x40
    chunks.write_bytes(bytes(edited))
    try:
        # The key was released, so the reason is the stage's category only (no message).
        with pytest.raises(RoomError, match="key release or decryption failed: RoomError"):
            run_room(
                mnist_story.ws,
                "mnist-demo",
                mnist_story.base / "consumer-lab" / "pipeline.json",
                run_id="run-tampered",
            )
    finally:
        chunks.write_bytes(original)
    assert _failure(mnist_story, "run-tampered")["stage"] == "keys"
    _assert_clean(mnist_story, "run-tampered")


def test_expired_contract_is_refused(mnist_story: PlayedStory, tmp_path: Path) -> None:
    ws = mnist_story.ws
    draft = load_contract(ws, "mnist-demo").contract.model_dump(mode="json")
    now = datetime.now(UTC)
    draft.update(
        id="mnist-expiring",
        not_before=(now - timedelta(hours=1)).isoformat(),
        expires=(now + timedelta(seconds=2)).isoformat(),
    )
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(draft))
    propose_contract(ws, path, "lab")
    sign_contract(ws, "mnist-expiring", "hospital")
    sign_contract(ws, "mnist-expiring", "operator")
    time.sleep(max(0.0, (now + timedelta(seconds=2.2) - datetime.now(UTC)).total_seconds()))
    before = _released(mnist_story)
    with pytest.raises(RoomError, match="expired"):
        run_room(
            ws,
            "mnist-expiring",
            mnist_story.base / "consumer-lab" / "pipeline.json",
            run_id="run-expired",
        )
    assert _released(mnist_story) == before
    assert _failure(mnist_story, "run-expired")["stage"] == "contract"
    _assert_clean(mnist_story, "run-expired")


class _Stop(Exception):
    """The operator pulls the plug."""


@pytest.mark.slow
def test_room_killed_mid_training_leaves_nothing_and_is_recorded(
    mnist_story: PlayedStory, tmp_path: Path
) -> None:
    seen: list[RoomEvent] = []

    def kill_at_first_batch(event: RoomEvent) -> None:
        seen.append(event)
        if event.type == "batch":
            raise _Stop

    pipeline = _pipeline(mnist_story, tmp_path, epochs=5)
    with pytest.raises(_Stop):
        run_room(
            mnist_story.ws,
            "mnist-demo",
            pipeline,
            run_id="run-killed",
            on_event=kill_at_first_batch,
        )
    assert any(e.type == "stage" and e.stage == "train" for e in seen)
    failure = _failure(mnist_story, "run-killed")
    assert failure["recorded_by"] == "operator"
    assert "interrupted" in str(failure["reason"])
    _assert_clean(mnist_story, "run-killed")


def test_time_limit_kills_the_room(mnist_story: PlayedStory) -> None:
    with pytest.raises(RoomError, match=r"time limit of 0\.5 s"):
        run_room(
            mnist_story.ws,
            "mnist-demo",
            mnist_story.base / "consumer-lab" / "pipeline.json",
            timeout_s=0.5,
            run_id="run-timeout",
        )
    assert "time limit" in str(_failure(mnist_story, "run-timeout")["reason"])
    _assert_clean(mnist_story, "run-timeout")
