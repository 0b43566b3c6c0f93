"""The room_run task: a contract-bound clean-room run started from a lab job.

The lab itself runs outside any room; this task is how an experiment asks a workspace's
operator machinery for a real `sealroom run` (the same ``run_room`` the CLI calls), so
a testbed can compare sealed runs with its own. Only the receipt's public facts come
back: the run id, the receipt's digest, the contract's public metrics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.values import json_blob


def _resolve(home: Path, value: str, what: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else home / path
    if not path.exists():
        raise LabError(f"{what} {str(path)[:200]}: not found")
    return path


@task(
    "room_run",
    outputs=("receipt",),
    description="A contract-bound `sealroom run` in a workspace; outputs its run id and receipt",
    args={
        "workspace": "the sealroom workspace folder (its home)",
        "contract": "contract id registered in that workspace",
        "pipeline": "composed pipeline file (relative paths: inside the workspace)",
        "timeout_s": "seconds before the room is killed (≤ the contract's limit)",
        "allow_unsandboxed": "run where the kernel has no Landlock (receipt says sandbox: none)",
    },
)
def room_run(
    ctx: TaskContext,
    workspace: str,
    contract: str,
    pipeline: str,
    timeout_s: float | None = None,
    allow_unsandboxed: bool = False,
) -> dict[str, Any]:
    from sealroom.room.launcher import run_room
    from sealroom.room.receipt import RECEIPT_FILE
    from sealroom.workspace import Workspace

    ws = Workspace.find(Path(str(workspace)).expanduser())
    pipeline_path = _resolve(ws.home, str(pipeline), "pipeline")
    ctx.log(f"room_run: contract {contract}, pipeline {pipeline_path.name}, workspace {ws.home}")

    def on_event(event: Any) -> None:
        if event.type in ("stage", "log"):
            ctx.log(f"room: {event.message}")

    receipt = run_room(
        ws,
        str(contract),
        pipeline_path,
        timeout_s=None if timeout_s is None else float(timeout_s),
        on_event=on_event,
        allow_unsandboxed=bool(allow_unsandboxed),
    )
    run_dir = ws.runs / receipt.run_id
    digest = hashlib.sha256((run_dir / RECEIPT_FILE).read_bytes()).hexdigest()
    record = receipt.record
    public = {k: v for k, v in record.metrics.items() if isinstance(v, int | float)}
    for name, value in sorted(public.items()):
        ctx.metric(f"room_{name}", float(value))
    ctx.log(f"room_run: run {receipt.run_id} completed, receipt sha256 {digest}")
    summary = {
        "run_id": receipt.run_id,
        "receipt_sha256": digest,
        "contract": str(contract),
        "consumer": record.consumer,
        "run_dir": str(run_dir),
        "public_metrics": public,
        "insecure": bool(record.insecure),
    }
    json.dumps(summary, allow_nan=False)  # refuse NaN metrics before the artifact is built
    return {"receipt": json_blob("receipt", "room_run.json", summary)}
