"""A small real lab for the tracking tests: LabStore + Scheduler + InlineEngine with an
execute function whose behaviour the job's ``mode`` parameter picks (succeed with an ONNX
model, fail, lose the worker once, be cancelled, block until released)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealroom.lab.artifacts import ArtifactStore
from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload, MetricPoint
from sealroom.lab.inline_engine import InlineEngine
from sealroom.lab.paths import LabPaths
from sealroom.lab.scheduler import Scheduler
from sealroom.lab.spec import TERMINAL, EntryPoint, JobRequest
from sealroom.lab.store import LabStore

ENTRY_POINT = """
name: train
description: a stand-in for training (the tracking tests do not need torch)
parameters:
  mode: {type: str, default: ok}
  lr: {type: float, default: 0.1}
  layers: {type: ints, default: [64, 32]}
  big: {type: str, default: ""}
  seed_model: {type: int, default: 1}
steps:
  - name: fit
    task: fake
artifacts:
  model: ${steps.fit.model}
  report: ${steps.fit.report}
"""


def tiny_onnx(seed: int = 1) -> bytes:
    """A 4 → 2 linear classifier as ONNX bytes, built without torch (fast)."""
    from onnx import TensorProto, helper

    rng = random.Random(seed)
    weights = helper.make_tensor(
        "W", TensorProto.FLOAT, [4, 2], [rng.uniform(-1, 1) for _ in range(8)]
    )
    bias = helper.make_tensor("B", TensorProto.FLOAT, [2], [0.0, 0.1])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "B"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@dataclass
class FakeExecute:
    """Stands in for sealroom.lab.runner.execute; ``extra_params`` lets a test log odd ones."""

    release: threading.Event = field(default_factory=threading.Event)
    extra_params: dict[str, str] = field(default_factory=dict)
    lost_once: set[str] = field(default_factory=set)

    def __call__(self, payload: AttemptPayload) -> AttemptOutcome:
        started = time.time()
        params = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.parameters.items()
        }
        params.update(self.extra_params)
        mode = payload.parameters.get("mode")

        def outcome(status: Any, **kw: Any) -> AttemptOutcome:
            return AttemptOutcome(
                payload.job_id,
                payload.attempt,
                status,
                params=params,
                started_at=started,
                ended_at=time.time(),
                logs=f"{mode}\n",
                **kw,
            )

        if mode == "block":
            self.release.wait(30)
            return outcome("failed", error="released")
        if mode == "lose-once" and payload.job_id not in self.lost_once:
            self.lost_once.add(payload.job_id)
            return outcome("lost", error="worker died")
        if mode == "fail":
            return outcome(
                "failed", error="step train: boom", metrics=[MetricPoint("loss", 9.0, 0)]
            )
        if mode == "cancel":
            return outcome("cancelled")
        if mode == "bad-onnx":  # a task that labels garbage as ONNX
            artifacts = {
                "model": ArtifactBlob("model", "onnx", "model.onnx", b"not an onnx model"),
                "report": ArtifactBlob("report", "csv", "r.csv", b"a\n1\n"),
            }
            return outcome("succeeded", artifacts=artifacts)
        metrics = [MetricPoint("loss", 1.0 / 2**step, step) for step in range(3)]
        metrics.append(MetricPoint("acc@eps=0.1", 0.8, 0))
        seed = int(payload.parameters.get("seed_model") or 1)  # type: ignore[arg-type]
        artifacts = {
            "model": ArtifactBlob("model", "onnx", "model.onnx", tiny_onnx(seed)),
            "report": ArtifactBlob("report", "csv", "r.csv", b"a,b\n1,2\n"),
        }
        return outcome("succeeded", metrics=metrics, artifacts=artifacts)


@dataclass
class SmallLab:
    home: Path
    paths: LabPaths
    store: LabStore
    scheduler: Scheduler
    engine: InlineEngine
    execute: FakeExecute
    run_ids: list[str] = field(default_factory=list)
    tracker: Any = None

    @classmethod
    def open(cls, home: Path) -> SmallLab:
        paths = LabPaths.of_workspace(home).create()
        store = LabStore.open(paths, check=lambda ep, where: _no_task_check(ep))
        execute = FakeExecute()
        engine = InlineEngine(execute=execute, queues=("default",), slots=2)
        scheduler = Scheduler(store, engine, ArtifactStore(paths))
        store.add_entry_point(ENTRY_POINT)
        return cls(home, paths, store, scheduler, engine, execute)

    def submit(self, experiment: str, **kw: Any) -> str:
        self.store.create_experiment(experiment)
        parameters = kw.pop("parameters", {})
        request = JobRequest(
            experiment=experiment, entry_point="train", parameters=parameters, **kw
        )
        return self.scheduler.submit(request).id

    def settle(self, job_ids: list[str], timeout_s: float = 20.0) -> None:
        """Tick the scheduler until the jobs are terminal."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.scheduler.tick(0.05)
            if all(self.store.get_job(j).status in TERMINAL for j in job_ids):
                return
        states = {j: self.store.get_job(j).status for j in job_ids}
        raise AssertionError(f"jobs did not finish: {states}")

    def forget_tracking(self) -> None:
        """As if the lab crashed after MLflow got the runs but before mark_tracked."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE attempts SET tracked = 0, mlflow_run_id = NULL")

    def close(self) -> None:
        self.execute.release.set()
        self.engine.shutdown()
        self.store.close()


def _no_task_check(ep: EntryPoint) -> None:
    """The tests' execute function ignores the steps; any task name is accepted."""
    assert ep.steps
