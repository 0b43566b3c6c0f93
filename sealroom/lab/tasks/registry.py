"""The task registry: names an entry point may use, mapped to functions installed here.

Built-in tasks register with :func:`task` when their module is imported (listed in
``BUILTIN_MODULES``). A separately installed package adds tasks through the Python entry
point group ``sealroom.lab.tasks``: each entry point loads to a :class:`TaskSpec` or a list
of them. A name may be registered once; a clash is refused, naming both sources.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.attempts import MetricPoint

ENTRY_POINT_GROUP = "sealroom.lab.tasks"
# The modules whose import registers the built-in tasks (a fixed list, never a config string).
BUILTIN_MODULES: tuple[str, ...] = (
    "sealroom.lab.tasks.data",
    "sealroom.lab.tasks.train",
    "sealroom.lab.tasks.export",
    "sealroom.lab.tasks.evaluate",
    "sealroom.lab.tasks.plot",
    "sealroom.lab.tasks.room",
    "sealroom.lab.tasks.attacks",
    "sealroom.lab.tasks.attacks_served",
    "sealroom.lab.tasks.robustness",
    "sealroom.lab.tasks.report",
)
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

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


def builtin_tasks() -> dict[str, TaskSpec]:
    """The tasks shipped with sealroom (importing their modules registers them)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(_BUILTIN)


def registered_tasks(
    plugins: Iterable[metadata.EntryPoint] | None = None,
) -> dict[str, TaskSpec]:
    """Built-ins plus every task installed under the ``sealroom.lab.tasks`` entry-point group.

    ``plugins`` replaces the installed entry points (tests). A plugin that fails to load,
    loads to something other than TaskSpecs, or reuses a name is refused in one line.
    """
    tasks = builtin_tasks()
    found = metadata.entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins
    for entry in found:
        source = _source_of(entry)
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin: any import error, reported in one line
            raise LabError(f"task plugin {source}: cannot load ({_first_line(exc)})") from None
        specs = loaded if isinstance(loaded, list | tuple) else [loaded]
        for spec in specs:
            if not isinstance(spec, TaskSpec):
                raise LabError(
                    f"task plugin {source}: loads to {type(spec).__name__}, not a TaskSpec"
                )
            if not _NAME.match(spec.name):
                raise LabError(f"task plugin {source}: task name {spec.name[:64]!r} is not valid")
            if spec.name in tasks:
                raise LabError(
                    f"task {spec.name!r} from {source} clashes with the one from "
                    f"{tasks[spec.name].source}"
                )
            tasks[spec.name] = TaskSpec(
                spec.name, spec.run, tuple(spec.outputs), spec.description, dict(spec.args), source
            )
    return tasks


def _source_of(entry: metadata.EntryPoint) -> str:
    package = f"{entry.dist.name} " if entry.dist is not None else ""
    return f"{package}entry point {entry.name} = {entry.value}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
