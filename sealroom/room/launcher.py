"""The operator's side of a run: start the room process, serve its channel, enforce the limit.

The operator never sees plaintext and the room never holds a long-term secret. The operator
hands the room a request of public facts (run id, the signed contract, the ledger's public
key, the pipeline file, the sealed packages' folders, a staging folder), then answers its
calls (channel.py) from an OperatorDesk holding the key service, ledger, attestation key and
budget book. The room runs in a fresh empty 0700 working folder with a minimal environment;
its stderr is discarded unread. On time-out or crash the operator kills the room, removes
its staging folder and records ``run.failed`` itself, with a reason that carries no text
from the room.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sealroom.contract.pipeline_signature import (
    PipelineSignature,
    load_pipeline_signature,
    signature_path,
)
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import load_contract
from sealroom.errors import RoomError, SealroomError
from sealroom.ledger import Ledger
from sealroom.room.channel import ChannelError, Response, RoomRequest, read_line
from sealroom.room.declared import find_declarations
from sealroom.room.details import NOTE_FILE
from sealroom.room.events import RoomEvent
from sealroom.room.failures import one_line
from sealroom.room.live import LiveLog, events_dir
from sealroom.room.operator import OperatorDesk
from sealroom.room.packages import find_packages
from sealroom.room.receipt import ReceiptError, RunReceipt, load_receipt
from sealroom.sandbox import private_workdir, scrubbed_environment
from sealroom.workspace import Workspace

OnEvent = Callable[[RoomEvent], None]
# The desk attests and releases in this process now: without a handler Python's last-resort
# handler would print each INSECURE warning on the operator's terminal, which states the
# label once in its banner (and every receipt says insecure).
for _name in ("sealroom.attest", "sealroom.kms"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
STAGING_PREFIX = ".staging-"
Line = bytes | None | ChannelError  # what the reader thread queues: a line, the end, a refusal


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"run-{stamp}-{secrets.token_hex(3)}"


def time_limit(ws: Workspace, contract_id: str, timeout_s: float | None) -> float:
    """The command's --timeout, never more than the contract's max_runtime_s."""
    allowed = float(load_contract(ws, contract_id).contract.constraints.max_runtime_s)
    return min(allowed, timeout_s) if timeout_s else allowed


def _pump(stream: IO[bytes], sink: Callable[[Line], None]) -> None:
    while True:
        try:
            line = read_line(stream)
        except ChannelError as exc:  # an over-long line ends the conversation
            sink(exc)
            return
        sink(line)
        if line is None:
            return


def _drain(stream: IO[bytes]) -> None:
    """Read and drop the room's stderr (a library's message may quote data)."""
    while stream.read(1 << 16):
        pass


def _room_command() -> list[str]:
    return [sys.executable, "-m", "sealroom.room.process"]


def room_environment(workdir: Path) -> dict[str, str]:
    """The room's whole environment: nothing of the operator's but the thread count."""
    root = str(Path(__file__).resolve().parents[2])  # run the same sealroom as the operator
    keep = {"PYTHONPATH": root, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return scrubbed_environment(workdir, keep=keep)


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
    allow_unsandboxed: bool = False,
    declarations: Sequence[Path] = (),
) -> RunReceipt:
    """Run ``pipeline_path`` under ``contract_id`` in a fresh room process.

    ``pipeline_signature`` is the consumer's ``.sig`` file (default: beside the pipeline);
    without one the key service refuses every key. ``allow_unsandboxed`` lets the room run
    where the kernel has no Landlock (its receipt then says ``sandbox: none``).
    ``declarations`` are signed dataset declaration files, added to those in the workspace's
    ``declarations/`` folder; the room gets the ones the contract pins. Returns the
    verified receipt, or raises RoomError after the failure is recorded.
    """
    limit = time_limit(ws, contract_id, timeout_s)
    signature = read_signature(pipeline_path, pipeline_signature)
    signed = load_contract(ws, contract_id)
    declared = find_declarations(signed.contract, ws.home, declarations)
    run_id = run_id or new_run_id()
    staging = ws.runs / f"{STAGING_PREFIX}{run_id}"
    final = ws.runs / run_id
    desk = OperatorDesk(ws, run_id, signed)
    live = LiveLog.start(ws, run_id, contract_id)  # the dashboard's view of this run
    reason: str | None = None
    workdir = private_workdir()
    try:
        reason = _registered(ws, signed)
        if reason is None:
            request = _request(ws, signed, run_id, pipeline_path, staging, package_dirs)
            request = request.model_copy(
                update={
                    "pipeline_signature": signature,
                    "allow_unsandboxed": allow_unsandboxed,
                    "declarations": declared,
                }
            )
            staging.mkdir(mode=0o700)  # the one folder the sandboxed room may write
            reason = _serve(desk, request, workdir, limit, live.relay(on_event))
        if reason is None:
            try:
                return _accept(desk, staging, final)
            except SealroomError as exc:
                reason = f"the room's receipt was refused: {one_line(str(exc))}"
    except BaseException:
        reason = reason or "run interrupted by the operator"
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _keep_details_or_drop(signed, staging, final, reason)
        try:
            desk.finish(reason)
        finally:
            desk.close()
            live.finish(run_id, reason)
    raise RoomError(f"run {run_id} failed: {reason}")


def _keep_details_or_drop(
    signed: SignedContract, staging: Path, final: Path, reason: str | None
) -> None:
    """A failed run's staging folder goes, unless the contract allows failure details and
    the room left them (sealed to the consumer): then it becomes the run folder, unopened."""
    allowed = signed.contract.constraints.failure_details
    if reason is not None and allowed and (staging / NOTE_FILE).is_file() and not final.exists():
        staging.rename(final)
        return
    shutil.rmtree(staging, ignore_errors=True)


def _registered(ws: Workspace, signed: SignedContract) -> str | None:
    """The room checks the contract's receipt offline; only the operator can check that
    this ledger holds the entry it names."""
    if signed.receipt is None:
        return None  # the room refuses it with its own message
    with Ledger.open(ws) as ledger:
        if ledger.contains(signed.receipt):
            return None
    return (
        f"contract {signed.id}: its receipt names ledger entry {signed.receipt.seq}, "
        "which this ledger does not hold"
    )


def read_signature(pipeline_path: Path, given: Path | None) -> PipelineSignature | None:
    """The signature file named, or the one beside the pipeline if there is one.

    A missing default is not an error here: the key service refuses the release and the
    ledger records why.
    """
    if given is not None:
        return load_pipeline_signature(given)
    default = signature_path(Path(pipeline_path))
    return load_pipeline_signature(default) if default.exists() else None


def _request(
    ws: Workspace,
    signed: SignedContract,
    run_id: str,
    pipeline_path: Path,
    staging: Path,
    package_dirs: Sequence[Path],
) -> RoomRequest:
    contract = signed.contract
    digests = [d.package_digest for d in contract.datasets]
    if contract.model is not None:
        digests.append(contract.model.package_digest)
    folders = [*(Path(p).resolve() for p in package_dirs), ws.packages]
    with Ledger.open(ws) as ledger:
        ledger_key = ledger.public_key_b64
    return RoomRequest(
        run_id=run_id,
        contract=signed,
        ledger_public_key=ledger_key,
        pipeline=Path(pipeline_path).resolve(),
        staging=staging,
        packages=find_packages(digests, folders),
        # Never granted to the room, whatever else it is given (checked by the sandbox).
        secret_paths=[ws.keys, ws.parties, ws.kms_db, ws.ledger_db, ws.contracts, events_dir(ws)],
    )


def _serve(
    desk: OperatorDesk,
    request: RoomRequest,
    workdir: Path,
    limit: float,
    on_event: OnEvent | None,
) -> str | None:
    """Start the room, answer its calls, relay its events; the failure reason or None."""
    lines: queue.Queue[Line] = queue.Queue()
    proc = subprocess.Popen(
        _room_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=room_environment(workdir),
        start_new_session=True,  # the operator's Ctrl-C reaches the operator, which kills the room
    )
    assert proc.stdin and proc.stdout and proc.stderr
    threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
    threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
    outcome: RoomEvent | None = None
    reason: str | None = None
    deadline = time.monotonic() + limit
    try:
        _send(proc.stdin, request.model_dump_json())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f"room ran past its time limit of {limit:g} s and was killed"
                break
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                message = desk.answer(line)
            except ChannelError as exc:
                reason = f"room broke the channel protocol and was killed: {exc}"
                break
            if isinstance(message, Response):
                _send(proc.stdin, message.model_dump_json())
            elif message is None:
                continue
            elif message.type in ("done", "failed"):
                outcome = message
            elif on_event is not None:
                on_event(_public(message))
    except BaseException:
        proc.kill()
        _wait(proc)
        raise
    if reason is not None:
        proc.kill()
    code = _wait(proc)
    if reason is not None:
        return reason
    return _outcome_failure(desk, outcome, code)


def _send(stream: IO[bytes], text: str) -> None:
    try:
        stream.write(text.encode("utf-8") + b"\n")
        stream.flush()
    except (BrokenPipeError, OSError):
        pass  # the room is gone; its exit code says so


def _public(event: RoomEvent) -> RoomEvent:
    """An event as the operator may show it: bounded, printable text, no facts."""
    return RoomEvent(
        type=event.type,
        stage=one_line(event.stage, 40),
        message=one_line(event.message, 200),
        level="warning" if event.level == "warning" else "info",
        epoch=event.epoch,
        epochs=event.epochs,
        batch=event.batch,
        batches=event.batches,
    )


def _outcome_failure(desk: OperatorDesk, outcome: RoomEvent | None, code: int) -> str | None:
    """None for a run that completed; else the reason, from the ledger entry the room made
    (checked by the desk) or from the exit code alone."""
    if outcome is not None and outcome.type == "done" and code == 0 and desk.completed:
        return None
    failure = desk.failure
    if failure is not None:
        stage = failure.get("stage")
        return f"{failure['reason']}" + (f" (stage: {stage})" if stage else "")
    what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"room process {what}"


def _accept(desk: OperatorDesk, staging: Path, final: Path) -> RunReceipt:
    """The room's receipt, checked against the ledger key and the record the desk appended;
    only then does the staging folder become the run folder."""
    receipt = load_receipt(staging)
    with Ledger.open(desk.ws) as ledger:
        receipt.verify(ledger.public_key_b64)
    if receipt.record != desk.completed:
        raise ReceiptError(f"run {desk.run_id}: receipt.json is not the record the ledger holds")
    receipt.verify_outputs(staging)
    staging.rename(final)
    return receipt


def _wait(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
