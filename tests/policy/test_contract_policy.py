"""contract.rego rule by rule: one allowed and one denied input each, plain-words messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealroom.policy import check_pipeline
from sealroom.policy.engine import PolicyError
from tests.kms.factories import DATASET_DIGEST, contract_data, make_contract, make_pipeline


def violations(contract_overrides: dict[str, Any] | None = None, **pipeline: Any) -> list[str]:
    decision = check_pipeline(
        make_contract(**(contract_overrides or {})), make_pipeline(**pipeline)
    )
    assert decision.allow == (not decision.violations)
    return decision.violations


def constraints(**changes: Any) -> dict[str, Any]:
    return {"constraints": {**contract_data()["constraints"], **changes}}


def test_the_reference_pipeline_is_allowed() -> None:
    assert violations() == []


def test_dataset_not_in_contract_is_denied() -> None:
    datasets = [
        {"id": "mnist", "source": {"format": "idx", "images": "a", "labels": "b"}},
        {"id": "cifar", "source": {"format": "idx", "images": "a", "labels": "b"}},
    ]
    assert violations(datasets=datasets) == ["dataset cifar is not named by contract mnist-demo"]


def test_package_digest_must_match_the_contract() -> None:
    contract, pipeline = make_contract(), make_pipeline()
    assert check_pipeline(contract, pipeline, packages={"mnist": DATASET_DIGEST}).allow
    other = "sha256:" + "ab" * 32
    decision = check_pipeline(contract, pipeline, packages={"mnist": other})
    assert decision.violations == [
        f"dataset mnist: package digest {other} is not the digest contract mnist-demo names "
        f"({DATASET_DIGEST})"
    ]


def test_model_format_outside_the_contract_is_denied() -> None:
    model = {"model": {"format": "architecture", "name": "monai_unet"}, "input_shape": [1, 8, 8]}
    assert violations(model=model) == ["model format architecture is not allowed (allowed: onnx)"]


def test_optimizer_not_allowed_is_denied() -> None:
    train = {"optimizer": {"name": "rmsprop"}, "epochs": 1}
    assert violations(train=train) == ["optimizer rmsprop is not allowed (allowed: sgd, adam)"]


def test_loss_component_not_allowed_is_denied() -> None:
    loss = {
        "components": {"ce": {"name": "cross_entropy"}, "d": {"name": "dice"}},
        "expression": "ce + d",
    }
    assert violations(loss=loss) == [
        "loss component d (dice) is not allowed (allowed: cross_entropy)"
    ]


def test_metric_not_allowed_is_denied_but_loss_is_always_allowed() -> None:
    assert violations(eval={"metrics": ["loss", "accuracy", "f1_macro"]}) == []
    assert violations(eval={"metrics": ["auroc"]}) == [
        "metric auroc is not allowed (allowed: accuracy, f1_macro)"
    ]


def test_too_many_epochs_are_denied() -> None:
    assert violations(train={"optimizer": {"name": "sgd"}, "epochs": 5}) == []
    assert violations(train={"optimizer": {"name": "sgd"}, "epochs": 6}) == [
        "epochs 6 exceed the contract's limit 5"
    ]


def test_plots_and_samples_need_the_contract_to_release_them() -> None:
    no_plots = constraints(released_outputs=["model", "metrics"])
    assert violations(no_plots, eval={"metrics": ["accuracy"], "plots": False}) == []
    assert violations(no_plots) == [
        "the pipeline makes plots but the contract does not release plots (set eval.plots: false)"
    ]
    assert violations(eval={"metrics": ["accuracy"], "samples": 2}) == [
        "the pipeline writes sample overlays but the contract does not release samples"
    ]


def test_privacy_required_but_missing_is_denied() -> None:
    assert violations(privacy=None) == [
        "contract mnist-demo requires differential privacy but the pipeline has no privacy settings"
    ]


def test_private_dataset_without_privacy_settings_is_denied_even_when_not_required() -> None:
    relaxed = constraints(require_privacy=False)
    assert violations(relaxed, privacy=None) == [
        "dataset mnist has privacy terms but the pipeline has no privacy settings"
    ]
    public = {**relaxed, "datasets": [{**contract_data()["datasets"][0], "privacy": None}]}
    assert violations(public, privacy=None) == []


def test_epsilon_over_the_dataset_limit_is_denied_in_plain_words() -> None:
    assert violations(privacy={"epsilon": 3.0, "delta": 1e-5}) == []
    assert violations(privacy={"epsilon": 5.0, "delta": 1e-5}) == [
        "epsilon 5.0 exceeds dataset mnist's limit 3.0"
    ]


def test_delta_over_the_dataset_limit_is_denied() -> None:
    assert violations(privacy={"epsilon": 1.0, "delta": 1e-4}) == [
        "delta 0.0001 exceeds dataset mnist's limit 1e-05"
    ]


def test_contract_out_of_force_is_denied() -> None:
    contract, pipeline = make_contract(), make_pipeline()
    late = datetime.now(UTC) + timedelta(days=31)
    early = datetime.now(UTC) - timedelta(days=2)
    [expired] = check_pipeline(contract, pipeline, now=late).violations
    assert expired.startswith("contract mnist-demo expired at ")
    [early_msg] = check_pipeline(contract, pipeline, now=early).violations
    assert early_msg.startswith("contract mnist-demo is not in force before ")


def test_every_violation_is_reported_at_once() -> None:
    found = violations(
        train={"optimizer": {"name": "rmsprop"}, "epochs": 9},
        privacy={"epsilon": 5.0, "delta": 1e-5},
    )
    assert len(found) == 3


EXTRA = """
package sealroom.extra
import rego.v1

deny contains msg if {
    input.pipeline.train.batch_size < 128
    size := input.pipeline.train.batch_size
    msg := sprintf("batch size %d is below the contract's minimum 128", [size])
}
"""


def test_contract_rego_rules_are_evaluated_too() -> None:
    contract = {"policy_rego": EXTRA}
    assert violations(contract) == ["batch size 64 is below the contract's minimum 128"]
    big = {"optimizer": {"name": "adam"}, "epochs": 1, "batch_size": 256}
    assert violations(contract, train=big) == []


def test_contract_rules_in_the_default_package_add_to_its_denials() -> None:
    rego = EXTRA.replace("package sealroom.extra", "package sealroom.contract")
    found = violations({"policy_rego": rego}, privacy={"epsilon": 5.0, "delta": 1e-5})
    assert len(found) == 2


@pytest.mark.parametrize(
    "rego",
    [
        "package sealroom.extra\nimport rego.v1\ndeny contains msg if {",  # does not parse
        "deny contains 1 if true",  # no package
        "package sealroom.extra\nimport rego.v1\nx := 1 / 0\ndeny contains 'x' if x",  # fails
    ],
)
def test_broken_contract_rules_fail_closed(rego: str) -> None:
    with pytest.raises(PolicyError):
        violations({"policy_rego": rego})
