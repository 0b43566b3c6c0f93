"""`sealroom pipeline`: compose prints the digest, schema prints JSON Schema, show validates."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.pipeline.compose import compose, pipeline_digest

runner = CliRunner()

PARTS = {
    "pipeline": {"name": "digits"},
    "model": {
        "model": {"format": "architecture", "name": "simple_cnn"},
        "input_shape": [1, 28, 28],
    },
    "dataset": {"id": "digits", "source": {"format": "idx", "images": "i.gz", "labels": "l.gz"}},
    "loss": {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"},
    "train": {"optimizer": {"name": "sgd", "params": {"lr": 0.1, "momentum": 0.9}}},
}


def scenario(tmp_path: Path, **overrides: object) -> Path:
    directory = tmp_path / "configs"
    directory.mkdir(exist_ok=True)
    for name, content in {**PARTS, **overrides}.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(content))
    return directory


def test_compose_writes_the_document_and_prints_its_digest(tmp_path: Path) -> None:
    directory = scenario(tmp_path)
    out = tmp_path / "out" / "digits.pipeline.json"
    result = runner.invoke(app, ["pipeline", "compose", str(directory), "--out", str(out)])
    assert result.exit_code == 0, result.output
    digest = pipeline_digest(compose(directory))
    assert digest in result.output
    assert json.loads(out.read_text())["name"] == "digits"


def test_compose_json_output(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = runner.invoke(
        app, ["pipeline", "compose", str(scenario(tmp_path)), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["digest"].startswith("sha256:") and report["name"] == "digits"


def test_compose_refuses_with_one_line_and_exit_1(tmp_path: Path) -> None:
    directory = scenario(tmp_path, train={"optimizer": {"name": "os.system"}})
    out = tmp_path / "p.json"
    result = runner.invoke(app, ["pipeline", "compose", str(directory), "--out", str(out)])
    assert result.exit_code == 1
    assert "train.yaml: optimizer.name:" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_schema_prints_json_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pipeline", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"datasets", "model", "loss", "train"} <= set(schema["properties"])
    part = json.loads(runner.invoke(app, ["pipeline", "schema", "--part", "train"]).stdout)
    assert "optimizer" in part["properties"]
    assert runner.invoke(app, ["pipeline", "schema", "--part", "nope"]).exit_code == 2


def test_show_validates_and_reports_the_digest(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    runner.invoke(app, ["pipeline", "compose", str(scenario(tmp_path)), "--out", str(out)])
    result = runner.invoke(app, ["pipeline", "show", str(out)])
    assert result.exit_code == 0
    assert "simple_cnn" in result.output and "sha256:" in result.output
    shown = json.loads(runner.invoke(app, ["pipeline", "show", str(out), "--json"]).stdout)
    assert shown["digest"] == pipeline_digest(compose(tmp_path / "configs"))
    document = json.loads(out.read_text())
    document["loss"]["expression"] = "__import__('os')"
    out.write_text(json.dumps(document))
    result = runner.invoke(app, ["pipeline", "show", str(out)])
    assert result.exit_code == 1 and "p.json: loss.expression: calls not allowed" in result.output


def test_registries_lists_names() -> None:
    result = runner.invoke(app, ["pipeline", "registries", "--json"])
    assert result.exit_code == 0
    names = json.loads(result.stdout)
    assert "adamw" in names["optimizers"] and "dice_ce" in names["losses"]
    assert "monai_unet" in names["architectures"] and "conv2d" in names["layers"]


def test_help_has_examples() -> None:
    for command in ("compose", "schema", "show", "registries"):
        result = runner.invoke(app, ["pipeline", command, "--help"])
        assert result.exit_code == 0 and "Example: sealroom pipeline" in result.output
