"""The runner: entry points checked before they run, attempts that never raise, one-line
errors naming the step, artifact inputs as files in a private folder removed afterwards."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob, AttemptPayload
from sealroom.lab.runner import MAX_ERROR_CHARS, check_entry_point, execute
from sealroom.lab.spec import parse_entry_point
from sealroom.lab.tasks.registry import InputFile, TaskContext, TaskSpec, builtin_tasks


def _emit(ctx: TaskContext, value: Any = 1, text: str = "") -> dict[str, Any]:
    ctx.log(f"emit {value} {text}")
    return {"value": value}


def _blob(ctx: TaskContext, text: str = "hi") -> dict[str, Any]:
    return {"file": ArtifactBlob("x", "text", "out.txt", text.encode())}


def _explode(ctx: TaskContext, lines: int = 1000) -> dict[str, Any]:
    raise RuntimeError("\n".join(f"line {i} " + "x" * 5000 for i in range(lines)))


def _wrong(ctx: TaskContext) -> dict[str, Any]:
    return {"value": 1, "extra": 2}


SEEN: dict[str, Any] = {}


def _read(ctx: TaskContext, file: InputFile) -> dict[str, Any]:
    SEEN.update(path=file.path, workdir=ctx.workdir, text=file.path.read_text(), kind=file.kind)
    SEEN["random"] = (random.random(), float(np.random.rand()))
    return {"value": file.path.read_text()}


def _need(ctx: TaskContext, needed: int) -> dict[str, Any]:
    return {"value": needed}


TASKS = {
    "emit": TaskSpec("emit", _emit, ("value",), "echo"),
    "blob": TaskSpec("blob", _blob, ("file",), "artifact"),
    "explode": TaskSpec("explode", _explode, ("value",), "raise"),
    "wrong": TaskSpec("wrong", _wrong, ("value",), "bad outputs"),
    "read": TaskSpec("read", _read, ("value",), "read an input"),
    "need": TaskSpec("need", _need, ("value",), "required argument"),
}


def ep(steps: str, params: str = "{}", artifacts: str = "{}") -> str:
    return f"name: t\nparameters: {params}\nsteps:\n{steps}\nartifacts: {artifacts}\n"


def check(text: str) -> None:
    check_entry_point(parse_entry_point(text, "t.yaml"), TASKS)


def run(text: str, parameters: dict[str, Any] | None = None, **kw: Any) -> Any:
    payload = AttemptPayload("job-1", 1, "exp", text, parameters or {}, **kw)
    return execute(payload, TASKS)


# check_entry_point: every refusal names the step


def test_a_reference_to_an_undefined_step_is_refused_naming_the_step() -> None:
    with pytest.raises(LabError, match=r"step b \(emit\): \$\{steps\.ghost\.value\} names no"):
        check(
            ep(
                "  - {name: a, task: emit}\n"
                '  - {name: b, task: emit, args: {value: "${steps.ghost.value}"}}'
            )
        )


def test_a_reference_to_a_later_step_is_refused() -> None:
    with pytest.raises(LabError, match=r"step a .*steps\.b\.value.* no earlier step"):
        check(
            ep(
                '  - {name: a, task: emit, args: {value: "${steps.b.value}"}}\n'
                "  - {name: b, task: emit}"
            )
        )


def test_a_reference_to_an_undefined_parameter_is_refused_naming_the_step() -> None:
    with pytest.raises(
        LabError, match=r"step a \(emit\): \$\{parameters\.nope\} names no parameter"
    ):
        check(ep('  - {name: a, task: emit, args: {value: "x ${parameters.nope}"}}'))


def test_an_undeclared_output_is_refused() -> None:
    with pytest.raises(LabError, match=r"step b .*step a has no output 'model' \(it has: value\)"):
        check(
            ep(
                "  - {name: a, task: emit}\n"
                '  - {name: b, task: emit, args: {value: "${steps.a.model}"}}'
            )
        )


def test_an_unregistered_task_is_refused() -> None:
    with pytest.raises(LabError, match=r"step a: task 'rm-rf' is not registered \(known: blob, "):
        check(ep("  - {name: a, task: rm-rf}"))


def test_unknown_and_missing_arguments_are_refused() -> None:
    with pytest.raises(
        LabError, match=r"step a: task emit takes no argument 'valu' \(it takes: text, value\)"
    ):
        check(ep("  - {name: a, task: emit, args: {valu: 1}}"))
    with pytest.raises(LabError, match=r"step a: task need needs argument 'needed'"):
        check(ep("  - {name: a, task: need}"))


def test_declared_artifacts_must_be_one_step_output_reference() -> None:
    with pytest.raises(LabError, match=r"artifact m: must be one \$\{steps"):
        check(ep("  - {name: a, task: blob}", artifacts='{m: "x${steps.a.file}"}'))
    with pytest.raises(LabError, match=r"artifact m: .*step a has no output 'nope'"):
        check(ep("  - {name: a, task: blob}", artifacts='{m: "${steps.a.nope}"}'))
    with pytest.raises(LabError, match=r"step a .*jobs\.job-1\.artifacts\.m.* artifact parameter"):
        check(ep('  - {name: a, task: emit, args: {value: "${jobs.job-1.artifacts.m}"}}'))


def test_the_builtin_tasks_are_all_registered_with_documented_arguments() -> None:
    tasks = builtin_tasks()
    assert {"load_data", "train", "export", "load_model", "evaluate", "plot", "room_run"} <= set(
        tasks
    )
    for spec in tasks.values():  # the args documentation lists every argument the task takes
        import inspect

        takes = list(inspect.signature(spec.run).parameters)[1:]
        assert sorted(takes) == sorted(spec.args), spec.name


# execute: never raises, one line naming the step


def test_a_task_raising_a_giant_multiline_error_yields_one_bounded_line() -> None:
    outcome = run(ep("  - {name: boom, task: explode}"))
    assert outcome.status == "failed"
    assert outcome.error.startswith("step boom (explode): RuntimeError: line 0 xxx")
    assert "\n" not in outcome.error and len(outcome.error) <= MAX_ERROR_CHARS + 30
    assert outcome.artifacts == {}


def test_returned_outputs_that_differ_from_the_declared_ones_fail_naming_the_step() -> None:
    outcome = run(ep("  - {name: a, task: emit}\n  - {name: w, task: wrong}"))
    assert outcome.status == "failed"
    assert (
        outcome.error == "step w (wrong): returned outputs ['extra', 'value'], declared ['value']"
    )
    assert outcome.logs.splitlines()[-1] == f"failed: {outcome.error}"


def test_a_declared_artifact_that_is_not_a_blob_fails_naming_the_step() -> None:
    outcome = run(ep("  - {name: a, task: emit}", artifacts='{m: "${steps.a.value}"}'))
    assert outcome.status == "failed"
    assert outcome.error.startswith("step a (emit): output value is declared as artifact m but is")


def test_an_artifact_with_a_path_for_a_file_name_is_refused() -> None:
    def sneaky(ctx: TaskContext) -> dict[str, Any]:
        return {"file": ArtifactBlob("x", "text", "../../etc/cron.d/x", b"")}

    tasks = {**TASKS, "blob": TaskSpec("blob", sneaky, ("file",), "sneaky")}
    text = ep("  - {name: a, task: blob}", artifacts='{m: "${steps.a.file}"}')
    outcome = execute(AttemptPayload("job-1", 1, "exp", text, {}), tasks)
    assert outcome.status == "failed" and "not a plain file name" in outcome.error


def test_a_bad_entry_point_snapshot_fails_in_one_line_instead_of_raising() -> None:
    outcome = run("steps: [[[")
    assert outcome.status == "failed" and outcome.error.startswith("entry point: ")
    outcome = run(ep("  - {name: a, task: nope}"))
    assert outcome.status == "failed" and "task 'nope' is not registered" in outcome.error


def test_references_resolve_and_params_and_logs_are_recorded() -> None:
    text = ep(
        '  - {name: a, task: emit, args: {value: "${parameters.n}"}}\n'
        '  - {name: b, task: emit, args: {value: "${steps.a.value}", text: "n=${parameters.n}"}}\n'
        "  - {name: c, task: blob}",
        params="{n: {type: int, default: 3}, flags: {type: strs, default: [a, b]}}",
        artifacts='{out: "${steps.c.file}"}',
    )
    outcome = run(text, {"n": 7})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.params == {"n": "7", "flags": "a,b"}
    assert "emit 7 n=7" in outcome.logs
    assert "step b (emit): done in" in outcome.logs
    blob = outcome.artifacts["out"]
    assert (blob.name, blob.kind, blob.filename, blob.data) == ("out", "text", "out.txt", b"hi")


def test_artifact_inputs_become_files_in_a_private_folder_removed_afterwards() -> None:
    ref = "${jobs.job-4.artifacts.model}"
    text = ep(
        '  - {name: r, task: read, args: {file: "${parameters.src}"}}',
        params="{src: {type: artifact}}",
    )
    blob = ArtifactBlob("model", "text", "notes.txt", b"from job-4")
    outcome = run(text, {"src": ref}, inputs={ref: blob}, seed=5)
    assert outcome.status == "succeeded", outcome.error
    assert SEEN["text"] == "from job-4" and SEEN["kind"] == "text"
    assert outcome.params == {"src": ref}
    path: Path = SEEN["path"]
    assert not path.exists() and not SEEN["workdir"].exists()
    first = SEEN["random"]
    assert run(text, {"src": ref}, inputs={ref: blob}, seed=5).status == "succeeded"
    assert SEEN["random"] == first  # the seed is the job's
    run(text, {"src": ref}, inputs={ref: blob}, seed=6)
    assert SEEN["random"] != first


def test_an_artifact_parameter_without_its_input_fails() -> None:
    text = ep(
        '  - {name: r, task: read, args: {file: "${parameters.src}"}}',
        params="{src: {type: artifact}}",
    )
    outcome = run(text, {"src": "${jobs.job-4.artifacts.model}"})
    assert outcome.status == "failed"
    assert outcome.error.startswith("parameter src: no input artifact was sent for")
    outcome = run(text, {})
    assert outcome.error == "parameter src: required, and the job gives no value"


def test_an_input_blob_with_a_path_as_file_name_is_refused() -> None:
    ref = "${jobs.job-4.artifacts.model}"
    text = ep(
        '  - {name: r, task: read, args: {file: "${parameters.src}"}}',
        params="{src: {type: artifact}}",
    )
    bad = ArtifactBlob("model", "text", "../escape.txt", b"x")
    outcome = run(text, {"src": ref}, inputs={ref: bad})
    assert outcome.status == "failed" and "not a plain file name" in outcome.error


def test_a_bad_thread_setting_fails_the_attempt_without_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEALROOM_LAB_THREADS", "lots")
    outcome = run(ep("  - {name: a, task: emit}"))
    assert outcome.status == "failed" and "SEALROOM_LAB_THREADS" in outcome.error


def test_a_job_id_cannot_steer_the_private_folder(tmp_path: Path) -> None:
    payload = AttemptPayload(
        "../../" + str(tmp_path) + "/x", 1, "e", ep("  - {name: a, task: emit}"), {}
    )
    outcome = execute(payload, TASKS)
    assert outcome.status == "succeeded", outcome.error
    assert list(tmp_path.iterdir()) == []
