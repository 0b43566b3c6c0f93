"""A real workspace of the size the dashboard must stay fast on: 100 runs, 1,000 ledger entries.

Built through the operator's real code path, quickly (no training, no room process): three
parties, one registered private contract, both keys imported into the embedded key service,
then each run plays the room's side of the channel against a real :class:`OperatorDesk`
(``run.started``, budget reserved, attestation, model and data keys released to ephemeral
keys, outputs sealed to the consumer in ``runs/<id>/``, budget settled, a ``run.completed``
record signed by the run's own key and countersigned by the ledger, ``receipt.json``).
Denied key releases (a room quoting a nonce the key service never issued, as a replay would)
fill the ledger up to the wanted size. Used by ``test_ui_load.py`` and ``bench_ui.py``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealroom.attest import SoftwareAttester, make_report_data, measure_runtime
from sealroom.contract.store import load_contract
from sealroom.crypto.hpke import generate_ephemeral
from sealroom.errors import KeyReleaseDenied
from sealroom.kms import KeyService, ReleasePolicy, ReleaseRequest
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import pipeline_digest
from sealroom.room.channel import (
    AttestCall,
    NonceCall,
    RecordCall,
    ReleaseCall,
    Request,
    ReserveCall,
    SettleCall,
)
from sealroom.room.operator import OperatorDesk
from sealroom.room.outputs import seal_outputs
from sealroom.room.packages import owner_identity
from sealroom.room.receipt import (
    COMPLETED,
    EMBEDDED_CUSTODY,
    STARTED,
    RoomInfo,
    RunReceipt,
    RunRecord,
)
from sealroom.room.runkey import RunKey, evidence_claims, room_report_data
from sealroom.room.session import now_iso, sign_record
from sealroom.workspace import Workspace
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    DECLARATION_DIGEST,
    MODEL_DIGEST,
    consumer_signature,
    make_parties,
    make_pipeline,
    store_contract,
)

RUNS = 100
ENTRIES = 1000
EPSILON = 2.0  # per run (make_pipeline's privacy section)


@dataclass(frozen=True)
class BigWorkspace:
    ws: Workspace
    contract_id: str
    run_ids: list[str]
    entries: int
    outputs: Path  # the consumer's decrypted outputs of some runs, `--outputs` style


def decrypt_ends(big: BigWorkspace) -> None:
    """The consumer decrypts the two newest runs and the oldest into ``big.outputs/<run id>``
    (verified): the runs a list shows first, whichever way it sorts."""
    from sealroom.crypto.identity import load_party
    from sealroom.room.consumer import decrypt_run

    consumer = load_party(big.ws, "lab")
    for run_id in dict.fromkeys([*big.run_ids[-2:], big.run_ids[0]]):
        decrypt_run(big.ws, run_id, consumer, big.outputs / run_id)


def build(home: Path, runs: int = RUNS, entries: int = ENTRIES) -> BigWorkspace:
    """The workspace at ``home`` (created): ``runs`` completed runs, exactly ``entries``
    ledger entries, the outputs of the runs at both ends decrypted beside it (``home``'s
    sibling ``outputs``). Needs a party passphrase in effect."""
    ws = Workspace.create(home)
    parties = make_parties(ws)
    privacy = {
        "per_run_epsilon": 3.0,
        "per_run_delta": 1e-5,
        "total_epsilon": EPSILON * runs * 2,
        "total_delta": 1e-5 * runs * 2,
    }
    dataset = {
        "id": "mnist",
        "provider": "hospital",
        "package_digest": DATASET_DIGEST,
        "declaration_digest": DECLARATION_DIGEST,
        "privacy": privacy,
    }
    with Ledger.open(ws) as ledger:  # the contract pins its ledger, as `contract propose` does
        ledger_key = ledger.public_key_b64
    store_contract(ws, parties, datasets=[dataset], ledger_public_key=ledger_key)
    with KeyService(ws) as service:
        for digest, owner in ((DATASET_DIGEST, "hospital"), (MODEL_DIGEST, "lab")):
            policy = ReleasePolicy(
                contract_id=CONTRACT_ID,
                package_digest=digest,
                measurements=[measure_runtime()],
                allow_insecure=True,
            )
            service.import_key(digest, secrets.token_bytes(32), owner, CONTRACT_ID, policy)
    player = _Runs(ws)
    run_ids = [player.complete(f"run-{i:03d}-{secrets.token_hex(4)}", i) for i in range(runs)]
    with Ledger.open(ws) as ledger:
        count = len(ledger)
    if count > entries:
        raise ValueError(f"{runs} runs already make {count} ledger entries (> {entries})")
    with KeyService(ws) as service:
        attester = SoftwareAttester(ws)
        for _ in range(entries - count):
            _replayed_nonce(service, attester, player)
    big = BigWorkspace(ws, CONTRACT_ID, run_ids, entries, home.parent / "outputs")
    decrypt_ends(big)
    return big


class _Runs:
    """The room's side of the channel for one run after another, against the real desk."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.signed = load_contract(ws, CONTRACT_ID)
        self.pipeline = make_pipeline()
        self.digest = pipeline_digest(self.pipeline)
        self.signature = consumer_signature(ws, self.digest)
        with Ledger.open(ws) as ledger:
            self.ledger_key = ledger.public_key_b64
        self.consumer = owner_identity(self.signed.contract, "lab")
        self._ids = 0

    def _call(self, desk: OperatorDesk, call: Any) -> dict[str, Any]:
        self._ids += 1
        response = desk.handle(Request(id=self._ids, call=call))
        if not response.ok:
            raise AssertionError(f"the operator refused {call.op}: {response.error}")
        return response.result

    def release_request(
        self, nonce: bytes, evidence_of: Any, run_id: str, package: str
    ) -> ReleaseRequest:
        _, public_b64 = generate_ephemeral()
        return ReleaseRequest(
            evidence=evidence_of(make_report_data(nonce, public_b64)),
            nonce=nonce,
            ephemeral_public_key=public_b64,
            contract_id=CONTRACT_ID,
            pipeline_digest=self.digest,
            package_digest=package,
            pipeline=self.pipeline.model_dump(mode="json"),
            pipeline_signature=self.signature,
            run_id=run_id,
        )

    def complete(self, run_id: str, index: int) -> str:
        desk = OperatorDesk(self.ws, run_id, self.signed)
        try:
            return self._complete(desk, run_id, index)
        finally:
            desk.close()

    def _complete(self, desk: OperatorDesk, run_id: str, index: int) -> str:
        from sealroom.attest.evidence import Evidence

        started = now_iso()
        self._call(
            desk,
            RecordCall(
                op="record",
                kind=STARTED,
                payload={
                    "run_id": run_id,
                    "contract_id": CONTRACT_ID,
                    "pipeline_digest": self.digest,
                },
            ),
        )
        self._call(desk, ReserveCall(op="budget.reserve", epsilon=EPSILON, delta=1e-5))
        run_key = RunKey()

        def attest(report_data: bytes) -> Evidence:
            result = self._call(desk, AttestCall(op="attest", report_data=report_data))
            return Evidence.model_validate(result["evidence"])

        evidence = attest(room_report_data(run_id, run_key.public_b64))
        claims = evidence_claims(evidence)
        for package in (MODEL_DIGEST, DATASET_DIGEST):  # the model's key first, as the room
            nonce = self._call(desk, NonceCall(op="nonce", package_digest=package))["nonce"]
            request = self.release_request(_unb64(nonce), attest, run_id, package)
            self._call(desk, ReleaseCall(op="release", request=request))
        run_dir = self.ws.runs / run_id
        run_dir.mkdir(mode=0o700)
        files = _outputs(index)
        kinds = {
            "model.onnx": "model",
            "metrics.json": "metrics",
            "privacy_report.json": "privacy_report",
            "loss.png": "plots",
        }
        sealed, key_sha = seal_outputs(files, kinds, self.consumer.encryption_key, run_id, run_dir)
        spent = round(EPSILON * (0.9 + 0.001 * index), 6)
        self._call(desk, SettleCall(op="budget.settle", spent_epsilon=spent))
        info = RoomInfo(
            tee_type=claims.tee_type, measurement=claims.measurement, insecure=claims.insecure
        )
        record = RunRecord(
            run_id=run_id,
            contract_id=CONTRACT_ID,
            contract_digest=self.signed.digest,
            pipeline=self.pipeline.name,
            pipeline_digest=self.digest,
            datasets={"mnist": DATASET_DIGEST},
            model_digest=MODEL_DIGEST,
            room=info,
            insecure=info.insecure,
            consumer="lab",
            consumer_fingerprint=self.consumer.fingerprint,
            outputs=sealed,
            outputs_key_sha256=key_sha,
            metrics={},
            metrics_sha256=_sha256(files["metrics.json"]),
            privacy=json.loads(files["privacy_report.json"]),
            key_custody=EMBEDDED_CUSTODY,
            sandbox="landlock",
            started=started,
            ended=now_iso(),
            room_key=run_key.public_b64,
            room_evidence=evidence,
        )
        record = sign_record(record, run_key)
        result = self._call(
            desk, RecordCall(op="record", kind=COMPLETED, payload=record.model_dump(mode="json"))
        )
        receipt = RunReceipt.model_validate(
            {"record": record, "receipt": result["receipt"], "ledger_public_key": self.ledger_key}
        )
        receipt.verify(self.ledger_key)
        receipt.verify_outputs(run_dir)
        receipt.save(run_dir)
        return run_id


def _replayed_nonce(service: KeyService, attester: SoftwareAttester, player: _Runs) -> None:
    """A release quoting a nonce the key service never issued: a ``key.denied`` entry."""
    nonce = secrets.token_bytes(32)
    request = player.release_request(nonce, attester.attest, "replay", DATASET_DIGEST)
    try:
        service.release(request)
    except KeyReleaseDenied:
        return
    raise AssertionError("a release with an unknown nonce was not denied")


def _outputs(index: int) -> dict[str, bytes]:
    """What a run releases: a model file, its metrics and its privacy report (as JSON)."""
    accuracy = 0.80 + 0.15 * (index % 10) / 10
    metrics = {"metrics": {"accuracy": round(accuracy, 4), "loss": round(1.1 - accuracy, 4)}}
    report = {
        "epsilon_spent": round(EPSILON * 0.9, 4),
        "epsilon_target": EPSILON,
        "delta": 1e-5,
        "noise_multiplier": 1.1,
        "steps": 120,
        "accountant": "rdp",
    }
    return {
        "model.onnx": b"ONNX stand-in model bytes " + secrets.token_bytes(2048),
        "metrics.json": json.dumps(metrics, sort_keys=True).encode(),
        "privacy_report.json": json.dumps(report, sort_keys=True).encode(),
        "loss.png": _png(index),
    }


def _png(index: int) -> bytes:
    """A small valid PNG (a grey 8x8 square) standing for a run's loss plot."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)  # 8x8, 8-bit greyscale
    rows = b"".join(b"\x00" + bytes([index % 256]) * 8 for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)
