"""The story behind ``sealroom demo inference``: train in a room, then serve what was trained.

Steps 1–7 are the training story of ``scenarios/inference`` (sealroom/room/story.py; the
hospital seals all but the last 300 digits). Then the lab decrypts its trained model, seals
it as its own package and proposes an inference contract for one client, the clinic, which
lives in ITS OWN home (own identity, own copy of the contract, trusting the room host's
attestation key, never the lab's or the operator's keys). The lab provisions the model, the
operator serves it from a room on loopback, and the clinic classifies its held-out digits
through the encrypted channel; the served labels are compared with the decrypted model run
by plain ONNX Runtime on the same images, and every receipt is verified.
"""

from __future__ import annotations

import json
import queue
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.errors import RoomError
from sealroom.room.story import DEMO_PASSPHRASE, Narrator, Story, load_scenario
from sealroom.workspace import Workspace

SCENARIO = "inference"
INFERENCE_CONTRACT = "inference.yaml"
CLIENT = "clinic"
TRAINED_MODEL = "trained_model.onnx"
SERVE_START_TIMEOUT_S = 120.0
COMMIT_WAIT_S = 5.0  # the room commits receipt roots to the ledger every half second


@dataclass
class InferenceResult:
    """What the demo shows: served vs local accuracy, latency, receipts, where things are."""

    home: Path
    clinic_home: Path
    run_id: str | None  # the training run (None: a reused model)
    contract_id: str
    url: str
    images: int
    served_accuracy: float
    local_accuracy: float
    agreeing: int  # examples whose served label equals the local model's
    latencies_ms: list[float] = field(default_factory=list)
    receipts_verified: int = 0
    committed_in_ledger: bool = False  # the last receipt's batch root, ledger-signed
    insecure: bool = True
    seconds: dict[str, float] = field(default_factory=dict)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "clinic_home": str(self.clinic_home),
            "run_id": self.run_id,
            "contract_id": self.contract_id,
            "url": self.url,
            "images": self.images,
            "served_accuracy": round(self.served_accuracy, 4),
            "local_accuracy": round(self.local_accuracy, 4),
            "agreeing": self.agreeing,
            "p50_ms": round(self.percentile_ms(50), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3),
            "receipts_verified": self.receipts_verified,
            "committed_in_ledger": self.committed_in_ledger,
            "insecure": self.insecure,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


@dataclass
class _Queried:
    url: str
    labels: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    verified: int = 0
    committed: bool = False
    insecure: bool = True


class InferenceStory(Story):
    """Plays the inference demo in ``base``: the training story, then serving (steps 8–12)."""

    def __init__(
        self,
        base: Path,
        narrator: Narrator,
        epochs: int | None = None,
        images: int | None = None,
        reuse: Path | None = None,
    ) -> None:
        super().__init__(load_scenario(SCENARIO), base, narrator, epochs=epochs)
        self.images = images  # held-out digits to classify (None: all 300)
        self.reuse = reuse  # an ONNX model the lab already has: no training room

    def play(self) -> InferenceResult:  # type: ignore[override]
        from sealroom.crypto.passphrase import passphrase_in_effect

        with passphrase_in_effect(DEMO_PASSPHRASE):
            return self._serve_story()

    def _serve_story(self) -> InferenceResult:
        n = self.narrator
        clock = time.monotonic()
        run_id: str | None = None
        if self.reuse is None:
            trained = self._play()
            ws, run_id = Workspace.find(trained.home), trained.receipt.run_id
            model_file = trained.outputs / TRAINED_MODEL
            if not model_file.exists():
                raise RoomError(f"the training run released no {TRAINED_MODEL}")
        else:
            ws, model_file = self._reuse(self.reuse), self.reuse
        seconds = {"train": time.monotonic() - clock}

        clock = time.monotonic()
        n.step(f"8. Consumer {self.scenario.consumer} seals its trained model as its own package")
        served_dir = self.base / f"consumer-{self.scenario.consumer}" / "served-model"
        served_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_file, served_dir / "model.onnx")
        package = self._seal(
            served_dir, self.scenario.consumer, ws.packages / "served-model.sealed", "model"
        )

        n.step(f"9. The {CLIENT}, in its own home, makes its identity and holds its digits")
        clinic_ws = self._clinic(ws)
        data = self.base / f"{CLIENT}-data"
        self._run_step(["scenarios.inference.digits", "held-out", "{out}"], data)

        n.step("10. The inference contract: proposed by the model owner, signed, registered")
        contract_id = self._inference_contract(ws, clinic_ws, package.digest)

        n.step(f"11. Owner {self.scenario.consumer} imports the model key and provisions it")
        self._import_keys(contract_id, [package])
        self._provision(ws, contract_id)
        seconds["provision"] = time.monotonic() - clock

        images = np.load(data / "images.npy", allow_pickle=False)
        labels = np.load(data / "labels.npy", allow_pickle=False)
        if self.images is not None:
            images, labels = images[: self.images], labels[: self.images]
        local = _local_labels(model_file.read_bytes(), images)

        n.step(f"12. Operator {self.scenario.operator} serves it; the {CLIENT} classifies")
        clock = time.monotonic()
        queried = self._serve_and_query(ws, clinic_ws, contract_id, images)
        seconds["serve"] = time.monotonic() - clock
        served = np.asarray(queried.labels)
        agreeing = int(np.sum(served == local))
        n.note(f"served labels equal the local model's on {agreeing} of {len(images)} digits")
        return InferenceResult(
            home=ws.home,
            clinic_home=clinic_ws.home,
            run_id=run_id,
            contract_id=contract_id,
            url=queried.url,
            images=len(images),
            served_accuracy=float(np.mean(served == labels)),
            local_accuracy=float(np.mean(local == labels)),
            agreeing=agreeing,
            latencies_ms=queried.latencies_ms,
            receipts_verified=queried.verified,
            committed_in_ledger=queried.committed,
            insecure=queried.insecure,
            seconds=seconds,
        )

    def _reuse(self, model: Path) -> Workspace:
        """No training: the lab and the operator in a fresh workspace, the lab's own model."""
        from sealroom.crypto.identity import create_party

        n, sc = self.narrator, self.scenario
        n.step(f"1-7. No training: consumer {sc.consumer} reuses its model {model.name}")
        if not model.is_file():
            raise RoomError(f"{model}: no such model file to reuse")
        self.ws = ws = Workspace.create(self.base / "workspace")
        create_party(ws, sc.consumer, "consumer")
        create_party(ws, sc.operator, "operator")
        return ws

    def _clinic(self, ws: Workspace) -> Workspace:
        """The clinic's own home and identity; only its PUBLIC identity reaches the lab."""
        from sealroom.crypto.identity import create_party, import_identity, load_identity

        clinic_ws = Workspace.create(self.base / f"{CLIENT}-home")
        create_party(clinic_ws, CLIENT, "consumer")
        public = self.base / f"{CLIENT}.identity.json"
        public.write_text(json.dumps(load_identity(clinic_ws, CLIENT).document(), indent=2))
        import_identity(ws, public)
        self.narrator.note(f"{CLIENT}: home {clinic_ws.home}; public identity {public.name}")
        return clinic_ws

    def _inference_contract(self, ws: Workspace, clinic_ws: Workspace, digest: str) -> str:
        """Lab proposes (the clinic's key from its public identity), operator signs; the clinic
        imports the bundle and trusts the room host's attestation key."""
        import yaml

        from sealroom.attest.software import attestation_key, trust_attester
        from sealroom.contract.loading import read_document
        from sealroom.contract.store import load_contract
        from sealroom.contract.workflow import import_contract, propose_contract, sign_contract

        draft: dict[str, Any] = read_document(self.scenario.folder / INFERENCE_CONTRACT)
        draft["model"]["package_digest"] = digest
        path = self.base / f"consumer-{self.scenario.consumer}" / INFERENCE_CONTRACT
        path.write_text(yaml.safe_dump(draft, sort_keys=False), encoding="utf-8")
        signed = propose_contract(ws, path, self.scenario.consumer)
        for name in signed.missing_signers:
            signed = sign_contract(ws, signed.id, name)
        assert signed.receipt is not None
        self.narrator.note(
            f"contract {signed.id} signed by {', '.join(sorted(signed.signatures))}; "
            f"ledger entry {signed.receipt.seq}"
        )
        bundle = self.base / f"{signed.id}.contract.json"
        bundle.write_text(load_contract(ws, signed.id).model_dump_json(indent=2) + "\n")
        import_contract(clinic_ws, bundle)
        trust_attester(clinic_ws, attestation_key(ws).public_b64)
        self.narrator.note(f"{CLIENT} imported {bundle.name}; trusts the room host's attester")
        return signed.id

    def _provision(self, ws: Workspace, contract_id: str) -> None:
        from sealroom.contract.provision import provision_model

        statement, state, receipt = provision_model(
            ws, contract_id, self.scenario.consumer, "provision"
        )
        self.narrator.note(
            f"model {state.digest} provisioned by {statement.signer} (ledger entry {receipt.seq})"
        )

    def _serve_and_query(
        self, ws: Workspace, clinic_ws: Workspace, contract_id: str, images: np.ndarray
    ) -> _Queried:
        """Serve from a room (a thread here runs the operator's side) while the clinic, with
        only its own home, attests the room and sends one digit a request."""
        from sealroom.attest.software import trusted_attesters
        from sealroom.contract.store import load_contract
        from sealroom.serve.client import InferenceClient
        from sealroom.serve.launcher import serve_room

        ready: queue.Queue[str] = queue.Queue()
        stop = threading.Event()
        failure: list[BaseException] = []

        def operator() -> None:
            try:
                serve_room(
                    ws, contract_id, host="127.0.0.1", port=0, stop=stop,
                    on_ready=lambda url, instance: ready.put(url),
                )  # fmt: skip
            except BaseException as exc:
                failure.append(exc)
                ready.put("")

        thread = threading.Thread(target=operator, name="sealroom-demo-serve", daemon=True)
        thread.start()
        try:
            url = ready.get(timeout=SERVE_START_TIMEOUT_S)
        except queue.Empty:
            url = ""
        if not url:
            stop.set()
            thread.join(30)
            reason = str(failure[0]) if failure else "it did not start in time"
            raise RoomError(f"the serving room did not start: {reason}")
        self.narrator.note(f"room serving at {url}")
        out = _Queried(url)
        try:
            signed = load_contract(clinic_ws, contract_id)  # the clinic's own copy
            with InferenceClient(
                url, signed, trusted_attesters=trusted_attesters(clinic_ws),
                identity=_client_identity(clinic_ws),
            ) as client:  # fmt: skip
                client.attest()
                for check, result in client.verification_document():
                    self.narrator.note(f"{check}: {result}")
                out.insecure = bool(client.claims.insecure)
                for image in images:
                    answer = client.infer(image[np.newaxis])
                    out.labels.append(int(answer.outputs[0]["label"]))
                    out.latencies_ms.append(answer.latency_s * 1000.0)
                    out.verified += 1  # infer() raises unless the receipt verifies
                committed = client.fetch_commitment(answer.proof, wait_s=COMMIT_WAIT_S)
                out.committed = committed is not None
                if committed is not None:
                    self.narrator.note(
                        f"last batch root committed: ledger entry {committed.ledger.seq}"
                    )
        finally:
            stop.set()
            thread.join(60)
        if failure:
            raise RoomError(f"the serving room failed: {failure[0]}")
        return out


def _local_labels(onnx: bytes, images: np.ndarray) -> np.ndarray:
    """The consumer's own view: its decrypted model run by plain ONNX Runtime."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: images.astype(np.float32)})[0]
    return np.argmax(logits, axis=1)


def _client_identity(clinic_ws: Workspace) -> tuple[str, Any]:
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.signing import SigningKey

    party = load_party(clinic_ws, CLIENT)
    return CLIENT, SigningKey(party._signing)
