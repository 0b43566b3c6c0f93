"""One run inside the room, step by step; every step fails closed.

Order (DESIGN.md step 5): contract → policy → privacy budget → attest → keys and in-memory
decryption → train and evaluate → release filter → seal to the consumer → settle the budget
→ signed receipt. Plaintext (data keys, decrypted files, the trained model) lives only in
this object's memory and is dropped, with the staging folder, whatever happens. Everything
that needs a long-term secret (key release, ledger entries, software attestation, the
budget book) is a call to the operator over the channel; the room opens no workspace file
but the sealed packages and the pipeline it was given, and writes only its staging folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sealroom.attest.software import INSECURE_LABEL
from sealroom.contract.schema import Contract
from sealroom.errors import PolicyDenied, RoomError, plural
from sealroom.pipeline.compose import load_pipeline, pipeline_digest
from sealroom.pipeline.schema import Pipeline
from sealroom.policy.pipeline_check import check_pipeline
from sealroom.privacy.release import released_metrics
from sealroom.room import privacy_hooks
from sealroom.room.channel import ChannelAttester, ChannelKeyService, RoomChannel, RoomRequest
from sealroom.room.declared import declared_splits
from sealroom.room.details import seal_details
from sealroom.room.events import STAGES, RoomEvent
from sealroom.room.failures import failure_reason
from sealroom.room.outputs import seal_outputs
from sealroom.room.packages import (
    check_package_files,
    decrypt_in_memory,
    open_verified,
    owner_identity,
)
from sealroom.room.receipt import (
    COMPLETED,
    EMBEDDED_CUSTODY,
    EXTERNAL_CUSTODY,
    FAILED,
    STARTED,
    RoomInfo,
    RunReceipt,
    RunRecord,
)
from sealroom.room.runkey import RunKey, evidence_claims, room_report_data

if TYPE_CHECKING:
    from sealroom.attest.evidence import Attester
    from sealroom.data import FileTree
    from sealroom.data.declaration import DatasetDeclaration
    from sealroom.privacy.trainer import DPTrainerFactory
    from sealroom.train.loop import TrainEvent

log = logging.getLogger("sealroom.room")

Emit = Callable[[RoomEvent], None]

# The privacy report's facts the public run record carries. The ε trajectory (ε after each
# epoch) and what places it on an epoch axis are functions of the public DP settings alone.
PUBLIC_PRIVACY_FACTS = (
    *("epsilon_spent", "epsilon_target", "delta", "noise_multiplier", "steps", "accountant"),
    *("sample_rate", "epochs", "planned_steps", "epsilon_trajectory"),
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RoomSession:
    """Runs one request; ``run()`` returns the receipt or raises after recording the failure."""

    def __init__(
        self,
        request: RoomRequest,
        emit: Emit,
        channel: RoomChannel,
        attester: Attester | None = None,
        sandbox: str = "none",
    ) -> None:
        self.request = request
        self.emit = emit
        self.channel = channel
        self.attester = attester or ChannelAttester(channel)
        self.sandbox = sandbox
        self.stage = "start"
        self.started = now_iso()
        self.reserved = False
        self.keys_released = False  # from the first released key on, failures say no message
        self.reason = ""
        self.dp_factory: DPTrainerFactory | None = None  # remembers what a private run spent
        self.contract: Contract | None = None
        self.pipeline_digest = ""
        self.run_key = RunKey()

    # ------------------------------------------------------------------ plumbing

    def enter(self, stage: str) -> None:
        self.stage = stage
        self.emit(RoomEvent(type="stage", stage=stage, message=STAGES[stage]))

    def say(self, message: str, level: str = "info") -> None:
        """A log line for the operator: fixed text and public facts only, never a value."""
        self.emit(RoomEvent(type="log", message=message, level=level))

    def _relay(self, event: TrainEvent) -> None:
        # Training's own log lines stay in the room: they carry statistics of private
        # batches. The operator sees counters only.
        if event.kind in ("epoch", "batch"):
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
            self.reason = failure_reason(exc, self.stage, self.keys_released)
            self._fail(self.reason, exc)
            raise
        finally:
            self.dp_factory = None

    def _run(self) -> RunReceipt:
        req = self.request
        self.enter("contract")
        signed = req.contract
        signed.verify(req.ledger_public_key)  # signatures, in force, registration receipt
        contract = self.contract = signed.contract
        n_signatures = plural(len(signed.signatures), "signature")
        self.say(f"contract {contract.id} verified: {n_signatures}, in force")

        self.enter("policy")
        pipeline = load_pipeline(req.pipeline)
        digest = self.pipeline_digest = pipeline_digest(pipeline)
        packages = {d.id: d.package_digest for d in contract.datasets}
        decision = check_pipeline(contract, pipeline, packages=packages)
        if not decision.allow:
            raise PolicyDenied(
                f"pipeline {pipeline.name} violates contract {contract.id}: "
                + "; ".join(decision.violations)
            )
        self.say(f"pipeline {pipeline.name} ({digest[:19]}…) is allowed by the contract")
        declarations = declared_splits(contract, pipeline, req.declarations)
        if declarations is not None:
            self.say(
                f"splits as the {plural(len(declarations), 'provider declaration')} pinned by "
                "the contract say; the pipeline's split section is not used"
            )
        check_package_files(contract, pipeline, declarations, self.request.packages)
        self.say("every file the pipeline names is in its package's signed manifest")
        self.channel.record(
            STARTED, {"run_id": req.run_id, "contract_id": contract.id, "pipeline_digest": digest}
        )

        private = pipeline.privacy is not None
        if private or any(d.privacy is not None for d in contract.datasets):
            self.enter("budget")
            if privacy_hooks.budget_needed(contract, pipeline):
                assert pipeline.privacy is not None
                self.channel.reserve(pipeline.privacy.epsilon, pipeline.privacy.delta)
                self.reserved = True
                self.say("privacy budget reserved")

        self.enter("attest")
        evidence = self.attester.attest(room_report_data(req.run_id, self.run_key.public_b64))
        claims = evidence_claims(evidence)
        info = RoomInfo(
            tee_type=claims.tee_type, measurement=claims.measurement, insecure=claims.insecure
        )
        if info.insecure:
            self.say(INSECURE_LABEL, level="warning")

        self.enter("keys")
        trees, model_tree = self._open_packages(contract, pipeline, digest)

        self.enter("train")
        outcome = self._train(pipeline, trees, model_tree, declarations)
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
        public = set(contract.constraints.public_metrics) & released_metrics(
            contract.constraints, private
        )
        metrics = {k: v for k, v in _released_metrics(released).items() if k in public}
        metrics_doc = released.get("metrics.json")
        metrics_sha = hashlib.sha256(metrics_doc).hexdigest() if metrics_doc is not None else None
        privacy_facts = _privacy_facts(released)
        del released, metrics_doc
        self.say(f"{plural(len(sealed), 'output')} sealed to {consumer.name}")

        self.enter("receipt")
        if self.reserved:
            self.channel.settle(self._spent())
            self.reserved = False
        used = [d for d in contract.datasets if d.id in {p.id for p in pipeline.datasets}]
        fields: dict[str, Any] = dict(
            run_id=req.run_id,
            contract_id=contract.id,
            contract_digest=signed.digest,
            pipeline=pipeline.name,
            pipeline_digest=digest,
            datasets={d.id: d.package_digest for d in used},
            model_digest=contract.model.package_digest if contract.model else None,
            room=info,
            insecure=info.insecure,
            consumer=consumer.name,
            consumer_fingerprint=consumer.fingerprint,
            outputs=sealed,
            outputs_key_sha256=key_sha,
            metrics=metrics,
            metrics_sha256=metrics_sha,
            privacy=privacy_facts,
            key_custody=key_custody(used),
            sandbox=self.sandbox,
            started=self.started,
            ended=now_iso(),
            room_key=self.run_key.public_b64,
            room_evidence=evidence,
        )
        record = sign_record(RunRecord(**fields), self.run_key)
        result = self.channel.record(COMPLETED, record.model_dump(mode="json"))
        run_receipt = RunReceipt(
            record=record, receipt=result.receipt, ledger_public_key=result.ledger_public_key
        )
        run_receipt.verify(req.ledger_public_key)
        run_receipt.save(req.staging)
        return run_receipt

    def _open_packages(
        self, contract: Contract, pipeline: Pipeline, digest: str
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
        files: dict[str, dict[str, bytes]] = {}

        def release(package_digest: str) -> None:
            path = self.request.packages.get(package_digest)
            if path is None:
                raise RoomError(
                    f"no sealed package with digest {package_digest} was given to the room"
                )
            package = open_verified(
                path, owner_identity(contract, owners[package_digest]), package_digest
            )
            key = fetch_data_key(
                ChannelKeyService(self.channel, package_digest),
                self.attester,
                contract_id=contract.id,
                package_digest=package_digest,
                pipeline=pipeline,
                pipeline_digest=digest,
                pipeline_signature=self.request.pipeline_signature,
                run_id=self.request.run_id,
            )
            self.keys_released = True
            files[package_digest] = decrypt_in_memory(package, key)
            del key
            self.say(f"key released for {package_digest[:19]}…; decrypted in memory")

        # The model first: a private run checks it keeps records apart (issue 13) before
        # any dataset key is asked for, so a model that mixes the batch gets no data key.
        if contract.model is not None:
            release(contract.model.package_digest)
        if pipeline.privacy is not None:
            from sealroom.privacy.independence import check_pipeline_model

            model_files = files.get(contract.model.package_digest, {}) if contract.model else {}
            check_pipeline_model(pipeline, MemoryTree(model_files))
            self.say("model checked: each record's output depends on that record alone")
        for package_digest in dict.fromkeys(needed):  # one release per package digest
            if package_digest not in files:
                release(package_digest)
        trees: dict[str, FileTree] = {
            d.id: MemoryTree(files[d.package_digest]) for d in contract.datasets if d.id in wanted
        }
        model_files = files.get(contract.model.package_digest, {}) if contract.model else {}
        return trees, MemoryTree(model_files)

    def _train(
        self,
        pipeline: Pipeline,
        trees: dict[str, FileTree],
        model_tree: FileTree,
        declarations: dict[str, DatasetDeclaration] | None = None,
    ) -> Any:
        from sealroom.data.declaration import load_declared_splits
        from sealroom.train.run import MemorySink, run_pipeline

        splits = None
        if declarations is not None:
            splits = load_declared_splits(declarations, pipeline.datasets, pipeline.join, trees)
        self.dp_factory = privacy_hooks.dp_trainer_factory(pipeline)
        return run_pipeline(
            pipeline,
            trees,
            model_tree,
            sink=MemorySink(),
            on_event=self._relay,
            trainer_factory=self.dp_factory,
            splits=splits,
        )

    def _spent(self) -> float:
        """ε the run spent so far: 0.0 for a plain or unstarted run."""
        return 0.0 if self.dp_factory is None else self.dp_factory.spent_epsilon()

    def _fail(self, reason: str, exc: BaseException) -> None:
        """Record the failure, return the unspent budget, drop the staging folder (or keep
        only the failure details sealed to the consumer, where the contract allows them)."""
        shutil.rmtree(self.request.staging, ignore_errors=True)
        contract = self.contract
        try:
            if contract is not None and contract.constraints.failure_details:
                consumer = owner_identity(contract, contract.consumer)
                req = self.request
                seal_details(req.staging, req.run_id, self.stage, reason, exc, consumer)
        finally:
            self._settle_and_record(reason)

    def _settle_and_record(self, reason: str) -> None:
        try:
            if self.reserved:
                self.channel.settle(self._spent())
                self.reserved = False
        finally:
            self.channel.record(
                FAILED,
                {
                    "run_id": self.request.run_id,
                    "contract_id": self.request.contract.id,
                    "pipeline_digest": self.pipeline_digest,
                    "stage": self.stage,
                    "reason": reason,
                },
            )


def sign_record(record: RunRecord, key: RunKey) -> RunRecord:
    """The record with the room's signature over everything else in it."""
    signature = key.sign_record(record.model_dump(mode="json"))
    return record.model_copy(update={"room_signature": signature})


def key_custody(datasets: list[Any]) -> str:
    """Who holds the data keys, said plainly: the embedded default protects nothing from
    the operator, whose workspace holds the root key."""
    urls = [d.key_service for d in datasets]
    if not urls or any(u is None for u in urls):
        return EMBEDDED_CUSTODY
    return EXTERNAL_CUSTODY + ", ".join(sorted(set(urls)))


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
    return {k: report[k] for k in PUBLIC_PRIVACY_FACTS if k in report}
