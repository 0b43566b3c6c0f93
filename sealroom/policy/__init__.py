"""Policy as code: Rego policies shipped in the package, evaluated with regopy."""

from sealroom.policy.engine import PolicyError, evaluate_denials, shipped_policy
from sealroom.policy.pipeline_check import PolicyDecision, check_pipeline

__all__ = ["PolicyDecision", "PolicyError", "check_pipeline", "evaluate_denials", "shipped_policy"]
