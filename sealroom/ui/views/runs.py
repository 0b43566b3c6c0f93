"""The runs of a workspace: from the ledger's run entries, the run folders and the live
event logs the operator writes. Cheap on purpose (the list page of 100 runs must load in
well under 300 ms): no output is hashed and no receipt verified here; a run's own page
does that (:mod:`sealroom.ui.views.run_receipt`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sealroom.errors import LedgerError
from sealroom.ledger import LedgerView
from sealroom.room.live import SUFFIX, event_log_path, events_dir
from sealroom.room.receipt import COMPLETED, FAILED, STARTED
from sealroom.ui.views.run_timeline import (
    EventLog,
    RunStatus,
    Timeline,
    read_event_log,
    timeline_from_ledger,
    timeline_from_log,
)
from sealroom.workspace import Workspace

# A run id as the launcher makes them (run-20261126T120000-a1b2c3) or an operator names
# them: a plain file name, never a path.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PER_PAGE = 25
MAX_PER_PAGE = 200


class RunSummary(BaseModel):
    """One row of the runs list."""

    run_id: str
    contract_id: str | None = None
    status: RunStatus
    started: float | None = None  # unix seconds
    ended: float | None = None
    duration_s: float | None = None
    reason: str | None = None  # a failed run's one line (public in the ledger)
    failed_stage: str | None = None
    has_folder: bool = False
    has_log: bool = False


class RunList(BaseModel):
    runs: list[RunSummary]
    total: int
    page: int
    pages: int
    per_page: int
    counts: dict[str, int]


def valid_run_id(run_id: str) -> bool:
    return bool(RUN_ID.match(run_id)) and ".." not in run_id


def unix(value: str | None) -> float | None:
    """A ledger timestamp (ISO 8601) as unix seconds; None when absent or malformed."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class _Facts:
    """What the sources say about one run, merged."""

    run_id: str
    contract_id: str | None = None
    started: float | None = None
    ended: float | None = None
    completed: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None
    has_started_entry: bool = False
    has_folder: bool = False
    log: EventLog | None = None
    sources: set[str] = field(default_factory=set)


def _ledger_runs(ws: Workspace, facts: dict[str, _Facts]) -> None:
    """Read, not verified: the ledger page verifies the chain, a run's page its receipt."""
    if not ws.ledger_db.is_file():
        return
    try:
        view = LedgerView.open_copy(ws.ledger_db, "")
    except LedgerError:
        return
    with view:
        for kind in (STARTED, COMPLETED, FAILED):
            for entry in view.entries(kind):
                run_id = entry.payload.get("run_id")
                if not isinstance(run_id, str) or not valid_run_id(run_id):
                    continue
                run = facts.setdefault(run_id, _Facts(run_id))
                contract = entry.payload.get("contract_id")
                if isinstance(contract, str):
                    run.contract_id = run.contract_id or contract
                at = unix(entry.timestamp)
                if kind == STARTED:
                    run.has_started_entry = True
                    run.started = at
                elif kind == COMPLETED:
                    run.completed = entry.payload
                    # The ledger's own clock first; the room's word only when it is all.
                    run.started = run.started or unix(_text(entry.payload.get("started")))
                    run.ended = at or unix(_text(entry.payload.get("ended")))
                else:
                    run.failed = entry.payload
                    run.ended = at


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _folders_and_logs(ws: Workspace, facts: dict[str, _Facts], logs: bool) -> None:
    if ws.runs.is_dir():
        for path in ws.runs.iterdir():
            if valid_run_id(path.name) and path.is_dir() and not path.is_symlink():
                facts.setdefault(path.name, _Facts(path.name)).has_folder = True
    folder = events_dir(ws)
    if logs and folder.is_dir():
        for path in folder.iterdir():
            run_id = path.name.removesuffix(SUFFIX)
            if path.name.endswith(SUFFIX) and valid_run_id(run_id):
                facts.setdefault(run_id, _Facts(run_id)).log = read_event_log(path)


def _summary(run: _Facts) -> RunSummary:
    status: RunStatus = "running"
    reason = stage = None
    started, ended = run.started, run.ended
    log = run.log
    if log is not None:
        started = log.started or started  # the operator's launch, before any ledger entry
        run.contract_id = run.contract_id or log.contract_id
    if run.completed is not None and log is not None and log.outcome is None and not run.has_folder:
        # The room's record is in the ledger, but the operator is still checking the receipt
        # before the staging folder becomes the run folder: not finished until it has.
        pass
    elif run.completed is not None:
        status = "completed"
    elif run.failed is not None:
        status = "failed"
        reason = _text(run.failed.get("reason")) or "failed"
        stage = _text(run.failed.get("stage"))
    elif log is not None and log.outcome is not None:
        outcome = log.outcome
        status = "completed" if outcome["type"] == "completed" else "failed"
        reason = outcome.get("reason") if status == "failed" else None
    if log is not None and log.outcome is not None:
        ended = log.outcome["t"]  # the operator's end: after the ledger entry and the check
    elif run.has_folder and not run.has_started_entry and log is None:
        status = "failed"  # a folder the ledger knows nothing of: no run to wait for
        reason = "no ledger entry records this run"
    duration = ended - started if started is not None and ended is not None else None
    return RunSummary(
        run_id=run.run_id,
        contract_id=run.contract_id,
        status=status,
        started=started,
        ended=ended,
        duration_s=duration,
        reason=reason,
        failed_stage=stage,
        has_folder=run.has_folder,
        has_log=log is not None,
    )


def _all_facts(ws: Workspace) -> dict[str, _Facts]:
    facts: dict[str, _Facts] = {}
    _ledger_runs(ws, facts)
    _folders_and_logs(ws, facts, logs=True)
    return facts


def list_runs(ws: Workspace, page: int = 1, per_page: int = PER_PAGE) -> RunList:
    """Every run, newest first, one page of them."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    summaries = [_summary(run) for run in _all_facts(ws).values()]
    summaries.sort(key=lambda r: (r.started or 0.0, r.run_id), reverse=True)
    pages = max(1, math.ceil(len(summaries) / per_page))
    page = max(1, min(page, pages))
    counts = {s: sum(r.status == s for r in summaries) for s in ("running", "completed", "failed")}
    return RunList(
        runs=summaries[(page - 1) * per_page : page * per_page],
        total=len(summaries),
        page=page,
        pages=pages,
        per_page=per_page,
        counts=counts,
    )


@dataclass
class RunFacts:
    """One run's summary and what its page needs beyond it."""

    summary: RunSummary
    timeline: Timeline
    folder: Path | None
    completed: dict[str, Any] | None


def find_run(ws: Workspace, run_id: str) -> RunFacts | None:
    """The run ``run_id`` names, or None when no source knows it (or the id is not one)."""
    if not valid_run_id(run_id):
        return None
    facts: dict[str, _Facts] = {}
    _ledger_runs(ws, facts)
    run = facts.setdefault(run_id, _Facts(run_id))
    folder = ws.runs / run_id
    run.has_folder = folder.is_dir() and not folder.is_symlink()
    run.log = read_event_log(event_log_path(ws, run_id))
    if not (run.has_folder or run.log or run.has_started_entry or run.completed or run.failed):
        return None
    summary = _summary(run)
    return RunFacts(
        summary=summary,
        timeline=timeline_of(run, summary),
        folder=folder if run.has_folder else None,
        completed=run.completed,
    )


def timeline_of(run: _Facts, summary: RunSummary) -> Timeline:
    if run.log is not None and run.log.lines:
        log = run.log
        if log.outcome is None and summary.status != "running":
            # The ledger already says how it ended; the log's last line is still to come.
            end = {"t": summary.ended or log.lines[-1]["t"], "type": summary.status}
            log = EventLog([*log.lines, {**end, "reason": summary.reason or ""}])
        return timeline_from_log(run.run_id, log, summary.failed_stage)
    private = bool(run.completed and run.completed.get("privacy"))
    return timeline_from_ledger(
        run.run_id,
        summary.status,
        started=summary.started,
        ended=summary.ended,
        failed_stage=summary.failed_stage,
        reason=summary.reason,
        private=private,
        policy_passed=run.has_started_entry,
    )
