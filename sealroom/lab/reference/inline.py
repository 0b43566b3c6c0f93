"""Install the reference entry points into a lab and run a plan in this process.

``install`` is what a lab needs before the plan can be submitted (the experiment and the
entry points, validated by the store). ``run_inline`` drives the lab's own scheduler with
the in-process :class:`~sealroom.lab.inline_engine.InlineEngine` until every job of the
plan is terminal: the same store, scheduler, runner and artifacts as a lab server, without
Ray or HTTP (tests; ``sealroom demo testbed --inline``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sealroom.lab.reference.plan import EXPERIMENT, entry_point_texts
from sealroom.lab.spec import TERMINAL, Plan

Progress = Callable[[list[Any]], None]  # called with the plan's JobRecords after each tick


def install(store: Any, experiment: str = EXPERIMENT) -> list[Any]:
    """Create ``experiment`` and add the reference entry points (idempotent)."""
    store.create_experiment(experiment, "reference robustness experiment (sealroom lab)")
    return [store.add_entry_point(text, name) for name, text in entry_point_texts().items()]


def run_inline(
    paths: Any,
    plan: Plan,
    *,
    slots: int = 2,
    timeout_s: float = 1800.0,
    on_progress: Progress | None = None,
) -> list[Any]:
    """Submit ``plan`` to a lab at ``paths`` and run it in-process; the final JobRecords.

    Jobs still unfinished at ``timeout_s`` are cancelled (and end ``cancelled``).
    """
    from sealroom.lab.artifacts import ArtifactStore
    from sealroom.lab.inline_engine import InlineEngine
    from sealroom.lab.scheduler import Scheduler
    from sealroom.lab.store import LabStore

    store = LabStore.open(paths)
    engine = InlineEngine(slots=slots)
    try:
        install(store, plan.jobs[0].experiment)
        scheduler = Scheduler(store, engine, ArtifactStore(paths))
        ids = [job.id for job in scheduler.submit_plan(plan)]
        deadline = time.monotonic() + timeout_s
        while True:
            scheduler.tick(0.2)
            jobs = [store.get_job(job_id) for job_id in ids]
            if on_progress is not None:
                on_progress(jobs)
            if all(job.status in TERMINAL for job in jobs):
                return jobs
            if time.monotonic() > deadline:
                for job in jobs:
                    if job.status not in TERMINAL:
                        scheduler.cancel(job.id)
                deadline = float("inf")
    finally:
        engine.shutdown()
        store.close()
