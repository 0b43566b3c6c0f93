"""A run's stage timeline: from the operator's live event log, or from the ledger alone.

The event log (``runs/.events/<run id>.jsonl``, written by :mod:`sealroom.room.live`) holds
only public events, but it is still read as hostile text: bounded in size, one JSON object
a line, anything else skipped, every string cut to one printable line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from sealroom.room.events import STAGES
from sealroom.room.failures import one_line

MAX_LOG_BYTES = 2 << 20  # the live log caps itself near 1 MB
LOG_TAIL = 40  # log lines a page shows
StageState = Literal["pending", "running", "done", "failed", "skipped"]
RunStatus = Literal["running", "completed", "failed"]


class StageView(BaseModel):
    name: str
    title: str
    state: StageState
    at: float | None = None  # unix time the stage began (or ended, for the last one)


class Progress(BaseModel):
    epoch: int
    epochs: int
    batch: int
    batches: int

    @property
    def percent(self) -> int:
        if self.epochs <= 0:
            return 0
        within = self.batch / self.batches if self.batches > 0 else 0.0
        done = (max(self.epoch, 1) - 1 + min(within, 1.0)) / self.epochs
        return max(0, min(100, round(done * 100)))


class LogLine(BaseModel):
    at: float
    level: str
    message: str


class Timeline(BaseModel):
    """What the live part of a run's page shows; ``source`` says where it came from."""

    run_id: str
    status: RunStatus
    stages: list[StageView]
    progress: Progress | None = None
    log: list[LogLine] = []
    reason: str | None = None
    source: Literal["event log", "ledger"]
    started: float | None = None
    ended: float | None = None

    @property
    def finished(self) -> bool:
        return self.status != "running"


@dataclass
class EventLog:
    """The parsed lines of one event log (timestamps as unix seconds)."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def started(self) -> float | None:
        return self.lines[0]["t"] if self.lines else None

    @property
    def outcome(self) -> dict[str, Any] | None:
        last = self.lines[-1] if self.lines else None
        return last if last is not None and last["type"] in ("completed", "failed") else None

    @property
    def contract_id(self) -> str | None:
        for line in self.lines[:1]:
            if line["type"] == "started" and line.get("contract_id"):
                return str(line["contract_id"])
        return None


def _clean(raw: Any) -> dict[str, Any] | None:
    """One line as a dict of known, bounded fields; None when it is not an event line."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return None
    t = raw.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool):
        return None
    line: dict[str, Any] = {"t": float(t), "type": one_line(raw["type"], 20)}
    for key in ("stage", "message", "level", "reason", "run_id", "contract_id"):
        value = raw.get(key)
        if isinstance(value, str):
            line[key] = one_line(value, 300)
    for key in ("epoch", "epochs", "batch", "batches"):
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
            line[key] = value
    return line


def read_event_log(path: Path) -> EventLog | None:
    """The log at ``path`` (only its first ``MAX_LOG_BYTES``), or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_LOG_BYTES)
    log = EventLog()
    for raw_line in data.splitlines():
        try:
            line = _clean(json.loads(raw_line))
        except ValueError:
            continue
        if line is not None:
            log.lines.append(line)
    return log


def _stage_views(states: dict[str, tuple[StageState, float | None]]) -> list[StageView]:
    return [
        StageView(
            name=name,
            title=title,
            state=states.get(name, ("pending", None))[0],
            at=states.get(name, ("pending", None))[1],
        )
        for name, title in STAGES.items()
    ]


def timeline_from_log(run_id: str, log: EventLog, failed_stage: str | None) -> Timeline:
    """Stages as the events entered them: each one done when the next begins; the last one
    done on completion or failed on failure; of the stages a completed run's log lacks, the
    budget was skipped and the others passed (its log may have been capped)."""
    order = list(STAGES)
    states: dict[str, tuple[StageState, float | None]] = {}
    current: str | None = None
    progress: Progress | None = None
    lines: list[LogLine] = []
    for line in log.lines:
        kind = line["type"]
        if kind == "stage" and line.get("stage") in STAGES:
            stage = line["stage"]
            if current is not None:
                states[current] = ("done", states[current][1])
            for earlier in order[: order.index(stage)]:
                states.setdefault(earlier, ("skipped", None))
            states[stage] = ("running", line["t"])
            current = stage
        elif kind in ("epoch", "batch"):
            progress = Progress(
                epoch=line.get("epoch", 0),
                epochs=line.get("epochs", 0),
                batch=line.get("batch", 0),
                batches=line.get("batches", 0),
            )
        elif kind == "log" and line.get("message"):
            lines.append(
                LogLine(at=line["t"], level=line.get("level", "info"), message=line["message"])
            )
    outcome = log.outcome
    status: RunStatus = "running"
    reason = None
    if outcome is not None and outcome["type"] == "completed":
        status = "completed"
        for name in order:
            # A completed run passed every stage; only the budget is optional (a run
            # without privacy), so one the log lacks (a capped log) is done all the same.
            state = states.get(name)
            if state is not None and state[0] != "skipped":
                states[name] = ("done", state[1])
            else:
                states[name] = ("skipped", None) if name == "budget" else ("done", None)
    elif outcome is not None:
        status, reason = "failed", outcome.get("reason") or "failed"
        stage = failed_stage if failed_stage in STAGES else current
        if stage is not None:
            states[stage] = ("failed", states.get(stage, ("failed", outcome["t"]))[1])
        if current is not None and current != stage and states[current][0] == "running":
            states[current] = ("done", states[current][1])
    return Timeline(
        run_id=run_id,
        status=status,
        stages=_stage_views(states),
        progress=progress,
        log=lines[-LOG_TAIL:],
        reason=reason,
        source="event log",
        started=log.started,
        ended=outcome["t"] if outcome else None,
    )


def timeline_from_ledger(
    run_id: str,
    status: RunStatus,
    *,
    started: float | None,
    ended: float | None,
    failed_stage: str | None = None,
    reason: str | None = None,
    private: bool = True,
    policy_passed: bool = False,
) -> Timeline:
    """A run without an event log (run before the dashboard existed, or elsewhere): a
    completed run did every stage (budget only when private); a failed one failed at the
    stage its ``run.failed`` entry names, after those before it."""
    order = list(STAGES)
    states: dict[str, tuple[StageState, float | None]] = {}
    if status == "completed":
        for name in order:
            states[name] = ("done", None) if private or name != "budget" else ("skipped", None)
        states[order[0]] = ("done", started)
        states[order[-1]] = ("done", ended)
    elif status == "failed":
        stage = (
            failed_stage
            if failed_stage in STAGES
            else ("contract" if failed_stage == "start" else None)
        )
        if stage is None and policy_passed:
            # Failed somewhere after the policy check (the operator recorded it): say no more.
            states.update({"contract": ("done", started), "policy": ("done", None)})
        if stage is not None:
            for name in order[: order.index(stage)]:
                states[name] = ("done", None)
            states[stage] = ("failed", ended)
    elif started is not None:
        states[order[0]] = ("running", started)
    return Timeline(
        run_id=run_id,
        status=status,
        stages=_stage_views(states),
        reason=reason,
        source="ledger",
        started=started,
        ended=ended,
    )
