"""One run's page: its summary and timeline, the checked receipt, and the released metrics
and plots where the viewer holds the decrypted outputs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from sealroom.ui.views.run_metrics import Metrics, released_metrics
from sealroom.ui.views.run_receipt import (
    ReceiptView,
    held_outputs,
    receipt_view,
    safe_output_name,
    verified_receipt,
)
from sealroom.ui.views.run_timeline import Timeline
from sealroom.ui.views.runs import RunSummary, find_run
from sealroom.workspace import Workspace


class RunDetail(BaseModel):
    summary: RunSummary
    timeline: Timeline
    receipt: ReceiptView | None = None  # None while running, and for a failed run
    metrics: Metrics | None = None  # only from decrypted outputs the viewer holds
    plots: list[str] = []  # names of held PNG outputs (served by the outputs route)
    training_log: str | None = None  # the held, decrypted training_log.txt


MAX_LOG_CHARS = 64 * 1024


def run_detail(ws: Workspace, run_id: str, outputs: tuple[Path, ...]) -> RunDetail | None:
    """Everything a run's page shows, or None for an unknown run."""
    found = find_run(ws, run_id)
    if found is None:
        return None
    detail = RunDetail(summary=found.summary, timeline=found.timeline)
    folder = found.folder
    if folder is not None and found.summary.status == "completed":
        detail.receipt, files = receipt_view(ws, run_id, folder, outputs)
        detail.metrics = released_metrics(files)
        detail.plots = sorted(n for n in files if n.endswith(".png") and "/" not in n)
        log = files.get("training_log.txt")
        if log is not None:
            detail.training_log = log.decode("utf-8", errors="replace")[:MAX_LOG_CHARS]
    elif found.summary.status == "completed":
        reason = f"runs/{run_id} is not in this workspace: no receipt to verify"
        detail.receipt = ReceiptView(verified=False, reason=reason)
    return detail


def plot_bytes(ws: Workspace, run_id: str, name: str, outputs: tuple[Path, ...]) -> bytes | None:
    """A held PNG output of a verified run, re-checked against its receipt; else None."""
    if not name.endswith(".png") or not safe_output_name(name) or "/" in name:
        return None
    found = find_run(ws, run_id)
    if found is None or found.folder is None:
        return None
    receipt, _, _ = verified_receipt(ws, run_id, found.folder)
    if receipt is None:
        return None
    return held_outputs(receipt, outputs).get(name)
