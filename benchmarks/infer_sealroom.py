"""The sealroom side of the inference benchmark: the REAL serving room, and its client.

``SealroomRoom`` sets up a throwaway workspace the way `sealroom demo inference` does it
by hand (parties, the model sealed by its owner, an inference contract whose limits are the
batch setting under test, the key imported, the model provisioned) and runs
``serve_room`` in a thread: the room itself is its own sandboxed process, so the bench's
clients never share its GIL. ``request`` is what InferenceClient does per request (seal to
the attested HPKE key with the client's signature inside, POST, open the response with this
request's key, parse), written for asyncio so 32 clients can run in one process.
``hpke_costs`` times each cryptographic step alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from infer_load import RawClient, Request
from infer_models import BenchModel

from sealroom.attest.software import attestation_key
from sealroom.contract.canonical import canonical_bytes
from sealroom.contract.schema import Contract
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import save_contract
from sealroom.contract.workflow import register
from sealroom.crypto.identity import Party, create_party
from sealroom.crypto.sealing import seal
from sealroom.crypto.signing import SigningKey, unb64
from sealroom.kms.models import ReleasePolicy
from sealroom.kms.service import KeyService
from sealroom.ledger import Ledger
from sealroom.serve.attestation import RoomAttestation, verify_room_attestation
from sealroom.serve.wire import InferenceRequest, seal_request
from sealroom.workspace import Workspace

CONTRACT_ID = "bench-serve"
CLIENT = "bench"
START_TIMEOUT_S = 120.0


class SealroomRoom:
    """A provisioned model served by a real room on 127.0.0.1:0 until ``stop``."""

    def __init__(
        self,
        model: BenchModel,
        batching: dict[str, float],
        root: Path,
        allow_unsandboxed: bool = False,
    ) -> None:
        from sealroom.attest.measure import measure_runtime

        root.mkdir(parents=True, exist_ok=True)
        self.ws = Workspace.create(root / "workspace")
        lab = create_party(self.ws, "lab", "consumer")
        operator = create_party(self.ws, "operator", "operator")
        self.client_key = SigningKey.generate()
        source = root / "model-src"
        source.mkdir()
        (source / "model.onnx").write_bytes(model.onnx)
        sealed = seal(source, lab, self.ws.packages / "model.sealed", format="model")
        (source / "model.onnx").unlink()
        self.signed = _contract(
            self.ws, lab, operator, sealed.digest, self.client_key, model, batching
        )
        policy = ReleasePolicy(
            contract_id=CONTRACT_ID,
            package_digest=sealed.digest,
            measurements=[measure_runtime()],
            allow_insecure=True,
        )
        with KeyService(self.ws) as service:
            service.import_key(sealed.digest, sealed.data_key, "lab", CONTRACT_ID, policy)
        _provision(self.ws, sealed.digest)
        self.model_digest = sealed.digest
        self._stop = threading.Event()
        self.allow_unsandboxed = allow_unsandboxed  # machines without Landlock/seccomp
        self._thread: threading.Thread | None = None
        self.url = ""
        self.pid = 0  # the room process, once started
        self.last_receipt: dict[str, Any] = {}  # the receipt proof of the last answer

    def start(self) -> SealroomRoom:
        from sealroom.serve.launcher import serve_room

        ready = threading.Event()
        errors: list[BaseException] = []
        before = set(_children(os.getpid()))

        def on_ready(url: str, instance: str) -> None:
            self.url = url
            ready.set()

        def run() -> None:
            try:
                serve_room(
                    self.ws, CONTRACT_ID, port=0, on_ready=on_ready, stop=self._stop,
                    allow_unsandboxed=self.allow_unsandboxed,
                )  # fmt: skip
            except BaseException as exc:
                errors.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="bench-room", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S) or errors:
            self.stop()
            raise RuntimeError(f"the room did not start: {errors[0] if errors else 'timeout'}")
        rooms = [
            pid for pid in set(_children(os.getpid())) - before
            if b"sealroom.serve.room" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]  # fmt: skip
        if len(rooms) != 1:
            self.stop()
            raise RuntimeError(f"expected one new room process, found {len(rooms)}")
        self.pid = rooms[0]
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def __enter__(self) -> SealroomRoom:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def attestation(self) -> RoomAttestation:
        """Fetch and verify a fresh attestation (once per client, as InferenceClient does)."""
        nonce = secrets.token_bytes(32)
        answer = httpx.get(f"{self.url}/v1/attestation", params={"nonce": nonce.hex()})
        answer.raise_for_status()
        att = RoomAttestation.model_validate_json(answer.content)
        verify_room_attestation(
            att, nonce=nonce, contract=self.signed, model_digest=self.model_digest,
            trusted_signers={attestation_key(self.ws).public_b64},
        )  # fmt: skip
        return att

    def request(self, example: np.ndarray) -> Request:
        """Per request: seal (client signature inside), POST, open with its own key, parse."""
        att = self.attestation()
        room_key = unb64(att.hpke_public_key, "HPKE key")
        digest, key = self.signed.digest, self.client_key

        async def send(http: RawClient, index: int) -> None:
            request = InferenceRequest.new(example, digest, CLIENT)
            body, response_key = seal_request(room_key, request, key)
            answer = await http.post("/v1/infer", body, "application/octet-stream")
            if answer.status_code != 200:
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.content[:200]!r}")
            document = json.loads(response_key.open(answer.content))
            if len(document["outputs"]) != len(example):
                raise RuntimeError("wrong number of outputs")
            self.last_receipt = document["receipt"]

        return send

    def receipt_check_us(self, n: int = 200) -> float:
        """Median µs for a client to verify the last answer's receipt proof offline, as
        InferenceClient does per answer (inclusion, batch signature, attestation binding)."""
        from sealroom.serve.receipts import ReceiptProof, verify_receipt_proof

        trusted = {attestation_key(self.ws).public_b64}
        proof = ReceiptProof.model_validate(self.last_receipt)
        return _median_us(lambda: verify_receipt_proof(proof, trusted_signers=trusted), n)

    def stats(self) -> dict[str, Any]:
        from sealroom.httpguard import read_token
        from sealroom.serve.launcher import stats_token_path  # the operator's /v1/stats token

        token = read_token(stats_token_path(self.ws, CONTRACT_ID))
        answer = httpx.get(f"{self.url}/v1/stats", headers={"authorization": f"Bearer {token}"})
        answer.raise_for_status()
        return dict(answer.json())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(c) for c in text)
    return found


def _contract(
    ws: Workspace, lab: Party, operator: Party, digest: str, client: SigningKey,
    model: BenchModel, batching: dict[str, float],
) -> SignedContract:  # fmt: skip
    from sealroom.attest.measure import measure_runtime

    now = datetime.now(UTC)
    with Ledger.open(ws) as ledger:
        ledger_key = ledger.public_key_b64
    parties = [
        {"name": p.identity.name, "role": role, "signing_key": p.identity.signing_key,
         "encryption_key": p.identity.encryption_key}
        for p, role in ((lab, "consumer"), (operator, "operator"))
    ]  # fmt: skip
    contract = Contract.model_validate(
        {
            "id": CONTRACT_ID,
            "purpose": "benchmark",
            "parties": parties,
            "model": {"owner": "lab", "package_digest": digest},
            "consumer": "lab",
            "room": {"measurements": [measure_runtime()], "allow_insecure": True},
            "not_before": (now - timedelta(minutes=5)).isoformat(),
            "expires": (now + timedelta(days=1)).isoformat(),
            "ledger_public_key": ledger_key,
            "inference": {
                "clients": [{"name": CLIENT, "signing_key": client.public_b64}],
                "output": {"kind": "label"},
                "input": {"dtype": "float32", "shape": list(model.shape)},
                "limits": {
                    "max_batch_size": int(batching["max_batch_size"]),
                    "max_wait_ms": batching["max_wait_ms"],
                    "queue_size": 4096,
                    "request_timeout_s": 120,
                    "requests_per_second": 1e6,
                    "burst": 1_000_000,
                },
            },
        }
    )
    signed = SignedContract(contract=contract)
    for party in (lab, operator):
        signed = signed.with_signature(party.name, party.sign(canonical_bytes(contract)))
    signed = register(ws, signed)
    save_contract(ws, signed)
    return signed


def _provision(ws: Workspace, digest: str) -> None:
    from sealroom.contract.provision import provision_model

    provision_model(ws, CONTRACT_ID, "lab", "provision", digest)


def hpke_costs(model: BenchModel, n: int) -> dict[str, float]:
    """Median microseconds of each crypto step of one batch-1 request, in-process."""
    from sealroom.crypto.hpke_context import RoomHpkeKey
    from sealroom.serve.wire import open_request, verify_client_signature

    room = RoomHpkeKey.generate()
    client = SigningKey.generate()
    example = np.random.default_rng(0).random((1, *model.shape), dtype=np.float32)
    response = json.dumps({"outputs": [{"label": 3}], "receipt": {"pad": "x" * 1500}}).encode()
    times: dict[str, list[float]] = {
        "client seal request": [], "server open request": [],
        "server verify client signature": [], "server seal response": [],
        "client open response": [],
    }  # fmt: skip

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        times[stage].append((now - since) * 1e6)
        return now

    for _ in range(n):
        request = InferenceRequest.new(example, "sha256:" + "0" * 64, CLIENT)
        t = time.perf_counter()
        body, key = seal_request(room.public_raw, request, client)
        t = lap("client seal request", t)
        opened, sealer = open_request(room, body)
        t = lap("server open request", t)
        verify_client_signature(opened, client.public_b64)
        t = lap("server verify client signature", t)
        sealed = sealer.seal(response)
        t = lap("server seal response", t)
        key.open(sealed)
        lap("client open response", t)
    costs = {stage: statistics.median(values) for stage, values in times.items()}
    costs["HPKE total (4 steps, no signature)"] = sum(
        v for k, v in costs.items() if "signature" not in k
    )
    costs["sha256 of body (receipt)"] = _median_us(lambda: hashlib.sha256(body).digest(), n)
    return costs


def _median_us(call: Callable[[], Any], n: int) -> float:
    values = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        values.append((time.perf_counter() - started) * 1e6)
    return statistics.median(values)
