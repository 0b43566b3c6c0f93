"""The sequence diagrams of the docs are drawn by docs/diagrams/sequences.py: each picture
names every participant and step the script lists, and the committed pictures are the ones
the script draws now (same words), so neither can go stale without this test failing."""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "diagrams" / "sequences.py"
FIGURES = ROOT / "docs" / "figures"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sequences", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def texts(svg: Path) -> list[str]:
    """Every text the SVG shows (matplotlib keeps text as text with svg.fonttype none)."""
    tree = ET.parse(svg)
    return ["".join(node.itertext()) for node in tree.iter("{http://www.w3.org/2000/svg}text")]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path]:
    sequences = _script()
    out = tmp_path_factory.mktemp("figures")
    written = sequences.main(["--out", str(out), "--svg-only"])
    assert sorted(p.name for p in written) == sorted(f"{d.name}.svg" for d in sequences.DIAGRAMS)
    return sequences, out


def test_each_picture_names_every_participant_and_step(drawn: tuple[ModuleType, Path]) -> None:
    sequences, out = drawn
    for diagram in sequences.DIAGRAMS:
        shown = texts(out / f"{diagram.name}.svg")
        expected = [diagram.title, *diagram.participants]
        expected += [step.label for step in diagram.steps]
        expected += [step.sees for step in diagram.steps if step.sees]
        missing = [text for text in expected if text not in shown]
        assert not missing, f"{diagram.name}.svg lacks {missing}"
        assert shown.count(diagram.participants[0]) == 2  # header and footer


def test_the_training_story_shows_keys_and_what_the_operator_sees(
    drawn: tuple[ModuleType, Path],
) -> None:
    sequences, _ = drawn
    steps = sequences.TRAINING.steps
    keys = [s for s in steps if s.kind == "key"]
    assert {(s.src, s.dst) for s in keys} >= {("Key service", "Room"), ("Provider", "Key service")}
    to_operator = [s for s in steps if "Operator" in (s.src, s.dst) and s.src != s.dst]
    assert all(s.sees for s in to_operator), "every message at the operator says what it sees"
    assert not [s for s in steps if s.kind == "key" and s.sees == "plaintext"]


def test_the_committed_pictures_are_what_the_script_draws(drawn: tuple[ModuleType, Path]) -> None:
    sequences, out = drawn
    for diagram in sequences.DIAGRAMS:
        committed = FIGURES / f"{diagram.name}.svg"
        assert committed.is_file(), f"run python {SCRIPT.relative_to(ROOT)} and commit"
        assert texts(committed) == texts(out / f"{diagram.name}.svg"), (
            f"{committed.relative_to(ROOT)} is stale: run python {SCRIPT.relative_to(ROOT)}"
        )
