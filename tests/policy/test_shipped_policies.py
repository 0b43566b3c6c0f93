"""The shipped Rego files load, declare their packages and are part of the measurement."""

from __future__ import annotations

from sealroom.attest.measure import runtime_files
from sealroom.policy import shipped_policy
from sealroom.policy.engine import evaluate_denials, rego_package


def test_shipped_policies_declare_their_packages() -> None:
    assert rego_package(shipped_policy("contract.rego"), "contract.rego") == "sealroom.contract"
    assert rego_package(shipped_policy("release.rego"), "release.rego") == "sealroom.release"


def test_shipped_policies_are_measured() -> None:
    measured = {rel for rel, _ in runtime_files()}
    assert {"policy/contract.rego", "policy/release.rego"} <= measured


def test_a_package_without_deny_rules_denies_nothing() -> None:
    modules = {"m": "package quiet\nimport rego.v1\nx := 1"}
    assert evaluate_denials(modules, ["quiet"], {}) == []
