"""The operator's live event log: public fields only, bounded against a flooding room."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sealroom.room.events import RoomEvent
from sealroom.room.live import FULL, LiveLog, event_log_path, events_dir
from sealroom.workspace import Workspace


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_is_private_to_the_operator_and_ends_with_the_outcome(workspace: Workspace) -> None:
    log = LiveLog.start(workspace, "run-1", "c1")
    log.event(RoomEvent(type="stage", stage="contract", message="Verifying"))
    log.finish("run-1", None)
    path = event_log_path(workspace, "run-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(events_dir(workspace).stat().st_mode) == 0o700
    lines = _lines(path)
    assert [line["type"] for line in lines] == ["started", "stage", "completed"]
    assert lines[0]["contract_id"] == "c1" and lines[-1]["run_id"] == "run-1"
    assert all(isinstance(line["t"], float) for line in lines)


def test_only_public_fields_are_written(workspace: Workspace) -> None:
    log = LiveLog(event_log_path(workspace, "run-2"))
    event = RoomEvent(
        type="log", message="line\nwith\x00control " + "x" * 900, facts={"secret": "pixel 42"}
    )
    log.event(event)
    log.finish("run-2", "training failed:\nIndexError")
    first, last = _lines(event_log_path(workspace, "run-2"))
    assert "facts" not in first and "pixel" not in json.dumps(first)
    assert "\n" not in str(first["message"]) and len(str(first["message"])) <= 200
    assert last == {"t": last["t"], "type": "failed", "reason": "training failed: IndexError"}


def test_batch_counters_are_throttled_but_each_epoch_end_is_kept(workspace: Workspace) -> None:
    clock = Clock()
    log = LiveLog(event_log_path(workspace, "run-3"), clock=clock)
    for batch in range(1, 1001):
        log.event(RoomEvent(type="batch", epoch=1, epochs=1, batch=batch, batches=1000))
    clock.now = 10.0
    log.event(RoomEvent(type="batch", epoch=1, epochs=1, batch=5, batches=1000))
    log.close()
    batches = [line["batch"] for line in _lines(event_log_path(workspace, "run-3"))]
    assert batches == [1, 1000, 5]


def test_a_flood_of_events_is_capped_and_the_outcome_still_written(workspace: Workspace) -> None:
    clock = Clock()
    path = event_log_path(workspace, "run-4")
    log = LiveLog(path, max_lines=50, clock=clock)
    for i in range(20_000):
        clock.now += 1.0  # past the batch throttle: only the cap holds them back
        kind = "batch" if i % 2 else "log"
        log.event(
            RoomEvent(type=kind, message="m" * 200, epoch=1, epochs=9, batch=i, batches=10**6)
        )
    log.finish("run-4", None)
    lines = _lines(path)
    assert len(lines) == 52
    assert lines[-2]["message"] == FULL and lines[-1]["type"] == "completed"
    assert path.stat().st_size < 52 * 600


def test_a_log_that_cannot_be_written_never_fails_the_run(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    log = LiveLog(blocked / "run-5.jsonl")
    log.event(RoomEvent(type="stage", stage="contract"))
    log.finish("run-5", None)
    assert blocked.read_text() == "not a folder"
