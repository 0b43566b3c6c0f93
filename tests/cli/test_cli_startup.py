"""Start-up cost: `--help`, light commands and `pipeline compose` import no heavy library.

Each command runs in a fresh interpreter (as a user's shell would) that reports which
modules it had imported when the command returned. Importing torch, numpy, FastAPI,
regopy or ONNX costs from a tenth of a second to many seconds, so a top-level import
of one of them in any command module (or in a module a light command needs) makes the
test fail; benchmarks/bench_cli.py measures the times themselves.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.crypto.identity import create_party
from sealroom.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "contract-template.yaml"

# Libraries a light command must not load (their top-level package names).
HEAVY = frozenset(
    {
        "torch",
        "numpy",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "regopy",
        "onnx",
        "onnx2torch",
        "onnxruntime",
        "monai",
        "opacus",
        "pandas",
        "scipy",
        "sklearn",
        "matplotlib",
        "PIL",
        "h5py",
    }
)

# Runs the CLI as `sealroom ARGS…` would, then writes the loaded top-level packages to a file.
DRIVER = """
import json, sys
report, args = sys.argv[1], sys.argv[2:]
sys.argv = ["sealroom", *args]
from sealroom.cli.main import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
with open(report, "w") as f:
    json.dump({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}, f)
"""


def loaded_after(args: list[str], tmp_path: Path, env: dict[str, str]) -> set[str]:
    """The top-level packages imported by the time ``sealroom ARGS`` returned (exit 0)."""
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), *args],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(report.read_text())
    assert outcome["code"] == 0, result.stdout + result.stderr
    return set(outcome["modules"])


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A workspace with three parties and a proposed contract `mnist-demo` (built once)."""
    home = tmp_path_factory.mktemp("startup") / "ws"
    workspace = Workspace.create(home)
    for name, role in (("hospital", "provider"), ("lab", "consumer"), ("operator", "operator")):
        create_party(workspace, name, role, unencrypted=True)
    env = {"SEALROOM_HOME": str(home)}
    result = CliRunner().invoke(app, ["contract", "propose", str(TEMPLATE), "--as", "lab"], env=env)
    assert result.exit_code == 0, result.output
    return env


LIGHT_COMMANDS = [
    ["ledger", "verify"],
    ["party", "list"],
    ["party", "show", "hospital"],
    ["contract", "list"],
    ["contract", "show", "mnist-demo", "--json"],
    ["attest", "collateral", "list"],
    ["keys", "--help"],  # the key service's module loads FastAPI, but only to serve
]


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_light_commands_import_no_heavy_library(
    args: list[str], story: dict[str, str], tmp_path: Path
) -> None:
    heavy = loaded_after(args, tmp_path, story) & HEAVY
    assert not heavy, f"`sealroom {' '.join(args)}` imported {sorted(heavy)}"


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    loaded = loaded_after(["--help"], tmp_path, {})
    assert not loaded & HEAVY
    assert "pydantic" not in loaded and "cryptography" not in loaded  # no command module ran


def test_compose_checks_the_mnist_pipeline_without_torch(tmp_path: Path) -> None:
    out = tmp_path / "mnist.pipeline.json"
    args = ["pipeline", "compose", str(ROOT / "scenarios" / "mnist"), "--out", str(out)]
    heavy = loaded_after(args, tmp_path, {}) & HEAVY
    assert not heavy, f"pipeline compose imported {sorted(heavy)}"
    assert json.loads(out.read_text())["name"] == "mnist"


# --------------------------------------------------------------------------- static rule

# At the top of a command module: the standard library, typer, other command modules and
# sealroom.errors (exception classes, no imports). console.py is the one place rich loads.
ALLOWED_TOP = {"typer", "__future__"}


def _top_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of imports that run when the module loads (not under TYPE_CHECKING)."""
    found: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.lineno, node.module))
            elif isinstance(node, ast.If) and ast.unparse(node.test) != "TYPE_CHECKING":
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _allowed(module: str, file: str) -> bool:
    root = module.split(".")[0]
    if root in sys.stdlib_module_names or root in ALLOWED_TOP:
        return True
    if module.startswith("sealroom.cli") or module == "sealroom.errors":
        return True
    return file == "console.py" and root == "rich"


def test_command_modules_import_libraries_inside_their_functions() -> None:
    offenders = []
    for path in sorted((ROOT / "sealroom" / "cli").glob("*.py")):
        for line, module in _top_level_imports(ast.parse(path.read_text())):
            if not _allowed(module, path.name):
                offenders.append(f"sealroom/cli/{path.name}:{line}: {module}")
    assert not offenders, "import these inside the command functions:\n" + "\n".join(offenders)


def test_the_static_rule_catches_a_top_level_import() -> None:
    tree = ast.parse("import json\nimport numpy as np\nif True:\n    from fastapi import X\n")
    bad = [m for _, m in _top_level_imports(tree) if not _allowed(m, "x.py")]
    assert bad == ["numpy", "fastapi"]
