"""The privacy report every DP run releases: the numbers and one plain-words guarantee."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sealroom.privacy.calibrate import SAMPLING_ACCOUNTING

if TYPE_CHECKING:
    from sealroom.privacy.trainer import DPTrainer

REPORT_VERSION = 2


def guarantee_statement(
    epsilon: float,
    delta: float,
    n_train: int,
    steps: int,
    evaluations: int = 0,
    sampling: str = "poisson",
) -> str:
    """What (ε, δ) means for a person whose record is in the data, in plain words."""
    factor = math.exp(min(epsilon, 700.0))
    charged = (
        "each step charged as a Poisson-subsampled Gaussian mechanism"
        if sampling == "poisson"
        else "charged without amplification by sampling (each epoch one Gaussian step on every "
        "record), because the consumer chose shuffled batches"
    )
    metrics = (
        f" and the {evaluations} noisy release(s) of evaluation metrics (Gaussian noise on "
        f"their sufficient statistics)"
        if evaluations
        else ""
    )
    return (
        f"The run's outputs are ({epsilon:.2f}, {delta:g})-differentially private with respect to "
        f"each single record of the provider's data ({n_train} training records and the held-out "
        f"records evaluated): adding or removing any one record changes the probability of any "
        f"outcome by at most a factor of e^{epsilon:.2f} = {factor:.3g}, except with probability "
        f"at most {delta:g}. This holds whatever else an observer knows, and for anything later "
        f"computed from the released model and metrics. It is the total over all {steps} noisy "
        f"training steps ({charged}){metrics}, composed in one accountant. No training loss, "
        f"accuracy or other exact statistic of the records is released. Not covered: the sizes "
        f"of the splits, which the provider declares as public, and the run's timing."
    )


def privacy_report(trainer: DPTrainer) -> dict[str, Any]:
    """The ``privacy_report.json`` of a finished (or stopped) DP run."""
    plan = trainer.plan
    steps = trainer.accounted_steps()
    spent = trainer.spent_epsilon()
    sampling = plan.sampling
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
        "sampling": sampling,
        "sampling_accounting": SAMPLING_ACCOUNTING[sampling],
        "epsilon_training": trainer.epsilon_at(steps, releases=0),
        "evaluation": {
            "noise_multiplier": plan.eval_noise_multiplier,
            "releases_planned": plan.eval_releases,
            "clip": trainer.privacy.eval_clip,
            "releases": [release.as_dict() for release in trainer.releases],
        },
        "history": [list(entry) for entry in trainer.history(steps, len(trainer.releases))],
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
        "statement": guarantee_statement(
            spent, plan.delta, plan.n_train, steps, len(trainer.releases), sampling
        ),
    }
