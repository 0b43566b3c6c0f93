"""A lab store stand-in for the tracking tests: the records and the slice of LabStore's API
the tracker reads (same field names, same semantics: artifacts of the succeeded attempt,
metrics of the latest attempt, record_model upserting by (name, job, artifact))."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.paths import LabPaths


@dataclass(frozen=True)
class Job:
    id: str
    experiment: str
    entry_point: str
    entry_point_version: int
    parameters: dict[str, Any]
    queue: str
    depends_on: tuple[str, ...]
    status: str
    created_at: float
    attempts: int
    rerun_of: str | None = None
    description: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Attempt:
    job_id: str
    number: int
    status: str
    worker: str
    started_at: float
    ended_at: float | None
    error: str | None
    mlflow_run_id: str | None = None
    tracked: bool = False


@dataclass(frozen=True)
class Artifact:
    job_id: str
    attempt: int
    name: str
    kind: str
    filename: str
    sha256: str
    size: int
    path: str


@dataclass(frozen=True)
class Metric:
    job_id: str
    attempt: int
    name: str
    step: int
    value: float


@dataclass(frozen=True)
class Model:
    name: str
    version: int
    job_id: str
    artifact: str
    mlflow_version: str | None


@dataclass
class FakeStore:
    paths: LabPaths
    jobs: dict[str, Job] = field(default_factory=dict)
    attempt_rows: dict[tuple[str, int], Attempt] = field(default_factory=dict)
    artifact_rows: list[Artifact] = field(default_factory=list)
    metric_rows: list[Metric] = field(default_factory=list)
    param_rows: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    models: list[Model] = field(default_factory=list)

    @classmethod
    def create(cls, home: Path) -> FakeStore:
        return cls(LabPaths.of_workspace(home).create())

    def add_job(
        self,
        job_id: str,
        experiment: str,
        *,
        status: str,
        attempts: list[tuple[str, str | None]],
        params: dict[str, Any],
        metrics: list[tuple[str, int, float]],
        artifacts: dict[str, tuple[str, str, bytes]],
    ) -> None:
        self.jobs[job_id] = Job(job_id, experiment, "train", 1, params, "default", (), status, 1.0e9,
                                len(attempts))
        for number, (attempt_status, error) in enumerate(attempts, start=1):
            ended = None if attempt_status == "running" else 1.0e9 + number + 1
            self.attempt_rows[(job_id, number)] = Attempt(
                job_id, number, attempt_status, "node-1", 1.0e9 + number, ended, error)
        last = len(attempts)
        self.metric_rows += [Metric(job_id, last, name, step, value) for name, step, value in metrics]
        for name, (kind, filename, data) in artifacts.items():
            rel = f"{job_id}/{last}/{filename}"
            (self.paths.artifacts / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.paths.artifacts / rel).write_bytes(data)
            self.artifact_rows.append(Artifact(job_id, last, name, kind, filename,
                                               hashlib.sha256(data).hexdigest(), len(data), rel))

    def get_job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise LabError(f"unknown job {job_id!r}")
        return self.jobs[job_id]

    def attempts(self, job_id: str) -> list[Attempt]:
        self.get_job(job_id)
        return [a for (j, _), a in sorted(self.attempt_rows.items()) if j == job_id]

    def attempt(self, job_id: str, number: int) -> Attempt:
        return self.attempt_rows[(job_id, number)]

    def artifacts(self, job_id: str) -> list[Artifact]:
        won = [a.number for a in self.attempts(job_id) if a.status == "succeeded"]
        return sorted((a for a in self.artifact_rows if a.job_id == job_id and a.attempt in won),
                      key=lambda a: a.name)

    def metrics(self, job_ids: list[str], names: list[str] | None = None) -> list[Metric]:
        out: list[Metric] = []
        for job_id in job_ids:
            latest = self.get_job(job_id).attempts
            out += [m for m in self.metric_rows if m.job_id == job_id and m.attempt == latest
                    and (names is None or m.name in names)]
        return out

    def params(self, job_id: str, attempt: int | None = None) -> dict[str, str]:
        return dict(self.param_rows.get((job_id, attempt or self.get_job(job_id).attempts), {}))

    def record_model(self, name: str, job_id: str, artifact: str, mlflow_version: str | None = None) -> Model:
        for index, model in enumerate(self.models):
            if (model.name, model.job_id, model.artifact) == (name, job_id, artifact):
                self.models[index] = replace(model, mlflow_version=mlflow_version)
                return self.models[index]
        version = 1 + max((m.version for m in self.models if m.name == name), default=0)
        self.models.append(Model(name, version, job_id, artifact, mlflow_version))
        return self.models[-1]

    def list_models(self) -> list[Model]:
        return sorted(self.models, key=lambda m: (m.name, m.version))

    def untracked_attempts(self) -> list[Attempt]:
        return [a for a in self.attempt_rows.values() if not a.tracked and a.status != "running"]

    def mark_tracked(self, job_id: str, attempt: int, run_id: str) -> None:
        if (job_id, attempt) not in self.attempt_rows:
            raise LabError(f"job {job_id} has no attempt {attempt}")
        key = (job_id, attempt)
        self.attempt_rows[key] = replace(self.attempt_rows[key], tracked=True, mlflow_run_id=run_id)

    def forget_tracking(self) -> None:
        for key, row in self.attempt_rows.items():
            self.attempt_rows[key] = replace(row, tracked=False, mlflow_run_id=None)


@dataclass
class LabFixture:
    home: Path
    store: FakeStore
    tracker: Any
    run_ids: list[str]


def tiny_onnx(seed: int = 1) -> bytes:
    """A 4 → 2 linear classifier as ONNX bytes, built without torch (fast)."""
    from onnx import TensorProto, helper

    rng = random.Random(seed)
    weights = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [rng.uniform(-1, 1) for _ in range(8)])
    bias = helper.make_tensor("B", TensorProto.FLOAT, [2], [0.0, 0.1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
