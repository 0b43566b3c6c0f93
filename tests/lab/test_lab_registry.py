"""The task registry: built-ins plus installed plugins (entry points), clashes refused."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sealroom.errors import LabError
from sealroom.lab.tasks.registry import ENTRY_POINT_GROUP, registered_tasks

PLUGIN = """
from sealroom.lab.tasks.registry import TaskSpec

def _double(ctx, value=1):
    return {"value": 2 * value}

ONE = TaskSpec("double", _double, ("value",), "twice the value", {"value": "a number"})
MANY = [TaskSpec("triple", _double, ("value",), "x"), TaskSpec("quad", _double, ("value",), "y")]
CLASH = TaskSpec("train", _double, ("value",), "shadows the built-in")
NOT_A_SPEC = "train"
BAD_NAME = TaskSpec("Bad Name", _double, ("value",), "x")
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "lab_plugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lab_plugin_mod"
    sys.modules.pop("lab_plugin_mod", None)


def entry(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_builtins_are_registered_without_loading_torch_for_listing() -> None:
    tasks = registered_tasks(plugins=[])
    assert {"load_data", "read_data", "train", "export", "load_model", "evaluate"} <= set(tasks)
    assert {"plot", "room_run"} <= set(tasks)
    assert all(spec.source == "sealroom" for spec in tasks.values())
    # The API server lists tasks and checks entry points: that must not import torch.
    code = (
        "import sys; from sealroom.lab.tasks.registry import registered_tasks; "
        "registered_tasks(plugins=[]); "
        "print(sorted(m for m in ('torch', 'onnx', 'opacus') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr[-500:]


def test_a_plugin_adds_tasks_through_the_entry_point_group(plugin_module: str) -> None:
    tasks = registered_tasks(
        plugins=[entry("one", f"{plugin_module}:ONE"), entry("many", f"{plugin_module}:MANY")]
    )
    assert {"double", "triple", "quad"} <= set(tasks)
    assert tasks["double"].source == f"entry point one = {plugin_module}:ONE"
    assert tasks["double"].run(None, value=4) == {"value": 8}


def test_a_plugin_task_clashing_with_a_builtin_is_refused_naming_both(plugin_module: str) -> None:
    with pytest.raises(
        LabError,
        match=r"task 'train' from entry point c = .*CLASH clashes with the one from sealroom",
    ):
        registered_tasks(plugins=[entry("c", f"{plugin_module}:CLASH")])


def test_two_plugins_with_one_name_are_refused(plugin_module: str) -> None:
    with pytest.raises(
        LabError, match=r"task 'double' from entry point b = .* clashes with .*entry point a ="
    ):
        registered_tasks(
            plugins=[entry("a", f"{plugin_module}:ONE"), entry("b", f"{plugin_module}:ONE")]
        )


def test_a_plugin_that_is_not_a_taskspec_or_does_not_load_is_refused(plugin_module: str) -> None:
    with pytest.raises(
        LabError, match=r"task plugin entry point x = .*: loads to str, not a TaskSpec"
    ):
        registered_tasks(plugins=[entry("x", f"{plugin_module}:NOT_A_SPEC")])
    with pytest.raises(
        LabError, match=r"task plugin entry point y = no_such_mod_xyz:T: cannot load"
    ):
        registered_tasks(plugins=[entry("y", "no_such_mod_xyz:T")])
    with pytest.raises(LabError, match=r"task name 'Bad Name' is not valid"):
        registered_tasks(plugins=[entry("z", f"{plugin_module}:BAD_NAME")])


def test_installed_entry_points_are_read_by_default(
    monkeypatch: pytest.MonkeyPatch, plugin_module: str
) -> None:
    seen: list[str] = []

    def fake(group: str) -> list[metadata.EntryPoint]:
        seen.append(group)
        return [entry("one", f"{plugin_module}:ONE")]

    monkeypatch.setattr(metadata, "entry_points", fake)
    assert "double" in registered_tasks()
    assert seen == [ENTRY_POINT_GROUP]
