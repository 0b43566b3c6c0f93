"""The reference robustness experiment as one plan of 13 jobs, full size or reduced.

``train-<arch>`` (4) → ``attack-<arch>`` (4: FGM and PGD over the ε grid on that source)
→ ``evaluate-<arch>`` (4: that source's set scored on all four models) → ``report``
(transferability matrices, robust accuracy curves, RobustBench-style table). Every edge is
a ``depends_on`` plus a ``${jobs.KEY.artifacts.NAME}`` reference; every seed that decides a
result (data subset, weight initialisation, attacked subset) is a fixed parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from sealroom.lab.spec import Plan, PlanJob

ARCHS: tuple[str, ...] = ("mlp", "lenet", "resnet", "dp-cnn")
ENTRY_POINT_FILES: tuple[str, ...] = (
    "robustness-train.yaml",
    "robustness-attack.yaml",
    "robustness-evaluate.yaml",
    "robustness-report.yaml",
    "robustness-served.yaml",
)
EXPERIMENT = "robustness"


@dataclass(frozen=True)
class Scale:
    """How big a run is: data, training, attack grid and effort."""

    dataset: str
    train_size: int
    test_size: int
    epochs: int
    limit: int  # test examples attacked per source
    eps: tuple[float, ...]
    pgd_steps: int
    pgd_step_ratio: float
    report_eps: float  # must be on the grid
    lr: float = 0.001


FULL = Scale("auto", 10_000, 1_000, 5, 500, (0.02, 0.05, 0.1, 0.15, 0.2), 10, 0.25, 0.1)
# `sealroom demo testbed`: minutes on two cores, same shape of results.
REDUCED = Scale("auto", 2_000, 200, 2, 100, (0.05, 0.1, 0.2), 5, 0.25, 0.1, lr=0.003)
# Tests: digits (8x8), a few dozen examples.
TINY = Scale("digits", 300, 60, 1, 30, (0.1, 0.2), 2, 0.5, 0.2)
SCALES: dict[str, Scale] = {"reduced": REDUCED, "full": FULL, "tiny": TINY}


def entry_point_texts() -> dict[str, str]:
    """file name -> YAML text of every reference entry point (package data)."""
    folder = resources.files(__package__)
    return {name: folder.joinpath(name).read_text(encoding="utf-8") for name in ENTRY_POINT_FILES}


def _ref(key: str, artifact: str) -> str:
    return "${jobs." + key + ".artifacts." + artifact + "}"


def reference_plan(
    experiment: str = EXPERIMENT,
    scale: Scale = FULL,
    *,
    seed: int = 0,
    queue: str = "default",
) -> Plan:
    """The 13-job plan (train × 4 → attack × 4 → evaluate × 4 → report)."""
    archs = ARCHS  # the evaluate and report entry points name these four
    jobs: list[dict[str, Any]] = []
    # Every job's own seed is pinned too (tasks that take no seed argument use it).
    common = {"experiment": experiment, "queue": queue, "seed": seed}
    for k, arch in enumerate(archs):
        jobs.append(
            {
                **common,
                "key": f"train-{arch}",
                "entry_point": "robustness-train",
                "description": f"train {arch}",
                "parameters": {
                    "arch": arch,
                    "dataset": scale.dataset,
                    "train_size": scale.train_size,
                    "test_size": scale.test_size,
                    "data_seed": seed,
                    "seed": seed + k,
                    "epochs": scale.epochs,
                    "lr": scale.lr,
                },
            }
        )
    for arch in archs:
        jobs.append(
            {
                **common,
                "key": f"attack-{arch}",
                "entry_point": "robustness-attack",
                "description": f"FGM/PGD on {arch}",
                "depends_on": [f"train-{arch}"],
                "parameters": {
                    "model": _ref(f"train-{arch}", "model"),
                    "data": _ref(f"train-{arch}", "data"),
                    "source": arch,
                    "eps": list(scale.eps),
                    "limit": scale.limit,
                    "subset_seed": seed,
                    "pgd_steps": scale.pgd_steps,
                    "pgd_step_ratio": scale.pgd_step_ratio,
                },
            }
        )
    for arch in archs:
        jobs.append(
            {
                **common,
                "key": f"evaluate-{arch}",
                "entry_point": "robustness-evaluate",
                "description": f"{arch}'s adversarial set on every model",
                "depends_on": [f"attack-{arch}", *(f"train-{t}" for t in archs)],
                "parameters": {
                    "adversarial": _ref(f"attack-{arch}", "adversarial"),
                    **{t: _ref(f"train-{t}", "model") for t in archs},
                },
            }
        )
    jobs.append(
        {
            **common,
            "key": "report",
            "entry_point": "robustness-report",
            "description": "transferability, robust accuracy curves, robustness table",
            "depends_on": [f"evaluate-{arch}" for arch in archs],
            "parameters": {
                **{arch: _ref(f"evaluate-{arch}", "results") for arch in archs},
                "eps": scale.report_eps,
            },
        }
    )
    return Plan(jobs=[PlanJob(**job) for job in jobs])
