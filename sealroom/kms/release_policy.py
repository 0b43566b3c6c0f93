"""Evaluating the key release policy (release.rego) on verified claims."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sealroom.attest.evidence import Claims
from sealroom.contract.schema import Contract
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
