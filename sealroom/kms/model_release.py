"""Releasing an inference contract's model key to a serving room (``KeyService.release_model``).

The same protocol as a training release (single-use nonce, evidence binding the nonce and the
room's ephemeral key, HPKE-sealed key), with the pipeline checks replaced by what serving
needs: the contract has inference terms, and the package is the model its owner provisioned
and still serves, by the owner's signed statements in the ledger
(:func:`sealroom.contract.provision.current_model`). The operator holds the ledger key but
not the owner's, so it can neither provision a model of its own nor revive a rotated or
retired one. Every denial is a ``key.denied`` entry; a release is ``key.released`` with
purpose ``serve`` and the serving instance.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sealroom.attest.evidence import Claims
from sealroom.attest.software import INSECURE_LABEL
from sealroom.contract.provision import current_model
from sealroom.contract.schema import Contract
from sealroom.contract.store import verify_contract
from sealroom.errors import SealroomError
from sealroom.kms.denied import Denied
from sealroom.kms.models import KeyRecord, ModelReleaseRequest
from sealroom.kms.release_policy import check_hardware_terms, check_release
from sealroom.kms.service import KeyService

log = logging.getLogger("sealroom.kms")

PURPOSE = "serve"


def release_model(service: KeyService, request: ModelReleaseRequest) -> bytes:
    """The model key HPKE-sealed to the request's ephemeral key, or KeyReleaseDenied."""
    facts: dict[str, Any] = {
        "purpose": PURPOSE,
        "package_digest": request.package_digest,
        "contract_id": request.contract_id,
        "instance": request.instance,
        "tee_type": request.evidence.tee_type,
        "nonce_sha256": hashlib.sha256(request.nonce).hexdigest(),
    }
    try:
        claims, record, model_seq = _check(service, request)
        sealed = service._sealed_key(record, request.ephemeral_public_key)
    except Denied as denied:
        raise service._denial(facts, denied.reason, denied.facts) from None
    except SealroomError as exc:  # anything unexpected in a check still fails closed
        raise service._denial(facts, str(exc), {}) from None
    except ValueError as exc:  # e.g. HPKE refusing a malformed public key
        raise service._denial(facts, f"cannot seal to the ephemeral key: {exc}", {}) from None
    service._released(
        facts, claims, record, request.ephemeral_public_key, model_statement_seq=model_seq
    )
    if claims.insecure:
        log.warning(
            "released model %s to a serving room attested by %s",
            record.package_digest,
            INSECURE_LABEL,
        )
    return sealed


def _check(service: KeyService, request: ModelReleaseRequest) -> tuple[Claims, KeyRecord, int]:
    """Every check, cheapest and most telling first; the ledger seq of the serving statement."""
    service._check_nonce(request.nonce)
    claims = service._check_evidence(request)
    record = service._check_record(request)
    check_hardware_terms(record.policy, claims)
    try:
        signed = verify_contract(service.ws, request.contract_id)
    except SealroomError as exc:
        raise Denied(str(exc), measurement=claims.measurement) from None
    contract = signed.contract
    _check_inference(contract, record, claims)
    skipped: list[str] = []
    state = current_model(service._ledger, signed, skipped)
    for reason in skipped:  # e.g. an entry nobody but the operator could have written
        log.warning("contract %s: model statement ignored: %s", contract.id, reason)
    if state.digest is None or state.seq is None:
        raise Denied(
            f"the model of contract {contract.id} was never provisioned by its owner",
            measurement=claims.measurement,
        )
    if state.retired:
        raise Denied(
            f"the model of contract {contract.id} was retired by its owner",
            measurement=claims.measurement,
        )
    if request.package_digest != state.digest:
        raise Denied(
            f"package {request.package_digest} is not the model contract {contract.id} serves "
            f"(current: {state.digest})",
            measurement=claims.measurement,
        )
    violations = check_release(record.policy, contract, claims, request.contract_id)
    if violations:
        raise Denied("; ".join(violations), measurement=claims.measurement)
    return claims, record, state.seq


def _check_inference(contract: Contract, record: KeyRecord, claims: Claims) -> None:
    """An inference contract, and the key is its model owner's."""
    if contract.inference is None or contract.model is None:
        raise Denied(
            f"contract {contract.id} is not an inference contract: it serves no model",
            measurement=claims.measurement,
        )
    if record.owner != contract.model.owner:
        raise Denied(
            f"the key of this package was imported by {record.owner}, not by the model owner "
            f"of contract {contract.id} ({contract.model.owner})",
            measurement=claims.measurement,
        )
