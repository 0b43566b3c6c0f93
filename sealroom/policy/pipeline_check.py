"""Pipeline vs contract: the default contract policy plus the contract's own signed rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from sealroom.contract.schema import Contract
from sealroom.pipeline.compose import pipeline_digest
from sealroom.pipeline.schema import Pipeline
from sealroom.policy.engine import evaluate_denials, rego_package, shipped_policy

CONTRACT_PACKAGE = "sealroom.contract"


class PolicyDecision(BaseModel):
    """allow is True exactly when no rule denied; violations are plain-words messages."""

    model_config = ConfigDict(frozen=True)

    allow: bool
    violations: list[str]


def unix_ns(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1_000_000) * 1000


def contract_input(
    contract: Contract,
    pipeline: Pipeline,
    now: datetime | None = None,
    packages: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The input document contract.rego reads (times as Unix nanoseconds)."""
    return {
        "contract": contract.model_dump(mode="json"),
        "pipeline": pipeline.model_dump(mode="json"),
        "pipeline_digest": pipeline_digest(pipeline),
        "packages": packages or {},
        "now_ns": unix_ns(now or datetime.now(UTC)),
        "not_before_ns": unix_ns(contract.not_before),
        "expires_ns": unix_ns(contract.expires),
    }


def check_pipeline(
    contract: Contract,
    pipeline: Pipeline,
    now: datetime | None = None,
    packages: dict[str, str] | None = None,
) -> PolicyDecision:
    """Evaluate contract.rego and ``contract.policy_rego`` on the pipeline.

    ``packages`` maps dataset ids to the digests of the packages about to be opened, when
    known (the key service and the room pass them; ``policy check`` does not).
    """
    modules = {"contract.rego": shipped_policy("contract.rego")}
    packages_to_query = [CONTRACT_PACKAGE]
    if contract.policy_rego:
        where = f"contract {contract.id} policy_rego"
        modules[where] = contract.policy_rego
        extra = rego_package(contract.policy_rego, where)
        if extra != CONTRACT_PACKAGE:
            packages_to_query.append(extra)
    violations = evaluate_denials(
        modules, packages_to_query, contract_input(contract, pipeline, now, packages)
    )
    return PolicyDecision(allow=not violations, violations=violations)
