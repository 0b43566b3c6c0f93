"""The operator's end of the room channel: it holds the secrets, the room holds none.

One ``OperatorDesk`` per run answers the room's calls (see channel.py) with the workspace's
key service (or the contract's own ``key_service`` per dataset), the ledger, the software
attestation key and the privacy budget: its own book for datasets whose key the embedded
service holds; for a dataset with its own ``key_service``, that key service's book (reserve
and settle forwarded, each mirrored as a ``budget.mirrored`` ledger entry). The room is
untrusted: every call is checked (the run id, the contract, which ledger entries and how
often) before anything is signed.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sealroom.attest.evidence import Attester, Evidence
from sealroom.contract.signed import SignedContract
from sealroom.crypto.signing import b64
from sealroom.errors import SealroomError
from sealroom.kms.service import KeyServiceAPI
from sealroom.ledger import Ledger, Receipt
from sealroom.room.channel import (
    AttestCall,
    ChannelError,
    NonceCall,
    RecordCall,
    ReleaseCall,
    Request,
    ReserveCall,
    SettleCall,
)
from sealroom.room.desk_base import ChannelDesk, only_fields
from sealroom.room.failures import CATEGORIES, one_line
from sealroom.room.receipt import COMPLETED, FAILED, ROOM_KINDS, STARTED, RunRecord
from sealroom.workspace import Workspace

if TYPE_CHECKING:
    from sealroom.kms.client import KmsClient

log = logging.getLogger("sealroom.room")

_STARTED_FIELDS = {"run_id", "contract_id", "pipeline_digest"}
_FAILED_FIELDS = {"run_id", "contract_id", "pipeline_digest", "stage", "reason"}


class OperatorDesk(ChannelDesk):
    """Answers one run's calls; ``finish`` settles what the room left open."""

    def __init__(self, ws: Workspace, run_id: str, signed: SignedContract) -> None:
        self.ws = ws
        self.run_id = run_id
        self.signed = signed
        self.contract = signed.contract
        self._services: dict[str, Any] = {}  # "" for the embedded one, else the URL
        self.recorded: dict[str, dict[str, Any]] = {}
        self.completed: RunRecord | None = None
        self.reserved: float | None = None  # ε of an open budget reservation
        self.releases: list[str] = []  # package digests released through this desk
        self.attester: Attester | None = None  # chosen on first use (SEALROOM_ATTESTER)
        self.issued: set[str] = set()  # SHA-256 of each hardware report this desk obtained

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        for service in self._services.values():
            service.close()
        self._services.clear()

    def _dispatch(self, request: Request) -> dict[str, Any]:
        call = request.call
        if isinstance(call, AttestCall):
            evidence = self._attest(call.report_data)
            return {"evidence": evidence.model_dump(mode="json")}
        if isinstance(call, NonceCall):
            nonce = self._service(call.package_digest).request_nonce()
            return {"nonce": b64(nonce)}
        if isinstance(call, ReleaseCall):
            if call.request.contract_id != self.contract.id:
                raise ChannelError(
                    f"room channel: release under contract {call.request.contract_id!r}, "
                    f"not this run's {self.contract.id!r}"
                )
            if call.request.run_id != self.run_id:
                # A key is bound to the run whose budget reservation it consumes.
                raise ChannelError(
                    f"room channel: release for run {str(call.request.run_id)[:80]!r}, "
                    f"not this run {self.run_id!r}"
                )
            sealed = self._service(call.request.package_digest).release(call.request)
            self.releases.append(call.request.package_digest)
            return {"sealed_key": b64(sealed)}
        if isinstance(call, ReserveCall):
            return self._reserve(call)
        if isinstance(call, SettleCall):
            self._settle(call.spent_epsilon)
            return {}
        if not isinstance(call, RecordCall):  # release_model, counts: serving rooms only
            raise ChannelError(f"room channel: a training room may not call {call.op!r}")
        return self._record(call)

    def _attest(self, report_data: bytes) -> Evidence:
        """Evidence from the room's attester (software by default, or configfs-tsm)."""
        from sealroom.attest.select import room_attester

        if self.attester is None:
            self.attester = room_attester(self.ws)
        evidence = self.attester.attest(report_data)
        if evidence.tee_type != "software":
            self.issued.add(hashlib.sha256(evidence.payload).hexdigest())
        return evidence

    # ------------------------------------------------------------------ key services

    def _service(self, package_digest: str) -> KeyServiceAPI:
        """The key service holding this package's key: the dataset's own, else the embedded."""
        urls = {d.package_digest: d.key_service for d in self.contract.datasets}
        model = self.contract.model
        if package_digest not in urls and (model is None or model.package_digest != package_digest):
            raise ChannelError(
                f"room channel: package {package_digest} is not named by contract "
                f"{self.contract.id}"
            )
        url = urls.get(package_digest) or ""
        if url not in self._services:
            self._services[url] = self._open_service(url)
        service: KeyServiceAPI = self._services[url]
        return service

    def _open_service(self, url: str) -> Any:
        if url:
            from sealroom.kms.client import KmsClient

            return KmsClient(url)
        from sealroom.kms.service import KeyService
        from sealroom.privacy.budget_guard import BudgetGate, embedded_scope

        return KeyService(self.ws, guards=[BudgetGate(self.ws, embedded_scope)])

    def _remote(self, url: str) -> KmsClient:
        if url not in self._services:
            self._services[url] = self._open_service(url)
        client: KmsClient = self._services[url]
        return client

    # ------------------------------------------------------------------ budget

    def _budget_homes(self) -> dict[str, list[str]]:
        """Where each private dataset's budget is kept: "" (this workspace's book) for those
        whose key the embedded service holds, else the URL of the dataset's key service."""
        homes: dict[str, list[str]] = {}
        for dataset in self.contract.datasets:
            if dataset.privacy is not None:
                homes.setdefault(dataset.key_service or "", []).append(dataset.id)
        return homes

    def _reserve(self, call: ReserveCall) -> dict[str, Any]:
        """Reserve where each budget is kept, all or nothing: a refusal by one key service
        gives back what the others reserved (no key has left yet, so nothing is charged)."""
        from sealroom.privacy.budget import BudgetBook

        if self.reserved is not None:
            raise ChannelError(f"room channel: run {self.run_id} already reserved its budget")
        done: list[str] = []
        try:
            for url, datasets in self._budget_homes().items():
                if url:
                    kept = self._remote(url).reserve(
                        self.run_id, self.contract.id, call.epsilon, call.delta
                    )
                    self._mirror(url, "reserve", epsilon=call.epsilon, delta=call.delta, kept=kept)
                else:
                    with BudgetBook(self.ws) as book:
                        book.reserve(self.run_id, self.contract, call.epsilon, call.delta, datasets)
                done.append(url)
        except SealroomError:
            self._settle_at(done, 0.0, quiet=True)
            raise
        self.reserved = call.epsilon
        return {}

    def _settle(self, spent_epsilon: float) -> None:
        if self.reserved is None:
            raise ChannelError(f"room channel: run {self.run_id} has no open reservation")
        self._settle_at(list(self._budget_homes()), spent_epsilon, quiet=False)
        self.reserved = None

    def _settle_at(self, homes: list[str], spent_epsilon: float, quiet: bool) -> None:
        """Settle at each home; every home is tried, then the first refusal is raised (unless
        ``quiet``: a home that refuses or is unreachable charges the run in full itself
        when the contract's max_runtime_s has passed)."""
        from sealroom.privacy.budget import BudgetBook

        first: SealroomError | None = None
        for url in homes:
            try:
                if url:
                    charged = self._remote(url).settle(self.run_id, self.contract.id, spent_epsilon)
                    self._mirror(url, "settle", spent_epsilon=spent_epsilon, charged=charged)
                else:
                    with BudgetBook(self.ws) as book:
                        book.settle(self.run_id, spent_epsilon, contract_id=self.contract.id)
            except SealroomError as exc:
                log.warning("run %s: budget settle at %s: %s", self.run_id, url or "here", exc)
                first = first or exc
        if first is not None and not quiet:
            raise first

    def _mirror(self, url: str, op: str, **facts: Any) -> None:
        """The operator's ledger mirrors what a dataset's key service did with its budget."""
        self.append(
            "budget.mirrored",
            {
                "op": op,
                "key_service": url,
                "run_id": self.run_id,
                "contract_id": self.contract.id,
                **facts,
            },
        )

    # ------------------------------------------------------------------ ledger

    def _record(self, call: RecordCall) -> dict[str, Any]:
        kind, payload = call.kind, call.payload
        if kind not in ROOM_KINDS:
            raise ChannelError(f"room channel: a room may not record {kind!r} entries")
        if payload.get("run_id") != self.run_id:
            raise ChannelError(
                f"room channel: {kind} for run {str(payload.get('run_id'))[:80]!r}, "
                f"not this run {self.run_id!r}"
            )
        if payload.get("contract_id") != self.contract.id:
            raise ChannelError(f"room channel: {kind} names another contract")
        if kind in self.recorded or FAILED in self.recorded or COMPLETED in self.recorded:
            raise ChannelError(f"room channel: run {self.run_id} cannot record {kind} now")
        if kind == STARTED:
            payload = only_fields(payload, _STARTED_FIELDS, kind)
        elif kind == FAILED:
            payload = only_fields(payload, _FAILED_FIELDS, kind)
            if payload.get("stage") not in {*CATEGORIES, "start"}:
                raise ChannelError("room channel: run.failed names an unknown stage")
            payload["reason"] = one_line(str(payload.get("reason", "")))
            payload["recorded_by"] = "room"
        else:
            payload = self._completed(payload)
        receipt = self.append(kind, payload)
        self.recorded[kind] = payload
        with Ledger.open(self.ws) as ledger:
            key = ledger.public_key_b64
        return {"receipt": receipt.model_dump(mode="json"), "ledger_public_key": key}

    def _completed(self, payload: dict[str, Any]) -> dict[str, Any]:
        from sealroom.attest.software import attestation_key

        if STARTED not in self.recorded:
            raise ChannelError("room channel: run.completed before run.started")
        try:
            record = RunRecord.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ChannelError(f"room channel: run.completed: {where}: {first['msg']}") from None
        record.check_room_signature()
        if record.contract_digest != self.signed.digest:
            raise ChannelError("room channel: run.completed names another contract digest")
        evidence = record.room_evidence
        if evidence.tee_type == "software":
            if evidence.signer != attestation_key(self.ws).public_b64:
                raise ChannelError(
                    "room channel: run.completed evidence is not signed by this workspace's "
                    "attestation key"
                )
        elif hashlib.sha256(evidence.payload).hexdigest() not in self.issued:
            # Hardware evidence carries no workspace signer: the desk obtained every report
            # of this run itself, so a report it did not obtain is refused the same way.
            raise ChannelError(
                f"room channel: run.completed {evidence.tee_type[:32]} evidence is not a "
                "report this desk obtained for the run"
            )
        self.completed = record
        return record.model_dump(mode="json")

    def append(self, kind: str, payload: dict[str, Any]) -> Receipt:
        with Ledger.open(self.ws) as ledger:
            return ledger.append(kind, payload)

    # ------------------------------------------------------------------ the end

    @property
    def failure(self) -> dict[str, Any] | None:
        return self.recorded.get(FAILED)

    def finish(self, reason: str | None) -> None:
        """After the room is gone: charge an open reservation in full (the room may have
        trained before it died), and record the failure if the room did not."""
        try:
            if self.reserved is not None:
                # Quiet: a home that already charged the run at expiry, or cannot be reached
                # now, charges it in full on its own once max_runtime_s has passed.
                self._settle_at(list(self._budget_homes()), self.reserved, quiet=True)
                self.reserved = None
        finally:
            if reason is not None and not ({FAILED, COMPLETED} & set(self.recorded)):
                payload = {
                    "run_id": self.run_id,
                    "contract_id": self.contract.id,
                    "stage": "room",
                    "reason": reason,
                    "recorded_by": "operator",
                }
                self.append(FAILED, payload)
                self.recorded[FAILED] = payload
