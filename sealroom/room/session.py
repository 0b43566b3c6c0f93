"""One run inside the room, step by step; every step fails closed.

Order (DESIGN.md step 5): contract → policy → privacy budget → attest → keys and in-memory
decryption → train and evaluate → release filter → seal to the consumer → settle the budget
→ signed receipt. Plaintext (data keys, decrypted files, the trained model) lives only in
this object's memory and is dropped, with the staging folder, whatever happens.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealroom.attest.software import INSECURE_LABEL, SoftwareAttester
from sealroom.contract.pipeline_signature import PipelineSignature
from sealroom.contract.schema import Contract
from sealroom.contract.store import verify_contract
from sealroom.errors import PolicyDenied, SealroomError
from sealroom.ledger import Ledger
from sealroom.pipeline.compose import load_pipeline, pipeline_digest
from sealroom.pipeline.schema import Pipeline
from sealroom.policy.pipeline_check import check_pipeline
from sealroom.privacy.release import release_line, released_metrics
from sealroom.room import privacy_hooks
from sealroom.room.events import STAGES, RoomEvent
from sealroom.room.outputs import seal_outputs
from sealroom.room.packages import (
    decrypt_in_memory,
    locate_packages,
    open_verified,
    owner_identity,
)
from sealroom.room.receipt import COMPLETED, FAILED, STARTED, RunReceipt, RunRecord
from sealroom.workspace import Workspace

if TYPE_CHECKING:
    from sealroom.attest.evidence import Attester
    from sealroom.data import FileTree
    from sealroom.privacy.trainer import DPTrainerFactory
    from sealroom.train.loop import TrainEvent

log = logging.getLogger("sealroom.room")

Emit = Callable[[RoomEvent], None]


@dataclass
class RoomRequest:
    """What the operator asks of the room (no secrets: everything here is public)."""

    home: Path
    contract_id: str
    pipeline_path: Path
    run_id: str
    staging: Path
    final: Path
    package_dirs: list[Path] = field(default_factory=list)
    # The consumer's signature on the pipeline, passed on to the key service with each request.
    pipeline_signature: PipelineSignature | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RoomSession:
    """Runs one request; ``run()`` returns the receipt or raises after recording the failure."""

    def __init__(self, request: RoomRequest, emit: Emit, attester: Attester | None = None) -> None:
        self.request = request
        self.ws = Workspace.find(request.home)
        self.emit = emit
        self.attester = attester
        self.stage = "start"
        self.started = now_iso()
        self.reserved = False
        self.dp_factory: DPTrainerFactory | None = None  # remembers what a private run spent
        self.released_metrics: set[str] = set()
        self.contract: Contract | None = None
        self.pipeline_digest = ""

    # ------------------------------------------------------------------ plumbing

    def enter(self, stage: str) -> None:
        self.stage = stage
        self.emit(RoomEvent(type="stage", stage=stage, message=STAGES[stage]))

    def say(self, message: str, level: str = "info") -> None:
        self.emit(RoomEvent(type="log", message=message, level=level))

    def _relay(self, event: TrainEvent) -> None:
        if event.kind == "log":
            # The operator sees only statistics the contract releases (they are in the
            # public receipt anyway); a per-step accuracy on private batches is not one.
            line = release_line(event.message, self.released_metrics)
            if line is not None:
                self.say(line)
        elif event.kind in ("epoch", "batch"):
            self.emit(
                RoomEvent(
                    type=event.kind,
                    epoch=event.epoch,
                    epochs=event.epochs,
                    batch=event.batch,
                    batches=event.batches,
                )
            )

    # ------------------------------------------------------------------ the run

    def run(self) -> RunReceipt:
        try:
            return self._run()
        except BaseException as exc:
            self._fail(failure_reason(exc))
            raise
        finally:
            self.dp_factory = None

    def _run(self) -> RunReceipt:
        req = self.request
        self.enter("contract")
        signed = verify_contract(self.ws, req.contract_id)
        contract = self.contract = signed.contract
        self.say(f"contract {contract.id} verified: {len(signed.signatures)} signatures, in force")

        self.enter("policy")
        pipeline = load_pipeline(req.pipeline_path)
        digest = self.pipeline_digest = pipeline_digest(pipeline)
        packages = {d.id: d.package_digest for d in contract.datasets}
        decision = check_pipeline(contract, pipeline, packages=packages)
        if not decision.allow:
            raise PolicyDenied(
                f"pipeline {pipeline.name} violates contract {contract.id}: "
                + "; ".join(decision.violations)
            )
        self.say(f"pipeline {pipeline.name} ({digest[:19]}…) is allowed by the contract")
        with Ledger.open(self.ws) as ledger:
            ledger.append(
                STARTED,
                {"run_id": req.run_id, "contract_id": contract.id, "pipeline_digest": digest},
            )

        private = pipeline.privacy is not None
        self.released_metrics = released_metrics(contract.constraints, private)
        if private or any(d.privacy is not None for d in contract.datasets):
            self.enter("budget")
            self.reserved = privacy_hooks.reserve(self.ws, req.run_id, contract, pipeline)
            if self.reserved:
                self.say("privacy budget reserved")

        self.enter("attest")
        attester = self.attester or SoftwareAttester(self.ws)
        info = privacy_hooks.room_info(self.ws, attester)
        if info.insecure:
            self.say(INSECURE_LABEL, level="warning")

        self.enter("keys")
        trees, model_tree = self._open_packages(contract, pipeline, digest, attester)

        self.enter("train")
        outcome = self._train(pipeline, trees, model_tree)
        del trees, model_tree

        self.enter("release")
        released = privacy_hooks.filter_outputs(outcome.outputs, contract.constraints, private)
        kinds = outcome.kinds
        outcome = None
        consumer = owner_identity(contract, contract.consumer)
        req.staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed, key_sha = seal_outputs(
            released, kinds, consumer.encryption_key, req.run_id, req.staging
        )
        metrics = _released_metrics(released)
        privacy_facts = _privacy_facts(released)
        del released
        self.say(f"{len(sealed)} outputs sealed to {consumer.name}")

        self.enter("receipt")
        if self.reserved:
            privacy_hooks.settle(self.ws, req.run_id, self._spent())
            self.reserved = False
        record = RunRecord(
            run_id=req.run_id,
            contract_id=contract.id,
            contract_digest=signed.digest,
            pipeline=pipeline.name,
            pipeline_digest=digest,
            datasets={
                d.id: d.package_digest
                for d in contract.datasets
                if d.id in {p.id for p in pipeline.datasets}
            },
            model_digest=contract.model.package_digest if contract.model else None,
            room=info,
            insecure=info.insecure,
            consumer=consumer.name,
            consumer_fingerprint=consumer.fingerprint,
            outputs=sealed,
            outputs_key_sha256=key_sha,
            metrics=metrics,
            privacy=privacy_facts,
            started=self.started,
            ended=now_iso(),
        )
        with Ledger.open(self.ws) as ledger:
            receipt = ledger.append(COMPLETED, record.model_dump(mode="json"))
            run_receipt = RunReceipt(
                record=record, receipt=receipt, ledger_public_key=ledger.public_key_b64
            )
        run_receipt.save(req.staging)
        req.staging.rename(req.final)
        return run_receipt

    def _open_packages(
        self, contract: Contract, pipeline: Pipeline, digest: str, attester: Attester
    ) -> tuple[dict[str, FileTree], FileTree]:
        from sealroom.data import MemoryTree
        from sealroom.kms.fetch import fetch_data_key

        owners = {d.package_digest: d.provider for d in contract.datasets}
        if contract.model is not None:
            owners[contract.model.package_digest] = contract.model.owner
        wanted = {d.id for d in pipeline.datasets}
        needed = [d.package_digest for d in contract.datasets if d.id in wanted]
        if contract.model is not None:
            needed.append(contract.model.package_digest)
        folders = [*self.request.package_dirs, self.ws.packages]
        paths = locate_packages(needed, folders)
        files: dict[str, dict[str, bytes]] = {}
        with privacy_hooks.key_service(self.ws) as service:
            for package_digest in dict.fromkeys(needed):  # one release per package digest
                package = open_verified(
                    paths[package_digest],
                    owner_identity(contract, owners[package_digest]),
                    package_digest,
                )
                key = fetch_data_key(
                    service,
                    attester,
                    contract_id=contract.id,
                    package_digest=package_digest,
                    pipeline=pipeline,
                    pipeline_digest=digest,
                    pipeline_signature=self.request.pipeline_signature,
                    run_id=self.request.run_id,
                )
                files[package_digest] = decrypt_in_memory(package, key)
                del key
                self.say(
                    f"key released for {package_digest[:19]}…; "
                    f"{len(files[package_digest])} files decrypted in memory"
                )
        trees: dict[str, FileTree] = {
            d.id: MemoryTree(files[d.package_digest]) for d in contract.datasets if d.id in wanted
        }
        model_files = files.get(contract.model.package_digest, {}) if contract.model else {}
        return trees, MemoryTree(model_files)

    def _train(self, pipeline: Pipeline, trees: dict[str, FileTree], model_tree: FileTree) -> Any:
        from sealroom.train.run import MemorySink, run_pipeline

        self.dp_factory = privacy_hooks.dp_trainer_factory(pipeline)
        return run_pipeline(
            pipeline,
            trees,
            model_tree,
            sink=MemorySink(),
            on_event=self._relay,
            trainer_factory=self.dp_factory,
        )

    def _spent(self) -> float:
        """ε the run spent so far: 0.0 for a plain or unstarted run."""
        return 0.0 if self.dp_factory is None else self.dp_factory.spent_epsilon()

    def _fail(self, reason: str) -> None:
        """Record the failure, return the unspent budget, drop the staging folder."""
        shutil.rmtree(self.request.staging, ignore_errors=True)
        try:
            if self.reserved:
                privacy_hooks.settle(self.ws, self.request.run_id, self._spent())
                self.reserved = False
        finally:
            with Ledger.open(self.ws) as ledger:
                ledger.append(
                    FAILED,
                    {
                        "run_id": self.request.run_id,
                        "contract_id": self.request.contract_id,
                        "pipeline_digest": self.pipeline_digest,
                        "stage": self.stage,
                        "reason": reason,
                        "recorded_by": "room",
                    },
                )


def _released_metrics(released: dict[str, bytes]) -> dict[str, Any]:
    data = released.get("metrics.json")
    if data is None:
        return {}
    metrics = json.loads(data).get("metrics", {})
    return metrics if isinstance(metrics, dict) else {}


def _privacy_facts(released: dict[str, bytes]) -> dict[str, Any] | None:
    data = released.get("privacy_report.json")
    if data is None:
        return None
    report = json.loads(data)
    keys = ("epsilon_spent", "epsilon_target", "delta", "noise_multiplier", "steps", "accountant")
    return {k: report[k] for k in keys if k in report}


def failure_reason(exc: BaseException) -> str:
    """One line for the ledger and the operator; foreign errors are cut short (no data dumps)."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return f"room stopped by a signal ({exc})"
    if isinstance(exc, SealroomError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
