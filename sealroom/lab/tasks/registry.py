"""The task registry: names an entry point may use, mapped to functions installed here.

Built-in tasks register with :func:`task` when their module is imported (listed in
``BUILTIN_MODULES``). A separately installed package adds tasks through the Python entry
point group ``sealroom.lab.tasks``: each entry point loads to a :class:`TaskSpec` or a list
of them. A name may be registered once; a clash is refused, naming both sources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.attempts import MetricPoint

ENTRY_POINT_GROUP = "sealroom.lab.tasks"
BUILTIN_MODULES: tuple[str, ...] = ()  # filled by the modules that define built-in tasks

TaskFunction = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class TaskSpec:
    """A task: ``run(ctx, **args)`` returns ``{output name: value}`` with exactly ``outputs``.

    A value a job declares as an artifact must be an :class:`~sealroom.lab.attempts.ArtifactBlob`;
    other outputs (arrays, modules) only flow to later steps of the same job.
    """

    name: str
    run: TaskFunction
    outputs: tuple[str, ...]
    description: str
    args: dict[str, str] = field(default_factory=dict)  # argument -> what it takes (for docs)
    source: str = "sealroom"


@dataclass(frozen=True)
class InputFile:
    """A dependency's artifact, written into the attempt's private working folder."""

    name: str
    kind: str
    path: Path


@dataclass
class TaskContext:
    """What a task may use besides its arguments: its job, a seed, a private folder, logs."""

    job_id: str
    attempt: int
    seed: int
    workdir: Path
    lines: list[str] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)

    def log(self, message: str) -> None:
        self.lines.append(message)

    def metric(self, name: str, value: float, step: int = 0) -> None:
        self.metrics.append(MetricPoint(name, float(value), step))


_BUILTIN: dict[str, TaskSpec] = {}


def task(
    name: str, *, outputs: tuple[str, ...], description: str, args: dict[str, str] | None = None
) -> Callable[[TaskFunction], TaskFunction]:
    """Register a built-in task under ``name``."""

    def register(function: TaskFunction) -> TaskFunction:
        if name in _BUILTIN:
            raise LabError(f"task {name!r} is registered twice")
        _BUILTIN[name] = TaskSpec(name, function, outputs, description, dict(args or {}))
        return function

    return register
