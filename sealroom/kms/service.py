"""The key service: holds data keys under release policies, releases them to attested rooms.

Release protocol (every step fails closed; every outcome is a ledger entry):

1. the room asks for a nonce (single use, short-lived);
2. it attests with report_data = SHA-512(nonce || its ephemeral X25519 public key);
3. it sends evidence, nonce, ephemeral key, contract id, package digest, the pipeline, the
   consumer's signature on the pipeline and its run id;
4. the service consumes the nonce, verifies the evidence and its binding, the key record,
   the contract (signatures, registration, in force), the pipeline (digest, the contract's
   pin, the consumer's signature, contract policy), its guards (the run's privacy budget
   reservation, :mod:`sealroom.privacy.budget_guard`) and the release policy (Rego), counts
   the run against the contract's ``max_runs``, then HPKE-seals the data key to the
   ephemeral key; a guard that keeps state (the budget) is told before the key is returned.

A denial raises KeyReleaseDenied with the reason and never touches the data key.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sealroom.attest.evidence import Claims, binds
from sealroom.attest.software import INSECURE_LABEL
from sealroom.attest.verifiers import verify_evidence
from sealroom.contract.schema import Contract
from sealroom.contract.store import load_contract, verify_contract
from sealroom.crypto.hpke import seal_to
from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.kms.denied import Denied
from sealroom.kms.grant import KeyGrant, import_key_of, open_grant
from sealroom.kms.models import (
    KeyRecord,
    ModelReleaseRequest,
    ReleasePolicy,
    ReleaseRequest,
    release_info,
)
from sealroom.kms.pipeline_release import checked_pipeline
from sealroom.kms.release_policy import check_hardware_terms, check_release
from sealroom.kms.repository import KmsRepository, NonceState, ReleaseClaim
from sealroom.kms.rootkey import RootKey
from sealroom.ledger import Ledger
from sealroom.pipeline.schema import Pipeline
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.kms")

NONCE_BYTES = 32
NONCE_TTL_S = 60.0  # a room asks for its nonce just before it attests and sends
MAX_OUTSTANDING_NONCES = 256  # unexpired nonces held at once; more is a flood (429 over HTTP)
DATA_KEY_BYTES = 32


class KeyImportError(SealroomError):
    """A key cannot be imported (inconsistent policy, wrong size, unknown package)."""


class KeyServiceAPI(Protocol):
    """What a room needs from a key service, embedded or over HTTP."""

    def request_nonce(self) -> bytes: ...

    def release(self, request: ReleaseRequest) -> bytes: ...


ReleaseGuard = Callable[[Contract, Pipeline, ReleaseRequest], str | None]
"""An extra release check (e.g. the run's privacy budget reservation): a denial reason or None.

A guard with a ``consume`` method of the same signature is also called once the key is
sealed, before it is returned: a reason from it denies the release (the key never leaves)."""


class KeyService:
    """Embedded key service over ``ws.kms_db`` (root key in ``ws.keys``, ledger in ``ws``)."""

    def __init__(self, ws: Workspace, guards: Sequence[ReleaseGuard] = ()) -> None:
        self.ws = ws
        self.guards = list(guards)
        self._repo = KmsRepository(ws.kms_db)
        self._root = RootKey.load_or_create(ws.keys)
        self._ledger = Ledger.open(ws)

    def close(self) -> None:
        self._repo.close()
        self._ledger.close()

    def __enter__(self) -> KeyService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- import

    def import_key(
        self,
        package_digest: str,
        data_key: bytes,
        owner: str,
        contract_id: str,
        policy: ReleasePolicy,
    ) -> KeyRecord:
        """Store ``data_key`` wrapped under the root key, releasable only under ``policy``."""
        if policy.package_digest != package_digest:
            raise KeyImportError(
                f"release policy names package {policy.package_digest}, not {package_digest}"
            )
        if policy.contract_id != contract_id:
            raise KeyImportError(
                f"release policy names contract {policy.contract_id}, not {contract_id}"
            )
        if len(data_key) != DATA_KEY_BYTES:
            raise KeyImportError(f"data key must be {DATA_KEY_BYTES} bytes, got {len(data_key)}")
        earlier = self._repo.get_key(package_digest, contract_id)
        if earlier is not None and earlier.owner != owner:
            raise KeyImportError(
                f"key for {package_digest} under contract {contract_id} belongs to "
                f"{earlier.owner}, not {owner}"
            )
        record = KeyRecord(
            package_digest=package_digest,
            contract_id=contract_id,
            owner=owner,
            policy=policy,
            wrapped_key=self._root.wrap(data_key, package_digest, contract_id),
            imported_at=datetime.now(UTC),
        )
        self._repo.put_key(record)
        self._record(
            "key.imported",
            {
                "package_digest": package_digest,
                "contract_id": contract_id,
                "owner": owner,
                "policy": policy.model_dump(mode="json"),
            },
        )
        return record

    def import_grant(self, grant: KeyGrant) -> KeyRecord:
        """Store a key granted from another workspace (see :mod:`sealroom.kms.grant`).

        The contract must be known here: it says who owns the package, and that owner's
        key (pinned in the contract) must have signed the grant.
        """
        contract = load_contract(self.ws, grant.contract_id).contract
        data_key = open_grant(grant, contract, import_key_of(self.ws.keys))
        return self.import_key(
            grant.package_digest, data_key, grant.owner, grant.contract_id, grant.policy
        )

    def keys(self, package_digest: str | None = None) -> list[KeyRecord]:
        return self._repo.keys(package_digest)

    # ----------------------------------------------------------------- release

    def request_nonce(self) -> bytes:
        """A fresh single-use nonce the room binds into its evidence.

        Raises NonceLimitReached when MAX_OUTSTANDING_NONCES unexpired nonces are held.
        """
        nonce = secrets.token_bytes(NONCE_BYTES)
        now = time.time()
        self._repo.add_nonce(nonce, now + NONCE_TTL_S, now, MAX_OUTSTANDING_NONCES)
        return nonce

    def release(self, request: ReleaseRequest) -> bytes:
        """The data key HPKE-sealed to the request's ephemeral key, or KeyReleaseDenied."""
        facts: dict[str, Any] = {
            "package_digest": request.package_digest,
            "contract_id": request.contract_id,
            "pipeline_digest": request.pipeline_digest,
            "tee_type": request.evidence.tee_type,
            "nonce_sha256": hashlib.sha256(request.nonce).hexdigest(),
            "run_id": request.run_id,
            "pipeline_signer": (
                request.pipeline_signature.signer if request.pipeline_signature else None
            ),
        }
        try:
            claims, record, contract, pipeline = self._check(request)
            run = self._claim_run(request, contract, claims)
            try:
                sealed = self._sealed_key(record, request.ephemeral_public_key)
                self._consume(contract, pipeline, request, claims)
            except BaseException:
                # The key never left: the run it was claimed for does not count.
                self._repo.drop_release(request.contract_id, request.package_digest, run)
                raise
        except Denied as denied:
            raise self._denial(facts, denied.reason, denied.facts) from None
        except SealroomError as exc:  # anything unexpected in a check still fails closed
            raise self._denial(facts, str(exc), {}) from None
        except ValueError as exc:  # e.g. HPKE refusing a malformed public key
            raise self._denial(facts, f"cannot seal to the ephemeral key: {exc}", {}) from None
        self._released(facts, claims, record, request.ephemeral_public_key)
        if claims.insecure:
            log.warning(
                "released %s to a room attested by %s", record.package_digest, INSECURE_LABEL
            )
        return sealed

    def release_model(self, request: ModelReleaseRequest) -> bytes:
        """An inference contract's model key HPKE-sealed to an attested serving room, or
        KeyReleaseDenied (checks in :mod:`sealroom.kms.model_release`)."""
        from sealroom.kms.model_release import release_model

        return release_model(self, request)

    def _sealed_key(self, record: KeyRecord, ephemeral_public_key: str) -> bytes:
        """The record's data key, unwrapped and HPKE-sealed to the room's ephemeral key."""
        data_key = self._root.unwrap(record.wrapped_key, record.package_digest, record.contract_id)
        return seal_to(ephemeral_public_key, data_key, release_info(record.package_digest))

    def _released(
        self,
        facts: dict[str, Any],
        claims: Claims,
        record: KeyRecord,
        ephemeral_public_key: str,
        **extra: Any,
    ) -> None:
        """The ``key.released`` ledger entry: the request's facts, who attested, whose key."""
        key_sha256 = hashlib.sha256(ephemeral_public_key.encode("ascii")).hexdigest()
        self._record(
            "key.released",
            {
                **facts,
                "measurement": claims.measurement,
                "insecure": claims.insecure,
                "owner": record.owner,
                **extra,
                "ephemeral_key_sha256": key_sha256,
            },
        )

    def _denial(
        self, facts: dict[str, Any], reason: str, extra: dict[str, Any]
    ) -> KeyReleaseDenied:
        reason = " ".join(reason.split())
        self._record("key.denied", {**facts, **extra, "reason": reason})
        return KeyReleaseDenied(f"key release denied for {facts['package_digest']}: {reason}")

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        self._ledger.append(kind, payload)

    def _consume(
        self, contract: Contract, pipeline: Pipeline, request: ReleaseRequest, claims: Claims
    ) -> None:
        """Tell the guards that keep state (the budget) that this key is leaving now."""
        for guard in self.guards:
            consume = getattr(guard, "consume", None)
            reason = consume(contract, pipeline, request) if consume is not None else None
            if reason:
                raise Denied(reason, measurement=claims.measurement)

    def private_datasets_held(self, contract: Contract) -> list[str]:
        """The contract's private datasets whose key this service holds: the budgets it keeps."""
        return [
            d.id
            for d in contract.datasets
            if d.privacy is not None and self._repo.get_key(d.package_digest, contract.id)
        ]

    def _check(self, request: ReleaseRequest) -> tuple[Claims, KeyRecord, Contract, Pipeline]:
        self._check_nonce(request.nonce)
        claims = self._check_evidence(request)
        record = self._check_record(request)
        check_hardware_terms(record.policy, claims)
        contract = self._check_contract(request)
        if contract.inference is not None:
            raise Denied(f"contract {contract.id} is an inference contract: no training run")
        pipeline = checked_pipeline(request, contract, claims)
        for guard in self.guards:
            reason = guard(contract, pipeline, request)
            if reason:
                raise Denied(reason, measurement=claims.measurement)
        violations = check_release(record.policy, contract, claims, request.contract_id)
        if violations:
            raise Denied("; ".join(violations), measurement=claims.measurement)
        return claims, record, contract, pipeline

    def _claim_run(self, request: ReleaseRequest, contract: Contract, claims: Claims) -> str:
        """Count this release against the contract's max_runs; the run id it was counted as.

        Checked last, after every other check passed, so that a refused request never uses
        up a run. A request without a run id counts as a run of its own.
        """
        run = request.run_id or f"unnamed-{secrets.token_hex(8)}"
        limit = contract.constraints.max_runs
        state = self._repo.claim_release(
            contract.id, request.package_digest, run, limit, time.time()
        )
        if state is ReleaseClaim.RUN_REPEATED:
            raise Denied(
                f"run {run} already received this package's key (a run receives each key once)",
                measurement=claims.measurement,
            )
        if state is ReleaseClaim.LIMIT_REACHED:
            plural = "s" if limit != 1 else ""
            raise Denied(
                f"contract {contract.id} allows {limit} run{plural} (max_runs) and "
                f"{limit} already received this package's key",
                measurement=claims.measurement,
            )
        return run

    def _check_nonce(self, nonce: bytes) -> None:
        state = self._repo.consume_nonce(nonce, time.time())
        if state is NonceState.UNKNOWN:
            raise Denied("nonce was not issued by this key service (or expired and was purged)")
        if state is NonceState.USED:
            raise Denied("nonce was already used (replayed request)")
        if state is NonceState.EXPIRED:
            raise Denied(f"nonce expired (nonces live {NONCE_TTL_S:.0f} s)")

    def _check_evidence(self, request: ReleaseRequest | ModelReleaseRequest) -> Claims:
        try:
            claims = verify_evidence(request.evidence, self.ws)
            bound = binds(claims, request.nonce, request.ephemeral_public_key)
        except SealroomError as exc:
            raise Denied(f"evidence rejected: {exc}") from None
        if not bound:
            raise Denied(
                "evidence report data does not bind this nonce and ephemeral public key",
                measurement=claims.measurement,
            )
        return claims

    def _check_record(self, request: ReleaseRequest | ModelReleaseRequest) -> KeyRecord:
        record = self._repo.get_key(request.package_digest, request.contract_id)
        if record is not None:
            return record
        others = sorted(r.contract_id for r in self._repo.keys(request.package_digest))
        if others:
            raise Denied(
                f"the key for this package is not released under contract {request.contract_id} "
                f"(imported for: {', '.join(others)})"
            )
        raise Denied("no key is imported for this package")

    def _check_contract(self, request: ReleaseRequest) -> Contract:
        try:
            contract = verify_contract(self.ws, request.contract_id).contract
        except SealroomError as exc:
            raise Denied(str(exc)) from None
        named = {d.package_digest for d in contract.datasets}
        if contract.model is not None:
            named.add(contract.model.package_digest)
        if request.package_digest not in named:
            raise Denied(f"contract {contract.id} does not name this package")
        return contract
