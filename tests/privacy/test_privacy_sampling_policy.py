"""Under a privacy budget, non-Poisson sampling is refused before any key is released.

The audit's finding: ``poisson_sampling: false`` draws shuffled batches from
``torch.Generator(train.seed)``, which the consumer chose and knows, so there is no
amplification by sampling, yet the budget was charged the Poisson ε (3.0 charged for
what is ε 7.56 on the dp-mnist settings). The room refuses it at its policy stage
(contract.rego, before the budget and the key requests) and again where it decides to
reserve (``budget_needed``).
"""

from __future__ import annotations

import pytest

from sealroom.errors import PrivacyError
from sealroom.policy import check_pipeline
from sealroom.room.privacy_hooks import budget_needed
from tests.kms.factories import contract_data, make_contract, make_pipeline
from tests.privacy.helpers import make_contract as contract_with_budgets
from tests.privacy.helpers import private_pipeline

SHUFFLED = {"epsilon": 3.0, "delta": 1e-5, "poisson_sampling": False}


def test_the_policy_stage_refuses_shuffled_batches_under_a_budget() -> None:
    decision = check_pipeline(make_contract(), make_pipeline(privacy=SHUFFLED))
    assert not decision.allow
    assert decision.violations == [
        "dataset mnist has a privacy budget: poisson_sampling false (shuffled batches from "
        "the consumer's seed) is refused; keep poisson_sampling true"
    ]
    poisson = {**SHUFFLED, "poisson_sampling": True}
    assert check_pipeline(make_contract(), make_pipeline(privacy=poisson)).allow


def test_shuffled_batches_on_data_without_a_budget_pass_the_policy() -> None:
    data = contract_data()
    data["constraints"] = {**data["constraints"], "require_privacy": False}
    data["datasets"] = [{**data["datasets"][0], "privacy": None}]
    decision = check_pipeline(make_contract(**data), make_pipeline(privacy=SHUFFLED))
    assert decision.allow, decision.violations


def test_the_budget_stage_refuses_before_reserving() -> None:
    contract = contract_with_budgets(datasets={"blobs": (3.0, 1e-3, 5.0, 1e-2)})
    shuffled = private_pipeline({"poisson_sampling": False})
    with pytest.raises(PrivacyError, match="poisson_sampling false under contract c1") as caught:
        budget_needed(contract, shuffled)
    assert "\n" not in str(caught.value)
    assert budget_needed(contract, private_pipeline()) is True
    no_budgets = contract_with_budgets(datasets={"blobs": None})
    assert budget_needed(no_budgets, shuffled) is False  # nothing charged: helper B's accounting
