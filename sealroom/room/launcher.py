"""The operator's side of a run: start the room process, relay its events, enforce the limit.

The operator never sees plaintext: it hands the room a request of public facts (workspace,
contract id, pipeline file, run id), reads JSON event lines back, and on time-out or crash
kills the room, removes its staging folder and records ``run.failed`` itself.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sealroom.contract.pipeline_signature import (
    PipelineSignature,
    load_pipeline_signature,
    signature_path,
)
from sealroom.contract.store import load_contract
from sealroom.errors import RoomError
from sealroom.ledger import Ledger
from sealroom.room.events import RoomEvent
from sealroom.room.receipt import FAILED, RunReceipt, load_receipt
from sealroom.workspace import Workspace

OnEvent = Callable[[RoomEvent], None]
STAGING_PREFIX = ".staging-"


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"run-{stamp}-{secrets.token_hex(3)}"


def time_limit(ws: Workspace, contract_id: str, timeout_s: float | None) -> float:
    """The command's --timeout, never more than the contract's max_runtime_s."""
    allowed = float(load_contract(ws, contract_id).contract.constraints.max_runtime_s)
    return min(allowed, timeout_s) if timeout_s else allowed


def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line)
    sink("")  # end of stream


def _room_command() -> list[str]:
    return [sys.executable, "-m", "sealroom.room.process"]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    root = str(Path(__file__).resolve().parents[2])  # run the same sealroom as the operator
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run_room(
    ws: Workspace,
    contract_id: str,
    pipeline_path: Path,
    *,
    timeout_s: float | None = None,
    on_event: OnEvent | None = None,
    package_dirs: Sequence[Path] = (),
    run_id: str | None = None,
    pipeline_signature: Path | None = None,
) -> RunReceipt:
    """Run ``pipeline_path`` under ``contract_id`` in a fresh room process.

    ``pipeline_signature`` is the consumer's ``.sig`` file (default: beside the pipeline);
    without one the key service refuses every key. Returns the verified-on-write receipt,
    or raises RoomError after the failure is recorded.
    """
    limit = time_limit(ws, contract_id, timeout_s)
    signature = read_signature(pipeline_path, pipeline_signature)
    run_id = run_id or new_run_id()
    staging = ws.runs / f"{STAGING_PREFIX}{run_id}"
    final = ws.runs / run_id
    request = {
        "home": str(ws.home),
        "contract_id": contract_id,
        "pipeline": str(Path(pipeline_path).resolve()),
        "run_id": run_id,
        "staging": str(staging),
        "final": str(final),
        "package_dirs": [str(Path(p).resolve()) for p in package_dirs],
        "pipeline_signature": signature.model_dump(mode="json") if signature else None,
    }
    events: queue.Queue[str] = queue.Queue()
    errors: deque[str] = deque(maxlen=20)
    proc = subprocess.Popen(
        _room_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        start_new_session=True,  # the operator's Ctrl-C reaches the operator, which kills the room
    )
    assert proc.stdin and proc.stdout and proc.stderr
    threading.Thread(target=_pump, args=(proc.stdout, events.put), daemon=True).start()
    threading.Thread(
        target=_pump, args=(proc.stderr, lambda s: errors.append(s.rstrip())), daemon=True
    ).start()
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.close()
    outcome: RoomEvent | None = None
    reason: str | None = None
    deadline = time.monotonic() + limit
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f"room ran past its time limit of {limit:g} s and was killed"
                break
            try:
                line = events.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line == "":
                break
            event = RoomEvent.from_line(line)
            if event is None:
                continue
            if event.type in ("done", "failed"):
                outcome = event
            elif on_event is not None:
                on_event(event)
    except BaseException:
        reason = "run interrupted by the operator"
        raise
    finally:
        if reason is not None:
            proc.kill()
        code = _wait(proc)
        shutil.rmtree(staging, ignore_errors=True)
        succeeded = outcome is not None and outcome.type == "done" and code == 0
        room_recorded = outcome is not None and outcome.type == "failed"
        if not succeeded and not room_recorded:
            reason = reason or _crash_reason(code, errors)
            _record_failure(ws, run_id, contract_id, reason)
    if outcome is not None and outcome.type == "done" and code == 0:
        receipt = load_receipt(final)
        with Ledger.open(ws) as ledger:
            receipt.verify(ledger.public_key_b64)
        receipt.verify_outputs(final)
        return receipt
    if reason is None and outcome is not None and outcome.type == "failed":
        reason = outcome.message
        if outcome.stage:
            reason = f"{reason} (stage: {outcome.stage})"
    raise RoomError(f"run {run_id} failed: {reason}")


def read_signature(pipeline_path: Path, given: Path | None) -> PipelineSignature | None:
    """The signature file named, or the one beside the pipeline if there is one.

    A missing default is not an error here: the key service refuses the release and the
    ledger records why.
    """
    if given is not None:
        return load_pipeline_signature(given)
    default = signature_path(Path(pipeline_path))
    return load_pipeline_signature(default) if default.exists() else None


def _wait(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _crash_reason(code: int, errors: deque[str]) -> str:
    last = next((line for line in reversed(errors) if line.strip()), "")
    what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"room process {what}" + (f": {last[:200]}" if last else "")


def _record_failure(ws: Workspace, run_id: str, contract_id: str, reason: str) -> None:
    with Ledger.open(ws) as ledger:
        ledger.append(
            FAILED,
            {
                "run_id": run_id,
                "contract_id": contract_id,
                "stage": "room",
                "reason": reason,
                "recorded_by": "operator",
            },
        )
