"""Evaluating the key release policy on verified claims: release.rego (contract, TEE type,
measurement, debug, expiry) and, for hardware evidence, the owner's hardware terms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sealroom.attest.evidence import Claims
from sealroom.attest.policy import check_hardware_policy
from sealroom.contract.schema import Contract
from sealroom.errors import AttestationError
from sealroom.kms.denied import Denied
from sealroom.kms.models import ReleasePolicy
from sealroom.policy.engine import evaluate_denials, shipped_policy
from sealroom.policy.pipeline_check import unix_ns

RELEASE_PACKAGE = "sealroom.release"


def release_input(
    policy: ReleasePolicy, contract: Contract, claims: Claims, contract_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "policy": policy.model_dump(mode="json"),
        "room": contract.room.model_dump(mode="json"),
        "claims": claims.model_dump(mode="json", exclude={"report_data"}),
        "contract_id": contract_id,
        "now_ns": unix_ns(now),
        "policy_expires_ns": unix_ns(policy.expires) if policy.expires else None,
    }


def check_release(
    policy: ReleasePolicy,
    contract: Contract,
    claims: Claims,
    contract_id: str,
    now: datetime | None = None,
) -> list[str]:
    """Every release.rego violation, in plain words (empty: release allowed)."""
    data = release_input(policy, contract, claims, contract_id, now or datetime.now(UTC))
    return evaluate_denials(
        {"release.rego": shipped_policy("release.rego")}, [RELEASE_PACKAGE], data
    )


def check_hardware_terms(policy: ReleasePolicy, claims: Claims) -> None:
    """Denied("evidence rejected: ...") when hardware claims break the owner's hardware terms.

    Software claims pass (release.rego judges them by allow_insecure), and so do claims of a
    TEE type the policy does not allow: release.rego names that refusal more plainly.
    """
    if claims.insecure or claims.tee_type not in policy.tee_types:
        return
    try:
        check_hardware_policy(claims, policy.hardware_policy())
    except AttestationError as exc:
        raise Denied(f"evidence rejected: {exc}", measurement=claims.measurement) from None
