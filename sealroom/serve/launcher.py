"""The operator's side of serving: bind the socket, start the room, answer it, stop it.

The operator binds the loopback listening socket itself and hands the room only that file
descriptor (``pass_fds``): the sandboxed room can still ``accept()`` on it, while seccomp
keeps denying ``socket()`` and Landlock TCP ``bind``/``connect``, so the room can reach
nobody and listen nowhere else. The room runs in a fresh empty 0700 folder with a scrubbed
environment, its stderr discarded unread; it talks to a :class:`ServeDesk` over its pipes.
The operator never sees a request, a response or the model in plaintext.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from sealroom.contract.signed import SignedContract
from sealroom.contract.store import load_contract
from sealroom.errors import SealroomError
from sealroom.files import write_atomic
from sealroom.httpguard import check_loopback, write_token
from sealroom.ledger import Ledger
from sealroom.room.channel import ChannelError, Response
from sealroom.room.events import RoomEvent
from sealroom.room.failures import one_line
from sealroom.room.launcher import _drain, _pump, _send, room_environment
from sealroom.room.packages import find_packages
from sealroom.sandbox import private_workdir
from sealroom.serve.attestation import new_instance_id
from sealroom.serve.desk import ServeDesk
from sealroom.serve.room import SERVING, ServeRequest
from sealroom.workspace import Workspace

for _name in ("sealroom.attest", "sealroom.kms"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

STOP_GRACE_S = 10.0
STARTUP_TIMEOUT_S = 120.0  # key release, decryption, model load and attestation
OnReady = Callable[[str, str], None]
Line = bytes | None | ChannelError


class ServeError(SealroomError):
    """The serving room could not start, or stopped on a failure."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on a loopback address (refused elsewhere: no TLS here)."""
    check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    name = "127.0.0.1" if host == "localhost" else host
    try:
        return socket.create_server((name, port), family=family, backlog=1024)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def stats_token_path(ws: Workspace, contract_id: str) -> Path:
    """Where ``sealroom serve`` keeps the bearer token of ``GET /v1/stats`` (0600)."""
    return ws.home / "serve" / f"{contract_id}.stats-token"


def serving_url_path(ws: Workspace, contract_id: str) -> Path:
    """Where ``sealroom serve`` writes the room's loopback URL while it serves (0600):
    the dashboard reads it, with the stats token, to poll ``GET /v1/stats``."""
    return ws.home / "serve" / f"{contract_id}.url"


def _announce(ws: Workspace, contract_id: str, url: str) -> Callable[[], None]:
    """Write the serving URL file; the returned function removes it (the room stopped)."""
    path = serving_url_path(ws, contract_id)
    write_atomic(path, f"{url}\n".encode("ascii"))  # mkstemp: created 0600
    return lambda: path.unlink(missing_ok=True)


@contextlib.contextmanager
def serving_lock(ws: Workspace, contract_id: str) -> Iterator[None]:
    """One serving room per contract and workspace: two would each spend the same query
    budget from the same reloaded totals. The lock dies with the operator's process."""
    folder = ws.home / "serve"
    folder.mkdir(mode=0o700, exist_ok=True)
    with open(folder / f"{contract_id}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServeError(
                f"contract {contract_id} is already being served from this workspace"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def current_model_digest(ws: Workspace, signed: SignedContract) -> str:
    """The model the ledger says is provisioned under this contract (and not retired)."""
    from sealroom.contract.provision import current_model

    with Ledger.open(ws) as ledger:
        state = current_model(ledger, signed)
    if state.digest is None or state.retired:
        raise ServeError(
            f"contract {signed.id}: no model is provisioned (`sealroom model provision`)"
        )
    return state.digest


def serving_request(ws: Workspace, signed: SignedContract, socket_fd: int) -> ServeRequest:
    """The room's request: the contract, its current model's package, the ledger's key."""
    if signed.contract.inference is None:
        raise ServeError(f"contract {signed.id} has no inference terms: it serves nothing")
    if signed.receipt is None:
        raise ServeError(f"contract {signed.id} is not registered in the ledger")
    with Ledger.open(ws) as ledger:
        if not ledger.contains(signed.receipt):
            raise ServeError(f"contract {signed.id}: this ledger does not hold its registration")
        ledger_key = ledger.public_key_b64
    digest = current_model_digest(ws, signed)
    packages = find_packages([digest], [ws.packages])
    if digest not in packages:
        raise ServeError(f"contract {signed.id}: model package {digest} is not in {ws.packages}")
    return ServeRequest(
        instance=new_instance_id(),
        contract=signed,
        ledger_public_key=ledger_key,
        model_digest=digest,
        packages=packages,
        socket_fd=socket_fd,
        threads=_threads(),
        secret_paths=[ws.keys, ws.parties, ws.kms_db, ws.ledger_db, ws.contracts],
        stats_token=write_token(stats_token_path(ws, signed.id)),
    )


def serving_environment(workdir: Path) -> dict[str, str]:
    """The room's environment, with one thread at import: numpy's BLAS starts
    OMP_NUM_THREADS threads when imported, before the room confines itself, and the sandbox
    refuses a process that already has threads. ONNX Runtime gets the operator's thread
    count from the request (``threads``), after confinement."""
    return {**room_environment(workdir), "OMP_NUM_THREADS": "1"}


def _threads() -> int:
    """ONNX Runtime's intra-op threads: the operator's OMP_NUM_THREADS, else 1."""
    text = os.environ.get("OMP_NUM_THREADS", "")
    return min(int(text), 256) if text.isdigit() and int(text) > 0 else 1


def serve_room(
    ws: Workspace,
    contract_id: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8470,
    on_ready: OnReady | None = None,
    allow_unsandboxed: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``contract_id``'s current model from a sandboxed room until stopped.

    ``on_ready(url, instance)`` runs once the room accepts connections. Returns after a stop
    (``stop`` set, SIGINT or SIGTERM); raises ServeError if the room fails or dies.
    Either way ``inference.stopped`` is in the ledger once the room had started.
    """
    signed = load_contract(ws, contract_id)
    with serving_lock(ws, contract_id):
        _serve(ws, signed, host, port, on_ready, allow_unsandboxed, stop or threading.Event())


def _serve(
    ws: Workspace,
    signed: SignedContract,
    host: str,
    port: int,
    on_ready: OnReady | None,
    allow_unsandboxed: bool,
    stop: threading.Event,
) -> None:
    sock = bind_listener(host, port)
    restore = _stop_on_sigterm(stop)
    workdir = private_workdir()
    desk: ServeDesk | None = None
    reason: str | None = "interrupted by the operator"
    try:
        request = serving_request(ws, signed, sock.fileno())
        request = request.model_copy(update={"allow_unsandboxed": allow_unsandboxed})
        desk = ServeDesk(ws, signed, request.instance, request.model_digest)
        reason = _run(desk, request, sock, workdir, stop, on_ready)
    finally:
        sock.close()
        restore()
        shutil.rmtree(workdir, ignore_errors=True)
        if desk is not None:
            try:
                desk.finish(reason)
            finally:
                desk.close()
    if reason is not None:
        raise ServeError(f"serving {signed.id} failed: {reason}")


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """In the main thread, SIGTERM sets ``stop`` (SIGINT raises KeyboardInterrupt there)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _run(
    desk: ServeDesk,
    request: ServeRequest,
    sock: socket.socket,
    workdir: Path,
    stop: threading.Event,
    on_ready: OnReady | None,
) -> str | None:
    """Start the room, answer it until it ends or ``stop``; the failure reason or None."""
    lines: queue.Queue[Line] = queue.Queue()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealroom.serve.room"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=serving_environment(workdir),
        pass_fds=(sock.fileno(),),
        start_new_session=True,  # Ctrl-C reaches the operator, which stops the room
    )
    assert proc.stdin and proc.stdout and proc.stderr
    threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
    threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
    url = url_of(sock)
    reason: str | None = None
    serving = False
    withdraw: Callable[[], None] = lambda: None  # noqa: E731
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        _send(proc.stdin, request.model_dump_json())
        while not stop.is_set():
            if not serving and time.monotonic() > deadline:
                reason = f"room did not start serving within {STARTUP_TIMEOUT_S:g} s"
                break
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                reason = reason or _ended(proc, serving)
                break
            try:
                message = desk.answer(line)
            except ChannelError as exc:
                reason = f"room broke the channel protocol and was stopped: {exc}"
                break
            if isinstance(message, Response):
                _send(proc.stdin, message.model_dump_json())
            elif isinstance(message, RoomEvent):
                if message.type == "failed":
                    reason = one_line(message.message, 200) or "room failed"
                elif message.type == "stage" and message.stage == SERVING and not serving:
                    serving = True
                    withdraw = _announce(desk.ws, desk.signed.id, url)
                    if on_ready is not None:
                        on_ready(url, request.instance)
    finally:
        withdraw()  # first: a dashboard stops polling a room that is going away
        _stop_room(proc, lines, desk)
    return reason


def _ended(proc: subprocess.Popen[bytes], serving: bool) -> str:
    code = _wait(proc, STOP_GRACE_S)
    what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"room process {what}" + ("" if serving else " before serving")


def _stop_room(proc: subprocess.Popen[bytes], lines: queue.Queue[Line], desk: ServeDesk) -> None:
    """SIGTERM, then answer what the room still asks while it flushes (its last receipts
    commitment), then kill it after the grace period."""
    if proc.poll() is None:
        proc.terminate()
    assert proc.stdin is not None
    deadline = _now() + STOP_GRACE_S
    while proc.poll() is None and _now() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None or isinstance(line, ChannelError):
            break
        try:
            message = desk.answer(line)
        except ChannelError:
            break
        if isinstance(message, Response):
            _send(proc.stdin, message.model_dump_json())
    if proc.poll() is None:
        proc.kill()
    _wait(proc, STOP_GRACE_S)


def _now() -> float:
    return time.monotonic()


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
