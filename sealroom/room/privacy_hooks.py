"""The room's seams to the privacy package and the key service, in one place.

``sealroom.privacy`` (DP trainer, budgets, release rules) is imported lazily: it pulls in
Opacus, and a non-private run should not pay for it. Without it a private pipeline is
refused (fail closed), never run without DP.
"""

from __future__ import annotations

import importlib.util
import json
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sealroom.errors import PrivacyError
from sealroom.kms.service import KeyService, ReleaseGuard
from sealroom.room.receipt import RoomInfo
from sealroom.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Callable

    from sealroom.attest.evidence import Attester
    from sealroom.contract.schema import Constraints, Contract
    from sealroom.pipeline.schema import Pipeline
    from sealroom.train.loop import Trainer

# Outputs that describe individual records; never released from a private run unless named.
_PER_EXAMPLE = {"confusion_matrix.png": "confusion_matrix", "segmentation_samples.png": "samples"}


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


def privacy_available() -> bool:
    return _has("sealroom.privacy.budget")


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
    if not privacy_available():
        raise PrivacyError("pipeline sets privacy but sealroom.privacy is not installed")
    from sealroom.privacy.budget import BudgetBook

    with BudgetBook(ws) as book:
        book.reserve(run_id, contract, pipeline.privacy.epsilon, pipeline.privacy.delta)
    return True


def settle(ws: Workspace, run_id: str, spent_epsilon: float) -> None:
    from sealroom.privacy.budget import BudgetBook

    with BudgetBook(ws) as book:
        book.settle(run_id, spent_epsilon)


def spent_epsilon(trainer: Trainer | None) -> float:
    """What the accountant has spent so far (0.0 for a non-private or unstarted run)."""
    if trainer is None or not privacy_available():
        return 0.0
    from sealroom.privacy.trainer import DPTrainer

    if not isinstance(trainer, DPTrainer):
        return 0.0
    try:
        return float(trainer.spent_epsilon())
    except Exception:  # an accountant that never stepped has spent nothing
        return 0.0


def trainer_class(pipeline: Pipeline) -> Callable[..., Trainer]:
    """The DP trainer for a private pipeline, the plain one otherwise."""
    if pipeline.privacy is None:
        from sealroom.train.loop import Trainer

        return Trainer
    if not privacy_available():
        raise PrivacyError("pipeline sets privacy but sealroom.privacy is not installed")
    from sealroom.privacy.trainer import DPTrainer

    return DPTrainer


def guards(ws: Workspace) -> list[ReleaseGuard]:
    """Release guards of the embedded key service: no key for a private run without budget."""
    if not privacy_available():
        return []
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
    """Only what the contract releases (sealroom.privacy.release when present)."""
    if _has("sealroom.privacy.release"):
        from sealroom.privacy.release import filter_outputs as release_filter

        return release_filter(outputs, constraints, private)
    return _fallback_filter(outputs, constraints, private)


def _fallback_filter(
    outputs: dict[str, bytes], constraints: Constraints, private: bool
) -> dict[str, bytes]:
    from sealroom.train.run import output_kind

    allowed = set(constraints.released_outputs)
    kept: dict[str, bytes] = {}
    for name, data in outputs.items():
        if output_kind(name) not in allowed:
            continue
        if private and _PER_EXAMPLE.get(name, "") not in allowed | {""}:
            continue
        if name == "metrics.json":
            report: dict[str, Any] = json.loads(data)
            report["metrics"] = {
                k: v for k, v in report.get("metrics", {}).items() if k in constraints.metrics
            }
            if private:
                report.pop("history", None)
            data = json.dumps(report, indent=2, sort_keys=True).encode()
        elif name == "training_log.txt" and private:
            continue
        kept[name] = data
    return kept
