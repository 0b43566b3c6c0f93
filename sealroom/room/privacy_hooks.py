"""The room's seams to the privacy package, in one place.

``sealroom.privacy``'s DP trainer is imported lazily: it pulls in Opacus, and a
non-private run should not pay for it. The budget book itself lives with the operator
(see operator.py); the room only decides whether to ask it for a reservation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sealroom.errors import PrivacyError

if TYPE_CHECKING:
    from sealroom.contract.schema import Constraints, Contract
    from sealroom.pipeline.schema import Pipeline
    from sealroom.privacy.trainer import DPTrainerFactory


def budget_needed(contract: Contract, pipeline: Pipeline) -> bool:
    """Whether the run must reserve the pipeline's (ε, δ) before it asks for keys.

    PrivacyError for a contract with budgets and a pipeline without privacy, or with
    ``poisson_sampling: false``: shuffled batches come from ``torch.Generator(train.seed)``,
    which the consumer knows, so sampling amplifies nothing and the Poisson ε charged
    would understate the cost (contract.rego refuses it too, at the policy stage). A
    private run on data without budgets is DP-SGD with nothing to charge.
    """
    budgets = any(d.privacy is not None for d in contract.datasets)
    if pipeline.privacy is None:
        if budgets:
            raise PrivacyError(
                f"contract {contract.id} sets privacy budgets but the pipeline has no privacy"
            )
        return False
    if budgets and not pipeline.privacy.poisson_sampling:
        raise PrivacyError(
            f"pipeline {pipeline.name}: poisson_sampling false under contract {contract.id}'s "
            "privacy budgets is refused (shuffled batches from the consumer's seed give no "
            "amplification by sampling); keep poisson_sampling true"
        )
    return budgets


def dp_trainer_factory(pipeline: Pipeline) -> DPTrainerFactory | None:
    """For a private pipeline, the DP trainer factory that remembers what the run spent."""
    if pipeline.privacy is None:
        return None
    from sealroom.privacy.trainer import DPTrainerFactory

    return DPTrainerFactory()


def filter_outputs(
    outputs: dict[str, bytes], constraints: Constraints, private: bool
) -> dict[str, bytes]:
    """Only what the contract releases (see sealroom.privacy.release)."""
    from sealroom.privacy.release import filter_outputs as release_filter

    return release_filter(outputs, constraints, private)
