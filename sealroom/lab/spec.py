"""What a researcher writes: entry points (typed parameters, a graph of steps, declared
artifacts) and job requests (an entry point, parameter values, a queue, dependencies).

An entry point is YAML; a step names a task registered in :mod:`sealroom.lab.tasks` by
name, never a module path, so no config string reaches an attribute lookup. Values flow
through references, resolved by :mod:`sealroom.lab.refs`:

- ``${parameters.NAME}``: a parameter of the job;
- ``${steps.STEP.OUTPUT}``: an output of an earlier step of the same job;
- ``${jobs.ID.artifacts.NAME}``: an artifact of a job this job depends on (only in a
  job's parameter values, and only for jobs named in ``depends_on``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sealroom.errors import LabError

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
JOB_ID_PATTERN = r"^job-[1-9][0-9]{0,11}$"
MAX_ENTRY_POINT_BYTES = 256 * 1024
MAX_STEPS = 64
MAX_PARAMETERS = 64
MAX_DEPENDENCIES = 256
MAX_YAML_EVENTS = 20_000  # scalars + collections of one entry point (a real one has hundreds)
MAX_YAML_DEPTH = 32

ParameterType = Literal["int", "float", "str", "bool", "ints", "floats", "strs", "artifact"]
JsonValue = Any  # JSON-compatible: None, bool, int, float, str, list, dict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Strict):
    """One typed parameter. ``artifact`` takes a ``${jobs.ID.artifacts.NAME}`` reference."""

    type: ParameterType
    default: JsonValue = None
    description: str = ""
    choices: list[JsonValue] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def required(self) -> bool:
        return self.default is None


class StepSpec(_Strict):
    """One node of the task graph: a registered task and its arguments (may hold references)."""

    name: Name
    task: Name
    args: dict[Name, JsonValue] = Field(default_factory=dict)
    after: list[Name] = Field(default_factory=list)  # order without a data reference


class EntryPoint(_Strict):
    """A named, versioned recipe. ``artifacts`` maps a job artifact name to a step output."""

    name: Name
    description: str = ""
    parameters: dict[Name, ParameterSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
    artifacts: dict[Name, str] = Field(default_factory=dict)
    # ONNX artifacts to register in the model registry, each under a name that may hold
    # ${parameters.NAME} (e.g. "robustness-${parameters.arch}"); default "<experiment>-<artifact>"
    models: dict[Name, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _graph(self) -> EntryPoint:
        for artifact in self.models:
            if artifact not in self.artifacts:
                raise ValueError(f"models names {artifact!r}, which is not a declared artifact")
        if len(self.parameters) > MAX_PARAMETERS:
            raise ValueError(f"at most {MAX_PARAMETERS} parameters")
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"step {step.name!r} is defined twice")
            for earlier in step.after:
                if earlier not in seen:
                    raise ValueError(
                        f"step {step.name!r}: 'after' names {earlier!r}, which is not an "
                        "earlier step"
                    )
            seen.add(step.name)
        return self


class JobRequest(_Strict):
    """What ``POST /v1/jobs`` and ``sealroom lab job submit`` take."""

    experiment: Name
    entry_point: Name
    parameters: dict[Name, JsonValue] = Field(default_factory=dict)
    queue: Name = "default"
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_DEPENDENCIES)
    allow_failure: bool = False  # run even when a dependency failed or was cancelled
    timeout_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_retries: int = Field(default=0, ge=0, le=10)  # new attempts after a lost worker
    seed: int | None = Field(default=None, ge=0, lt=2**31)  # None: drawn at submit, kept by rerun
    description: str = Field(default="", max_length=1000)


class PlanJob(JobRequest):
    """A job inside a plan: ``key`` names it for the plan's other jobs (``depends_on`` and
    ``${jobs.KEY.artifacts.NAME}`` may use keys of the same plan or ids of existing jobs)."""

    key: Name


class Plan(_Strict):
    """Several jobs submitted at once, all or none; cycles are refused with their path."""

    jobs: list[PlanJob] = Field(min_length=1, max_length=1000)


JobStatus = Literal["waiting", "queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
AttemptStatus = Literal[
    "running", "succeeded", "failed", "lost", "timed_out", "cancelled", "interrupted"
]


def _one_line_validation(exc: ValidationError, where: str) -> LabError:
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return LabError(f"{where}: {path}: {first['msg']}")


def check_yaml_shape(text: str, where: str) -> None:
    """Refuse YAML that would expand or nest beyond what an entry point needs, before any
    object is built: aliases (the "billion laughs"), too many nodes, too deep nesting."""
    if len(text.encode("utf-8")) > MAX_ENTRY_POINT_BYTES:
        raise LabError(f"{where}: larger than {MAX_ENTRY_POINT_BYTES} bytes")
    depth = events = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            events += 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise LabError(f"{where}:{_line(event)} YAML anchors and aliases are not accepted")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise LabError(f"{where}:{_line(event)} nested deeper than {MAX_YAML_DEPTH}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if events > MAX_YAML_EVENTS:
                raise LabError(f"{where}: more than {MAX_YAML_EVENTS} YAML nodes")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise LabError(f"{where}:{line} is not valid YAML") from None


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" line {mark.line + 1}:" if mark is not None else ""


def parse_entry_point(text: str, where: str) -> EntryPoint:
    """YAML text → a validated entry point, or one line naming the file and field."""
    check_yaml_shape(text, where)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise LabError(f"{where}:{line} is not valid YAML") from None
    if not isinstance(data, dict):
        raise LabError(f"{where}: an entry point is a mapping with name, parameters, steps")
    try:
        return EntryPoint.model_validate(data)
    except ValidationError as exc:
        raise _one_line_validation(exc, where) from None


def parse_model(model: type[_Strict], data: Any, where: str) -> Any:
    """Validate a request body (job, plan) into ``model`` with one-line errors."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _one_line_validation(exc, where) from None


def is_job_id(value: str) -> bool:
    return re.fullmatch(JOB_ID_PATTERN, value) is not None
