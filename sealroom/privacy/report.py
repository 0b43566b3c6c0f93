"""The privacy report every DP run releases: the numbers and one plain-words guarantee."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealroom.privacy.trainer import DPTrainer

REPORT_VERSION = 1


def guarantee_statement(epsilon: float, delta: float, n_train: int, steps: int) -> str:
    """What (ε, δ) means for a person whose record is in the training data, in plain words."""
    factor = math.exp(min(epsilon, 700.0))
    return (
        f"The trained model is ({epsilon:.2f}, {delta:g})-differentially private with respect to "
        f"each single record of the {n_train} training records: adding or removing any one "
        f"record changes the probability of any outcome of training by at most a factor of "
        f"e^{epsilon:.2f} = {factor:.3g}, except with probability at most {delta:g}. This holds "
        f"whatever else an observer knows, and for anything later computed from the model alone. "
        f"It is the total over all {steps} noisy training steps. It does not cover the "
        f"validation and test metrics, which are computed without noise from held-out records "
        f"and released only as the contract allows."
    )


def privacy_report(trainer: DPTrainer) -> dict[str, Any]:
    """The ``privacy_report.json`` of a finished (or stopped) DP run."""
    plan = trainer.plan
    steps = trainer.accounted_steps()
    spent = (
        trainer.trajectory[-1][1]
        if trainer.trajectory[-1][0] == steps
        else (trainer.epsilon_at(steps))
    )
    return {
        "version": REPORT_VERSION,
        "epsilon_spent": spent,
        "epsilon_target": plan.epsilon_target,
        "epsilon_projected": plan.epsilon,
        "delta": plan.delta,
        "noise_multiplier": plan.noise_multiplier,
        "noise_calibrated": plan.calibrated,
        "sample_rate": plan.sample_rate,
        "expected_batch_size": plan.expected_batch_size,
        "sampling": "poisson" if trainer.privacy.poisson_sampling else "shuffle",
        "steps": steps,
        "planned_steps": plan.steps,
        "max_steps": plan.max_steps,
        "stopped_early": steps < plan.steps,
        "max_grad_norm": plan.max_grad_norm,
        "clipping": "flat (all parameters together)",
        "grad_sample_mode": trainer.privacy.grad_sample_mode,
        "accountant": plan.accountant,
        "epsilon_trajectory": [[s, e] for s, e in trainer.trajectory],
        "n_train": plan.n_train,
        "batch_size": plan.batch_size,
        "epochs": plan.epochs,
        "layer_fixes": list(trainer.layer_fixes),
        "rng": trainer.noise.description,
        "statement": guarantee_statement(spent, plan.delta, plan.n_train, steps),
    }
