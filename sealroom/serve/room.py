"""The serving room: ``python -m sealroom.serve.room`` (started by sealroom.serve.launcher).

It reads one ServeRequest line on stdin, confines itself (the training room's sandbox:
Landlock file system and TCP bind/connect denied, seccomp denies ``socket()``), and from
then on talks to the operator over its pipes only, while clients reach it through the one
listening socket the operator bound and passed in (``accept()`` on an inherited socket
needs neither ``socket()`` nor ``bind()``). It generates its HPKE key and its receipt key,
gets the model key released to an ephemeral key its evidence binds, decrypts the model in
memory, loads it into ONNX Runtime from bytes, attests (``inference.started``), reloads
the charged query totals (ledger-signed) and serves. Before it serves, a failure is one
fixed-category line (sealroom.room.failures); nothing of the model or of a request leaves.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from sealroom.contract.signed import SignedContract
from sealroom.errors import SealroomError
from sealroom.room.events import RoomEvent

if TYPE_CHECKING:
    from sealroom.room.events import EventWriter
    from sealroom.serve.attestation import RoomAttestation

INSTANCE_PATTERN = r"^srv-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$"
SERVING = "serving"  # the stage event the room sends once it accepts connections
STARTED = "inference.started"


class ServeRequest(BaseModel):
    """What the operator hands the serving room: public facts and one socket's number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance: str = Field(pattern=INSTANCE_PATTERN)
    contract: SignedContract
    ledger_public_key: str
    model_digest: str
    packages: dict[str, Path]
    socket_fd: int = Field(ge=3)
    threads: int = Field(default=1, ge=1, le=256)
    allow_unsandboxed: bool = False
    secret_paths: list[Path] = Field(default_factory=list)
    # The operator's bearer token for GET /v1/stats (aggregates only; clients need none).
    stats_token: str = Field(min_length=16)


class LockedWriter:
    """Events and calls share fd 1: each line is written whole, under one lock."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self._lock:
            self.writer.write_line(line)

    def __call__(self, event: RoomEvent) -> None:
        self.write_line(event.to_line())


def enter_sandbox(request: ServeRequest) -> str:
    """Confine the room before it opens its package or imports ONNX Runtime (threads).

    It may read the Python runtime and its model package, write only its private working
    directory, and open no socket: it serves on the inherited one. Irreversible.
    """
    from sealroom.room.process import confine_room

    return confine_room(
        request.contract.contract.constraints.room_limits,
        read_paths=tuple(request.packages.values()),
        write_paths=(),
        allow_unsandboxed=request.allow_unsandboxed,
        secret_paths=request.secret_paths,
    )


class ServingInstance:
    """One serving instance inside the sandbox; ``prepare`` then ``serve``."""

    def __init__(self, request: ServeRequest, channel: Any, emit: LockedWriter) -> None:
        from sealroom.crypto.hpke_context import RoomHpkeKey
        from sealroom.crypto.signing import SigningKey

        self.request = request
        self.signed = request.contract
        self.channel = channel
        self.emit = emit
        self.stage = "start"
        self.keys_released = False
        self.hpke = RoomHpkeKey.generate()
        self.room_key = SigningKey.generate()
        self.engine: Any = None
        self.startup: RoomAttestation | None = None
        self.charged: dict[str, int] = {}

    # ------------------------------------------------------------------ before serving

    def prepare(self) -> None:
        self.stage = "contract"
        self._check_contract()
        self.stage = "keys"
        model = self._load_model()
        self.stage = "attest"
        self.startup = self.attest(self.channel.nonce(self.request.model_digest))
        self.channel.record(STARTED, self._started_payload())
        self.stage = "serve"
        self.charged = self._reload_counts()
        del model

    def _ledger_key(self) -> str:
        pinned = self.signed.contract.ledger_public_key
        return pinned or self.request.ledger_public_key

    def _check_contract(self) -> None:
        from sealroom.errors import RoomError

        signed = self.signed
        if signed.contract.inference is None or signed.contract.model is None:
            raise RoomError(f"contract {signed.id} has no inference terms or no model")
        signed.verify(self._ledger_key())  # signatures, in force, registration receipt

    def _load_model(self) -> bytes:
        """Model key released to an ephemeral key the evidence binds; decrypted in memory."""
        from sealroom.attest.evidence import make_report_data
        from sealroom.crypto.hpke import generate_ephemeral, open_sealed
        from sealroom.errors import RoomError
        from sealroom.kms.models import ModelReleaseRequest, release_info
        from sealroom.room.packages import decrypt_in_memory, open_verified, owner_identity
        from sealroom.serve.engine import ModelEngine

        req, contract = self.request, self.signed.contract
        assert contract.model is not None and contract.inference is not None
        path = req.packages.get(req.model_digest)
        if path is None:
            raise RoomError(f"model package {req.model_digest} was not handed to the room")
        owner = owner_identity(contract, contract.model.owner)
        package = open_verified(path, owner, req.model_digest)
        nonce = self.channel.nonce(req.model_digest)
        private_key, public_b64 = generate_ephemeral()
        evidence = self.channel.attest(make_report_data(nonce, public_b64))
        release = ModelReleaseRequest(
            evidence=evidence,
            nonce=nonce,
            ephemeral_public_key=public_b64,
            contract_id=contract.id,
            package_digest=req.model_digest,
            instance=req.instance,
        )
        sealed = self.channel.release_model(release.model_dump(mode="json"))
        key = open_sealed(private_key, sealed, release_info(req.model_digest))
        self.keys_released = True
        files = decrypt_in_memory(package, key)
        models = [name for name in files if name.endswith(".onnx")]
        if len(models) != 1:
            raise RoomError("the model package must hold exactly one .onnx file")
        onnx = files[models[0]]
        del files, key
        self.engine = ModelEngine.from_bytes(onnx, contract.inference.input, req.threads)
        return onnx

    def attest(self, nonce: bytes) -> RoomAttestation:
        """Evidence binding this nonce, the HPKE key, the receipt key, model and contract."""
        from sealroom.serve.attestation import attest_room

        return attest_room(
            self.channel.attest,
            nonce=nonce,
            hpke_public_key=self.hpke.public_raw,
            room_key=self.room_key.public_b64,
            model_digest=self.request.model_digest,
            contract_digest=self.signed.digest,
            instance=self.request.instance,
        )

    def _started_payload(self) -> dict[str, Any]:
        assert self.startup is not None
        return {
            "contract_id": self.signed.id,
            "instance": self.request.instance,
            "room_key": self.startup.room_key,
            "hpke_public_key": self.startup.hpke_public_key,
            "model_digest": self.request.model_digest,
            "attestation": self.startup.model_dump(mode="json"),
        }

    def _reload_counts(self) -> dict[str, int]:
        """The charged totals the ledger holds (its latest ``inference.charged`` entries),
        trusted only once their signature verifies."""
        from sealroom.errors import RoomError
        from sealroom.serve.budget import CHARGED_KIND, charged_totals

        totals: dict[str, int] = {}
        for entry in self.channel.counts(self.signed.id):
            entry.receipt.verify(self._ledger_key())
            entry.receipt.check_payload(entry.payload)
            if (
                entry.receipt.kind != CHARGED_KIND
                or entry.payload.get("contract_id") != self.signed.id
            ):
                raise RoomError("the charged totals handed to the room are for something else")
            for name, count in charged_totals(entry.payload).items():
                totals[name] = max(totals.get(name, 0), count)
        return totals

    def record(self, kind: str, payload: dict[str, Any]) -> Any:
        """The committer's sink: one ``inference.charged`` or ``inference.receipts`` entry,
        recorded by the operator; the ledger's receipt."""
        return self.channel.record(kind, payload).receipt

    # ------------------------------------------------------------------ serving

    def serve(self) -> None:
        """Serve on the inherited socket until SIGTERM; the app's lifespan flushes the last
        receipt commitments through the channel before uvicorn returns."""
        from sealroom.serve.hosting import inherited_socket, serve_on_socket

        sock = inherited_socket(self.request.socket_fd)
        app = self.build_app(sock.getsockname()[1])
        expires = self.signed.contract.expires
        ended = serve_on_socket(
            app, sock, lambda: self.emit(_serving_event()), stop_at=expires.timestamp()
        )
        if ended == "deadline":
            raise ContractExpired(f"contract {self.signed.id} expired at {expires.isoformat()}")

    def build_app(self, port: int) -> Any:
        """The InferenceService behind the hardened app, keyed with this room's keys."""
        from sealroom.serve.app import create_app, guard_settings
        from sealroom.serve.attestation import evidence_claims_of
        from sealroom.serve.service import InferenceService, ServingRoom

        assert self.startup is not None and self.engine is not None
        claims = evidence_claims_of(self.startup, None)
        room = ServingRoom(
            instance=self.request.instance,
            room_key=self.room_key,
            hpke_key=self.hpke,
            measurement=claims.measurement,
            insecure=claims.insecure,
            attestation=self.startup,
        )
        service = InferenceService(
            signed=self.signed,
            model_digest=self.request.model_digest,
            engine=self.engine,
            room=room,
            sink=self.record,
            attest=self.attest,
            charged=self.charged,
        )
        return create_app(service, guard_settings(service, port, self.request.stats_token))


class ContractExpired(SealroomError):
    """The contract's term ended while the room served: it stops (one line, public facts)."""


def _serving_event() -> RoomEvent:
    return RoomEvent(type="stage", stage=SERVING, message="serving")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"signal {signal.Signals(signum).name}")


def die_with_the_operator() -> None:
    """The kernel kills the room when the operator's serving thread ends, however it ends
    (kill -9 included): a room nobody answers must not go on serving without committing
    its receipts. If the operator is already gone, leave now."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() == 1:
        os._exit(1)


def main() -> int:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.umask(0o077)
    die_with_the_operator()
    from sealroom.room.process import _private_stdout, _Relay

    emit = LockedWriter(_private_stdout())
    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("sealroom").addHandler(_Relay(emit))  # type: ignore[arg-type]
    logging.getLogger("sealroom").setLevel(logging.INFO)
    logging.getLogger("sealroom").propagate = False

    from sealroom.room.channel import RoomChannel, read_line
    from sealroom.room.failures import failure_reason

    room: ServingInstance | None = None
    try:
        request = ServeRequest.model_validate_json(read_line(sys.stdin.buffer) or b"")
        sandbox = enter_sandbox(request)
        if sandbox != "none":
            import onnxruntime  # noqa: F401 (reserve its address space before the limit)

            from sealroom.sandbox import limit_memory_growth

            limits = request.contract.contract.constraints.room_limits
            limit_memory_growth(limits.memory_mb << 20)
        channel = RoomChannel(emit.write_line, sys.stdin.buffer)
        room = ServingInstance(request, channel, emit)
        room.prepare()
        room.serve()
    except ContractExpired as exc:  # public facts only: said as it is
        emit(RoomEvent(type="failed", stage="serve", message=str(exc)))
        return 1
    except BaseException as exc:  # every failure ends the room the same way
        stage = room.stage if room is not None else "start"
        released = room.keys_released if room is not None else False
        emit(RoomEvent(type="failed", stage=stage, message=failure_reason(exc, stage, released)))
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)
