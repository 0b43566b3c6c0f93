"""What crosses the engine boundary: one attempt of a job going out, its outcome coming back.

Only JSON-compatible values and raw bytes cross: Ray moves these between processes and
machines, and nothing on either side rebuilds an object from a byte stream it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sealroom.lab.spec import JsonValue

EngineStatus = Literal["succeeded", "failed", "lost", "cancelled"]


@dataclass(frozen=True)
class ArtifactBlob:
    """One file a job declares as an artifact. ``kind`` says how to read it (onnx, npz,
    json, csv, png, text); ``filename`` is a plain name, never a path."""

    name: str
    kind: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    step: int = 0


@dataclass(frozen=True)
class AttemptPayload:
    """Everything a worker needs to run one attempt, with no access to the lab's database.

    ``inputs`` holds the bytes of every dependency artifact the parameters reference, keyed
    by the reference text ``${jobs.ID.artifacts.NAME}`` exactly as it appears in
    ``parameters``; the runner hands tasks a file holding those bytes.
    """

    job_id: str
    attempt: int  # 1-based
    experiment: str
    entry_point: str  # the YAML snapshot the job pinned at submit
    parameters: dict[str, JsonValue]
    inputs: dict[str, ArtifactBlob] = field(default_factory=dict)
    seed: int = 0
    timeout_s: float | None = None


@dataclass(frozen=True)
class AttemptOutcome:
    """How an attempt ended, as the engine saw it.

    ``succeeded``/``failed``: the runner returned (``error`` is one line on failure);
    ``lost``: the worker process or node died (no runner result); ``cancelled``: the lab
    asked the engine to stop it (cancel or timeout; the scheduler knows which).
    """

    job_id: str
    attempt: int
    status: EngineStatus
    error: str | None = None
    artifacts: dict[str, ArtifactBlob] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # resolved parameters, as logged
    logs: str = ""
    worker: str = ""  # node or process that ran it
    started_at: float = 0.0
    ended_at: float = 0.0
