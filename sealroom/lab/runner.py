"""Run one attempt of a job: the entry point's steps in order, in a private folder.

:func:`check_entry_point` refuses, when an entry point is added, anything a run would
trip over later (unknown task or argument, a reference to a missing parameter or to an
output no earlier step declares). :func:`execute` is what an engine calls on a worker; it
never raises, so one bad task cannot take a worker down: any error becomes a failed
outcome with one line naming the step.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import random
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.errors import LabError, SealroomError
from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload
from sealroom.lab.refs import Ref, refs_in, substitute
from sealroom.lab.spec import EntryPoint, ParameterSpec, parse_entry_point
from sealroom.lab.tasks.registry import InputFile, TaskContext, TaskSpec, registered_tasks

ARTIFACT_KINDS = frozenset({"onnx", "npz", "json", "csv", "png", "text"})
MAX_ERROR_CHARS = 400
MAX_LOG_CHARS = 1 << 20
THREADS_ENV = "SEALROOM_LAB_THREADS"


class StepFailed(LabError):
    """A step raised or broke its contract; the message already names the step."""


def check_entry_point(
    ep: EntryPoint, tasks: dict[str, TaskSpec] | None = None, where: str = ""
) -> None:
    """Refuse an entry point a run could not carry out, in one line naming the step."""
    tasks = registered_tasks() if tasks is None else tasks
    where = where or f"entry point {ep.name}"
    outputs: dict[str, tuple[str, ...]] = {}
    for step in ep.steps:
        at = f"{where}: step {step.name}"
        spec = tasks.get(step.task)
        if spec is None:
            known = ", ".join(sorted(tasks)) or "none"
            raise LabError(f"{at}: task {step.task!r} is not registered (known: {known})")
        _check_args(spec, step.args, at)
        for ref in refs_in(step.args, f"{at}: args"):
            _check_ref(ref, ep.parameters, outputs, f"{at} ({step.task})")
        outputs[step.name] = spec.outputs
    for name, value in ep.artifacts.items():
        at = f"{where}: artifact {name}"
        refs = refs_in(value, at)
        if len(refs) != 1 or refs[0].text != value or refs[0].scope != "steps":
            raise LabError(f"{at}: must be one ${{steps.STEP.OUTPUT}} reference, not {value!r}")
        _check_ref(refs[0], ep.parameters, outputs, at)
    for name, template in ep.models.items():
        at = f"{where}: models.{name}"
        for ref in refs_in(template, at):
            if ref.scope != "parameters":
                raise LabError(f"{at}: a model name may only hold ${{parameters.NAME}}")
            _check_ref(ref, ep.parameters, outputs, at)


def _check_args(spec: TaskSpec, args: dict[str, Any], at: str) -> None:
    signature = inspect.signature(spec.run)
    params = list(signature.parameters.values())[1:]  # the first one is the context
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params}
    for arg in args:
        if arg not in names:
            known = ", ".join(sorted(names)) or "none"
            raise LabError(f"{at}: task {spec.name} takes no argument {arg!r} (it takes: {known})")
    for p in params:
        if p.default is inspect.Parameter.empty and p.name not in args:
            raise LabError(f"{at}: task {spec.name} needs argument {p.name!r}")


def _check_ref(
    ref: Ref, parameters: dict[str, ParameterSpec], outputs: dict[str, tuple[str, ...]], at: str
) -> None:
    if ref.scope == "parameters":
        if ref.parts[0] not in parameters:
            raise LabError(f"{at}: {ref.text} names no parameter of the entry point")
    elif ref.scope == "steps":
        step, output = ref.parts
        if step not in outputs:
            raise LabError(f"{at}: {ref.text} names no earlier step")
        if output not in outputs[step]:
            declared = ", ".join(outputs[step]) or "none"
            raise LabError(
                f"{at}: {ref.text}: step {step} has no output {output!r} (it has: {declared})"
            )
    else:
        job, name = ref.parts  # Ref.text drops the "artifacts" segment of a jobs reference
        raise LabError(
            f"{at}: ${{jobs.{job}.artifacts.{name}}}: a job's artifact is passed through an "
            "artifact parameter, "
            "not named in the entry point"
        )


def one_line(exc: BaseException) -> str:
    """An exception as one bounded line; foreign exceptions keep their type name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if not isinstance(exc, SealroomError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def execute(payload: AttemptPayload, tasks: dict[str, TaskSpec] | None = None) -> AttemptOutcome:
    """Run one attempt; never raises (errors come back as a failed outcome).

    ``tasks`` replaces the registry (tests); engines call ``execute(payload)``.
    """
    started = time.time()
    label = re.sub(r"[^A-Za-z0-9-]", "", str(payload.job_id))[:40]  # ids are job-N; be sure
    workdir = Path(tempfile.mkdtemp(prefix=f"sealroom-lab-{label}-"))
    ctx = TaskContext(payload.job_id, payload.attempt, payload.seed, workdir / "work")
    params: dict[str, str] = {}
    artifacts: dict[str, ArtifactBlob] = {}
    error: str | None = None
    restore: Any = _nothing
    try:
        restore = _seed_everything(payload.seed)
        ep = parse_entry_point(payload.entry_point, "entry point")
        tasks = registered_tasks() if tasks is None else tasks
        check_entry_point(ep, tasks)
        values = _bind(ep, payload, workdir / "inputs")
        params = {name: _as_text(value) for name, value in _shown(ep, payload, values).items()}
        ctx.workdir.mkdir()
        outputs = _run_steps(ep, tasks, values, ctx)
        artifacts = _collect_artifacts(ep, outputs)
    except StepFailed as exc:
        error = str(exc)
    except Exception as exc:  # anything else (bad payload, registry): one line, not a crash
        error = one_line(exc)
    finally:
        restore()
        shutil.rmtree(workdir, ignore_errors=True)
    if error is not None:
        ctx.log(f"failed: {error}")
    logs = "\n".join(ctx.lines)
    if len(logs) > MAX_LOG_CHARS:
        logs = "[earlier lines cut]\n" + logs[-MAX_LOG_CHARS:]
    return AttemptOutcome(
        job_id=payload.job_id,
        attempt=payload.attempt,
        status="failed" if error is not None else "succeeded",
        error=error,
        artifacts=artifacts if error is None else {},
        metrics=list(ctx.metrics),
        params=params,
        logs=logs,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=started,
        ended_at=time.time(),
    )


def _bind(ep: EntryPoint, payload: AttemptPayload, inputs: Path) -> dict[str, Any]:
    """Parameter values for the steps: defaults filled, artifact references as InputFiles."""
    values: dict[str, Any] = {}
    for name in payload.parameters:
        if name not in ep.parameters:
            raise LabError(f"parameter {name}: not a parameter of entry point {ep.name}")
    for name, spec in ep.parameters.items():
        value = payload.parameters.get(name, spec.default)
        if value is None:
            raise LabError(f"parameter {name}: required, and the job gives no value")
        if spec.type == "artifact":
            value = _materialise(name, value, payload, inputs)
        values[name] = value
    return values


def _materialise(name: str, value: Any, payload: AttemptPayload, inputs: Path) -> InputFile:
    blob = payload.inputs.get(value) if isinstance(value, str) else None
    if blob is None:
        raise LabError(f"parameter {name}: no input artifact was sent for {str(value)[:120]!r}")
    _check_blob(blob, f"parameter {name}")
    folder = inputs / name
    folder.mkdir(parents=True)
    path = folder / blob.filename
    path.write_bytes(blob.data)
    return InputFile(blob.name, blob.kind, path)


def _shown(ep: EntryPoint, payload: AttemptPayload, values: dict[str, Any]) -> dict[str, Any]:
    """What the run records as its parameters: artifact references as their text."""
    return {
        name: payload.parameters.get(name, ep.parameters[name].default)
        if ep.parameters[name].type == "artifact"
        else value
        for name, value in values.items()
    }


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_as_text(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _run_steps(
    ep: EntryPoint, tasks: dict[str, TaskSpec], values: dict[str, Any], ctx: TaskContext
) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}

    def lookup(ref: Ref) -> Any:
        if ref.scope == "parameters":
            return values[ref.parts[0]]
        return outputs[ref.parts[0]][ref.parts[1]]

    for step in ep.steps:
        label = f"step {step.name} ({step.task})"
        spec = tasks[step.task]
        clock = time.perf_counter()
        try:
            args = substitute(step.args, lookup, label)
            result = spec.run(ctx, **args)
        except (Exception, SystemExit) as exc:  # the task's own error, whatever its type
            raise StepFailed(f"{label}: {one_line(exc)}") from None
        if not isinstance(result, dict) or set(result) != set(spec.outputs):
            got = sorted(result) if isinstance(result, dict) else type(result).__name__
            raise StepFailed(f"{label}: returned outputs {got}, declared {sorted(spec.outputs)}")
        outputs[step.name] = result
        ctx.log(f"{label}: done in {time.perf_counter() - clock:.2f} s")
    return outputs


def _collect_artifacts(
    ep: EntryPoint, outputs: dict[str, dict[str, Any]]
) -> dict[str, ArtifactBlob]:
    artifacts: dict[str, ArtifactBlob] = {}
    for name, ref_text in ep.artifacts.items():
        (ref,) = refs_in(ref_text, f"artifact {name}")
        step, output = ref.parts
        value = outputs[step][output]
        where = f"step {step} ({next(s.task for s in ep.steps if s.name == step)})"
        if not isinstance(value, ArtifactBlob):
            raise StepFailed(
                f"{where}: output {output} is declared as artifact {name} but is a "
                f"{type(value).__name__}, not an ArtifactBlob"
            )
        try:
            _check_blob(value, f"artifact {name}")
        except LabError as exc:
            raise StepFailed(f"{where}: {exc}") from None
        artifacts[name] = dataclasses.replace(value, name=name)
    return artifacts


def _check_blob(blob: ArtifactBlob, where: str) -> None:
    if not isinstance(blob.data, bytes):
        raise LabError(f"{where}: artifact data is {type(blob.data).__name__}, not bytes")
    if blob.kind not in ARTIFACT_KINDS:
        raise LabError(
            f"{where}: artifact kind {blob.kind[:40]!r} is not one of {sorted(ARTIFACT_KINDS)}"
        )
    name = blob.filename
    if (
        not name
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or len(name) > 200
    ):
        raise LabError(f"{where}: artifact filename {name[:60]!r} is not a plain file name")


def _nothing() -> None:
    return None


def _seed_everything(seed: int) -> Any:
    """Seed random/numpy/torch so a rerun on CPU reproduces its numbers; returns an undo."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    wanted = os.environ.get(THREADS_ENV, "1").strip() or "1"
    if not wanted.isdigit():
        raise LabError(f"{THREADS_ENV}={wanted[:20]!r} is not a number of threads")
    torch.set_num_threads(max(1, int(wanted)))
    torch.use_deterministic_algorithms(True, warn_only=True)

    def restore() -> None:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    return restore
