"""Score an adversarial set on target models: robust accuracy and attack success rate.

Definitions (docs/lab-robustness.md):

- clean accuracy: fraction of the set's clean examples the target labels correctly;
- robust accuracy at (method, ε): fraction of the adversarial examples it labels correctly;
- attack success rate at (method, ε): among the examples the target labels correctly when
  clean, the fraction whose adversarial version it labels wrongly (undefined, recorded as
  null, when it labels none correctly).

With target = source this is white-box robustness; with target ≠ source it measures how
well examples crafted on one model transfer to another (Papernot et al., 2016).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.attacks import (
    AdversarialSet,
    as_module,
    eps_label,
    predict,
    read_set,
    success_rate,
)
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.results_format import RESULTS_ARTIFACT, RESULTS_FORMAT
from sealroom.lab.tasks.values import input_bytes

if TYPE_CHECKING:
    from torch import nn

MAX_TARGETS = 32


@dataclass(frozen=True)
class Row:
    """One (source, target, method, ε) cell."""

    source: str
    target: str
    method: str
    eps: float
    n: int
    clean_correct: int
    clean_accuracy: float
    robust_accuracy: float
    attack_success_rate: float | None


def score(adv: AdversarialSet, target: str, model: nn.Module) -> list[Row]:
    """Every (method, ε) of ``adv`` scored on ``model``."""
    clean = predict(model, adv.x)
    correct = int(np.sum(clean == adv.y))
    rows = []
    for method in adv.methods:
        for eps in adv.eps:
            adversarial = predict(model, adv.adversarial(method, eps))
            rows.append(
                Row(
                    source=adv.source,
                    target=target,
                    method=method,
                    eps=eps,
                    n=len(adv.y),
                    clean_correct=correct,
                    clean_accuracy=correct / len(adv.y),
                    robust_accuracy=float(np.mean(adversarial == adv.y)),
                    attack_success_rate=success_rate(adv.y, clean, adversarial),
                )
            )
    return rows


def results_blob(source: str, rows: list[Row]) -> ArtifactBlob:
    doc = {"format": RESULTS_FORMAT, "source": source, "rows": [asdict(r) for r in rows]}
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    return ArtifactBlob(RESULTS_ARTIFACT, "json", f"robustness-{source}.json", data)


def read_results(data: bytes, where: str) -> list[Row]:
    """Rows of a results artifact; one line naming the file and what is wrong."""
    try:
        doc = json.loads(data)
        if doc.get("format") != RESULTS_FORMAT:
            raise LabError(f"{where}: not a {RESULTS_FORMAT} results file")
        rows = [Row(**row) for row in doc["rows"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise LabError(f"{where}: malformed robustness results") from None
    for row in rows:
        if not (isinstance(row.eps, int | float) and isinstance(row.n, int) and row.n > 0):
            raise LabError(f"{where}: malformed row for {str(row.target)[:40]}")
    return rows


@task(
    "evaluate_attack",
    outputs=(RESULTS_ARTIFACT,),
    description="score an adversarial set on target models: clean and robust accuracy, "
    "attack success rate per (method, eps); a json artifact",
    args={
        "adversarial": "the attack job's npz adversarial set",
        "targets": "mapping: target name -> model (onnx artifact or torch module)",
    },
)
def evaluate_attack(ctx: TaskContext, adversarial: Any, targets: dict[str, Any]) -> dict[str, Any]:
    adv = read_set(
        input_bytes(adversarial, "npz", "evaluate_attack.adversarial"), "adversarial set"
    )
    if not isinstance(targets, dict) or not 0 < len(targets) <= MAX_TARGETS:
        raise LabError(f"evaluate_attack.targets: a mapping of 1 to {MAX_TARGETS} models")
    rows: list[Row] = []
    for name, value in targets.items():
        model = as_module(value, f"evaluate_attack.targets.{name}")
        found = score(adv, name, model)
        rows.extend(found)
        ctx.metric(f"clean_accuracy.{name}", found[0].clean_accuracy)
        for row in found:
            label = f"{name}.{row.method}.eps_{eps_label(row.eps)}"
            ctx.metric(f"robust_accuracy.{label}", row.robust_accuracy)
            if row.attack_success_rate is not None:
                ctx.metric(f"attack_success_rate.{label}", row.attack_success_rate)
        ctx.log(f"scored {adv.source}'s set on {name}")
    return {RESULTS_ARTIFACT: results_blob(adv.source, rows)}
