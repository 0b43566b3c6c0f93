"""The room's seams to the privacy package and the key service, in one place.

``sealroom.privacy``'s DP trainer is imported lazily: it pulls in Opacus, and a
non-private run should not pay for it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sealroom.errors import PrivacyError
from sealroom.kms.service import KeyService, ReleaseGuard
from sealroom.room.receipt import RoomInfo
from sealroom.workspace import Workspace

if TYPE_CHECKING:
    from sealroom.attest.evidence import Attester
    from sealroom.contract.schema import Constraints, Contract
    from sealroom.pipeline.schema import Pipeline
    from sealroom.privacy.trainer import DPTrainerFactory


def reserve(ws: Workspace, run_id: str, contract: Contract, pipeline: Pipeline) -> bool:
    """Reserve the pipeline's (ε, δ) on every private dataset; False if nothing to reserve."""
    budgets = any(d.privacy is not None for d in contract.datasets)
    if pipeline.privacy is None:
        if budgets:
            raise PrivacyError(
                f"contract {contract.id} sets privacy budgets but the pipeline has no privacy"
            )
        return False
    if not budgets:  # a private run on data without budgets: DP-SGD, nothing to charge
        return False
    from sealroom.privacy.budget import BudgetBook

    with BudgetBook(ws) as book:
        book.reserve(run_id, contract, pipeline.privacy.epsilon, pipeline.privacy.delta)
    return True


def settle(ws: Workspace, run_id: str, spent_epsilon: float) -> None:
    from sealroom.privacy.budget import BudgetBook

    with BudgetBook(ws) as book:
        book.settle(run_id, spent_epsilon)


def dp_trainer_factory(pipeline: Pipeline) -> DPTrainerFactory | None:
    """For a private pipeline, the DP trainer factory that remembers what the run spent."""
    if pipeline.privacy is None:
        return None
    from sealroom.privacy.trainer import DPTrainerFactory

    return DPTrainerFactory()


def guards(ws: Workspace) -> list[ReleaseGuard]:
    """Release guards of the embedded key service: no key for a private run without budget."""
    from sealroom.privacy.budget import reservation_guard

    return [reservation_guard(ws)]


def key_service(ws: Workspace) -> AbstractContextManager[KeyService]:
    return KeyService(ws, guards=guards(ws))


def room_info(ws: Workspace, attester: Attester) -> RoomInfo:
    """What the receipt says about the room: its own evidence, verified like the KMS does."""
    from sealroom.attest.verifiers import verify_evidence

    claims = verify_evidence(attester.attest(bytes(64)), ws)
    return RoomInfo(
        tee_type=claims.tee_type, measurement=claims.measurement, insecure=claims.insecure
    )


def filter_outputs(
    outputs: dict[str, bytes], constraints: Constraints, private: bool
) -> dict[str, bytes]:
    """Only what the contract releases (see sealroom.privacy.release)."""
    from sealroom.privacy.release import filter_outputs as release_filter

    return release_filter(outputs, constraints, private)
