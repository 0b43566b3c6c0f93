"""A small lab in a workspace for the testbed page's tests: real store and scheduler, an
inline engine whose "task" is a function here (no torch, no Ray).

Jobs of experiment ``exp`` (ids in submission order):
job-1 ``train a`` succeeded (a 3-step ``loss`` curve); job-2 depends on job-1, succeeded;
job-3 fails; job-4 depends on job-3 (cancelled by the cascade); job-5 and job-6 are
evaluations of a robustness experiment (``results`` artifacts, sources a and b);
job-7 sits queued on a queue no worker serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.spec import JobRequest, Plan, PlanJob
from sealroom.workspace import Workspace
from tests.lab.core_kit import STEP, open_lab

EVALUATE = """
name: evaluate
parameters:
  tag: {type: str, default: ""}
steps:
  - {name: run, task: noop}
artifacts:
  results: ${steps.run.results}
"""
HOSTILE_LOG = "<script>alert('log')</script>\n\x1b[31mred text\x1b[0m\x1b]0;title\x07 done\n"
FORMULA = '=HYPERLINK("http://evil","x")'


def results_file(source: str) -> bytes:
    rows = []
    for target in ("a", "b"):
        for eps in (0.1, 0.2):
            white = source == target
            rows.append(
                {
                    "source": source,
                    "target": target,
                    "method": "pgd",
                    "eps": eps,
                    "n": 10,
                    "clean_correct": 8,
                    "clean_accuracy": 0.8,
                    "robust_accuracy": (0.1 if white else 0.5) / eps * 0.1,
                    "attack_success_rate": 0.9 if white else 0.25,
                }
            )
    return json.dumps({"format": "sealroom.robustness/1", "source": source, "rows": rows}).encode()


def execute(payload: AttemptPayload) -> AttemptOutcome:
    tag = str(payload.parameters.get("tag", ""))
    metrics = [MetricPoint("loss", 1.0 / (step + 1), step) for step in range(3)]
    metrics.append(MetricPoint("accuracy", 0.5 + payload.attempt / 10))
    if tag.startswith("source-"):
        source = tag.removeprefix("source-")
        blob = ArtifactBlob("results", "json", f"robustness-{source}.json", results_file(source))
        artifacts = {"results": blob}
    else:
        artifacts = {"out": ArtifactBlob("out", "json", "out.json", b'{"ok": true}')}
    failed = tag == "fail"
    return AttemptOutcome(
        payload.job_id,
        payload.attempt,
        "failed" if failed else "succeeded",
        error="step run: boom" if failed else None,
        artifacts={} if failed else artifacts,
        metrics=metrics,
        params={"tag": tag},
        logs=f"ran {payload.job_id}\n{HOSTILE_LOG}",
    )


def _job(key: str, tag: str = "", ep: str = "step", **kw: object) -> PlanJob:
    return PlanJob(
        key=key,
        experiment="exp",
        entry_point=ep,
        parameters={"tag": tag},
        **kw,  # type: ignore[arg-type]
    )


@contextmanager
def small_lab(ws: Workspace) -> Iterator[Path]:
    """Build the lab described in the module docstring under ``<ws>/lab``; yields its root.
    The lab is closed again (no thread keeps running) before the test reads it."""
    root = ws.home / "lab"
    lab = open_lab(root, runner=execute)  # type: ignore[arg-type]  # any execute will do
    try:
        lab.store.create_experiment("exp", "a small experiment")
        lab.store.add_entry_point(STEP)
        lab.store.add_entry_point(EVALUATE)
        lab.scheduler.submit_plan(
            Plan(
                jobs=[
                    _job("a", description="train a"),
                    _job("b", depends_on=["a"], description=FORMULA),
                    _job("c", tag="fail", description="fails"),
                    _job("d", depends_on=["c"], description="after c"),
                    _job("e", tag="source-a", ep="evaluate", description="evaluate a"),
                    _job("f", tag="source-b", ep="evaluate", description="evaluate b"),
                ]
            )
        )
        lab.run()
        lab.scheduler.submit(
            JobRequest(experiment="exp", entry_point="step", queue="nowhere", description="stuck")
        )
    finally:
        lab.engine.shutdown(wait=True)
        lab.store.close()
    yield root
