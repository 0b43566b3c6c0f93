"""The package layering docs/architecture.md describes, checked on the source: a package
imports only from its own layer or the layers below it, so the room's trusted base
(crypto, contract, ledger) never depends on a server, the lab or the CLI."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sealroom"
# lowest first; docs/architecture.md has the same table
LAYERS: dict[str, int] = {
    **dict.fromkeys(("errors", "files", "httpguard", "sqlite_store", "workspace", "crypto"), 0),
    **dict.fromkeys(("contract", "ledger"), 1),
    **dict.fromkeys(
        ("kms", "attest", "policy", "pipeline", "train", "data", "privacy", "sandbox"), 2
    ),
    **dict.fromkeys(("room", "serve", "lab"), 3),
    "ui": 4,
    "cli": 5,
}


def sealroom_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.startswith("sealroom.")]
    return found


def upward_imports() -> list[str]:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for line, name in sealroom_imports(path):
            target = name.split(".")[1]
            if LAYERS[target] > LAYERS[package]:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line} imports {name}")
    return upward


def test_every_package_has_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in ROOT.iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert packages - set(LAYERS) == set()  # a new package must be placed in a layer


def test_no_package_imports_from_a_layer_above_it() -> None:
    assert upward_imports() == []


def test_the_check_finds_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "sealroom"
    (fake / "crypto").mkdir(parents=True)
    (fake / "crypto" / "leak.py").write_text("from sealroom.cli.main import app\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert upward_imports() == ["sealroom/crypto/leak.py:1 imports sealroom.cli.main"]
