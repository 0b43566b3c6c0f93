"""A served linear model under a restricted (or open) inference contract, for serve tests.

Not a test module: the service and app tests build their rooms with it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from sealroom.attest.evidence import Claims, Evidence
from sealroom.contract.inference import (
    ClientRef,
    InferenceTerms,
    InputSignature,
    OutputPolicy,
    ServingLimits,
)
from sealroom.contract.schema import Contract, ModelRef, PartyRef, RoomPolicy
from sealroom.contract.signed import SignedContract
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey
from sealroom.ledger.entries import Receipt
from sealroom.ledger.ledger import Ledger
from sealroom.serve.attestation import RoomAttestation, attest_room, new_instance_id
from sealroom.serve.engine import ModelEngine
from sealroom.serve.service import InferenceService, ServingRoom
from sealroom.serve.wire import InferenceRequest, ResponseKey, seal_request

MEASUREMENT = "aa" * 32
MODEL = "sha256:" + "11" * 32
FEATURES = 4
CLASSES = 5
WEIGHTS = (np.arange(FEATURES * CLASSES, dtype=np.float32).reshape(FEATURES, CLASSES) % 7) - 3


def linear_onnx() -> bytes:
    """logits = x @ W with a dynamic batch axis."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", FEATURES])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", CLASSES])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "linear",
        [x],
        [y],
        [numpy_helper.from_array(WEIGHTS, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def expected_labels(array: np.ndarray) -> list[int]:
    return [int(i) for i in np.argmax(array.astype(np.float32) @ WEIGHTS, axis=1)]


class SoftwareTee:
    """Software evidence as SoftwareAttester signs it, without a workspace: a throwaway key
    (or the one given), a chosen measurement, time and debug flag."""

    def __init__(
        self,
        measurement: str = MEASUREMENT,
        issued_at: datetime | None = None,
        debug: bool = False,
        key: SigningKey | None = None,
    ) -> None:
        self.key = key or SigningKey.generate()
        self.measurement = measurement
        self.issued_at = issued_at
        self.debug = debug

    def __call__(self, report_data: bytes) -> Evidence:
        claims = Claims(
            tee_type="software",
            measurement=self.measurement,
            insecure=True,
            debug=self.debug,
            report_data=report_data,
            issued_at=self.issued_at or datetime.now(UTC),
        )
        payload = claims.model_dump_json().encode()
        return Evidence(
            tee_type="software",
            payload=payload,
            signature=self.key.sign(payload),
            signer=self.key.public_b64,
        )


def _key() -> str:
    return SigningKey.generate().public_b64


def make_contract(
    clients: dict[str, SigningKey], *, open_: bool = False, **terms: Any
) -> SignedContract:
    parties = [
        PartyRef(name="owner", role="provider", signing_key=_key(), encryption_key=_key()),
        PartyRef(name="buyer", role="consumer", signing_key=_key(), encryption_key=_key()),
    ]
    terms.setdefault("input", InputSignature(shape=[FEATURES]))
    contract = Contract(
        id="serve-test",
        purpose="serve a classifier",
        parties=parties,
        model=ModelRef(owner="owner", package_digest=MODEL),
        consumer="buyer",
        room=RoomPolicy(measurements=[MEASUREMENT], allow_insecure=True),
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
        expires=datetime(2030, 1, 1, tzinfo=UTC),
        inference=InferenceTerms(
            open=open_,
            clients=[ClientRef(name=n, signing_key=k.public_b64) for n, k in clients.items()],
            **terms,
        ),
    )  # type: ignore[call-arg]
    return SignedContract(contract=contract)


@dataclass
class Room:
    """One service plus what a client and the tests need around it."""

    service: InferenceService
    contract: SignedContract
    keys: dict[str, SigningKey]
    hpke: RoomHpkeKey
    ledger: Ledger
    tee: SoftwareTee
    sink_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, payload)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """The payloads the service committed under ``kind``, in order."""
        return [payload for k, payload in self.sink_calls if k == kind]

    def request(
        self,
        array: np.ndarray,
        client: str | None = "alice",
        *,
        key: SigningKey | None = None,
        contract_digest: str | None = None,
        issued_at: float | None = None,
        request_id: bytes | None = None,
        room_public: bytes | None = None,
    ) -> tuple[bytes, ResponseKey]:
        request = InferenceRequest(
            request_id=request_id or os.urandom(16),
            issued_at=time.time() if issued_at is None else issued_at,
            contract_digest=contract_digest or self.contract.digest,
            client=client,
            array=array,
        )
        signer = key if key is not None else (self.keys.get(client) if client else None)
        return seal_request(room_public or self.hpke.public_raw, request, signer)

    @staticmethod
    def open(body: bytes, response_key: ResponseKey) -> dict[str, Any]:
        return dict(json.loads(response_key.open(body)))


def make_room(
    tmp_path: Path,
    *,
    open_: bool = False,
    budget: int | None = None,
    limits: ServingLimits | None = None,
    output: OutputPolicy | None = None,
    charged: dict[str, int] | None = None,
    lease_size: int | None = None,
    fail_sink: bool = False,
    keys: dict[str, SigningKey] | None = None,
    **service_args: Any,
) -> Room:
    if keys is None:
        keys = {} if open_ else {"alice": SigningKey.generate(), "bob": SigningKey.generate()}
    terms: dict[str, Any] = {"query_budget": budget}
    if limits is not None:
        terms["limits"] = limits
    if output is not None:
        terms["output"] = output
    contract = make_contract(keys, open_=open_, **terms)
    hpke = RoomHpkeKey.generate()
    room_key = SigningKey.generate()
    instance = new_instance_id()
    tee = SoftwareTee()
    ledger = Ledger(tmp_path / f"ledger-{instance}.db", SigningKey.generate())

    def attest(nonce: bytes) -> RoomAttestation:
        return attest_room(
            tee,
            nonce=nonce,
            hpke_public_key=hpke.public_raw,
            room_key=room_key.public_b64,
            model_digest=MODEL,
            contract_digest=contract.digest,
            instance=instance,
        )

    room = Room(
        service=None,  # type: ignore[arg-type]  # set below: the sink needs the room
        contract=contract,
        keys=keys,
        hpke=hpke,
        ledger=ledger,
        tee=tee,
    )

    def sink(kind: str, payload: dict[str, Any]) -> Receipt:
        room.sink_calls.append((kind, payload))
        if fail_sink:
            raise RuntimeError("operator unreachable")
        return ledger.append(kind, payload)

    room.service = InferenceService(
        signed=contract,
        model_digest=MODEL,
        engine=ModelEngine.from_bytes(linear_onnx(), contract.contract.inference.input),  # type: ignore[union-attr]
        room=ServingRoom(
            instance=instance,
            room_key=room_key,
            hpke_key=hpke,
            measurement=MEASUREMENT,
            insecure=True,
            attestation=attest(os.urandom(32)),
        ),
        sink=sink,
        attest=attest,
        charged=charged,
        lease_size=lease_size,
        **service_args,
    )
    return room
