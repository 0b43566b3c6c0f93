"""Hostile configs: each is refused with one clear line, and nothing in it is executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.errors import ConfigError
from sealroom.pipeline.compose import compose


def refusal(directory: Path) -> str:
    with pytest.raises(ConfigError) as info:
        compose(directory)
    message = str(info.value)
    assert "\n" not in message and message.split(":")[0].endswith((".yaml", ".json"))
    return message


def loss(expression: str) -> dict:
    return {
        "components": {"ce": {"name": "cross_entropy"}},
        "variables": {"alpha": 0.25, "gamma": 2},
        "expression": expression,
    }


HOSTILE_EXPRESSIONS = {
    "torch.os.system('id')": "calls not allowed",
    "torch.os.system": "attribute access not allowed",
    "__import__('os')": "calls not allowed",
    "__import__": "not allowed",
    "().__class__.__bases__": "attribute access not allowed",
    "ce.__class__": "attribute access not allowed",
    "lambda: ce": "lambdas not allowed",
    "f'{ce}'": "f-strings not allowed",
    "'ce'": "strings not allowed",
    "ce[0]": "subscripts not allowed",
    "[x for x in ce]": "comprehensions not allowed",
    "9**9**9": "exponent must be",
    "ce**100": "exponent must be within",
    "ce**ce": "exponent must be a number or a variable",
    "(ce := 1)": "assignments not allowed",
    "ce if alpha else 0": "conditional expressions not allowed",
    "ce and alpha": "boolean operators not allowed",
    "ce < 1": "comparisons not allowed",
    "ce // 2": "operator FloorDiv not allowed",
    "ce % 2": "operator Mod not allowed",
    "ce @ ce": "operator MatMult not allowed",
    "~ce": "operator Invert not allowed",
    "not ce": "operator Not not allowed",
    "ce + True": "bool constants not allowed",
    "ce * 1j": "complex constants not allowed",
    "ce * 1e300": "constant out of range",
    "os + ce": "unknown name 'os'",
    "_ + ce": "name '_' not allowed",
    "ce; import os": "not valid arithmetic",
    "ce\nimport os": "not valid arithmetic",
    "(" * 2000 + "ce" + ")" * 2000: "at most 512 characters",
    "(" * 40 + "ce" + ")" * 40: "nests brackets deeper than",
    "+".join(["ce"] * 200): "at most 512 characters",
    "+".join(["ce"] * 70): "nested deeper than 64",
    "+".join(["(ce+ce+ce+ce)"] * 30): "more than 128 terms",
    "1 / 0 * ce": "divides by zero",
    "alpha * gamma": "uses no loss component",
}


@pytest.mark.parametrize("expression", list(HOSTILE_EXPRESSIONS))
def test_hostile_loss_expressions_are_refused(make_scenario, expression: str) -> None:
    directory = make_scenario(loss=loss(expression))
    message = refusal(directory)
    assert message.startswith("loss.yaml: ")
    assert HOSTILE_EXPRESSIONS[expression] in message


def test_very_long_expression_is_refused_before_parsing(make_scenario) -> None:
    message = refusal(make_scenario(loss=loss("ce + " * 5000 + "ce")))
    assert message.startswith("loss.yaml: expression: ")


def test_variable_exponent_is_bounded(make_scenario) -> None:
    bad = loss("ce ** gamma")
    bad["variables"]["gamma"] = 1000
    assert "used as an exponent, must be within ±16" in refusal(make_scenario(loss=bad))


def test_dunder_component_names_are_refused(make_scenario) -> None:
    bad = {"components": {"__class__": {"name": "cross_entropy"}}, "expression": "__class__"}
    assert refusal(make_scenario(loss=bad)).startswith("loss.yaml: components.__class__")


def test_yaml_python_tags_are_refused_and_not_run(make_scenario, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for tag in ("!!python/object/apply:os.system", "!!python/object/apply:subprocess.call"):
        text = f"optimizer:\n  name: {tag} [['touch {marker}']]\n"
        message = refusal(make_scenario(train=text))
        assert message.startswith("train.yaml: YAML error at line 2: could not determine")
    text = "optimizer: !!python/object:os.system {}\n"
    assert "could not determine a constructor" in refusal(make_scenario(train=text))
    assert not marker.exists()


def test_yaml_aliases_are_refused(make_scenario) -> None:
    bomb = (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "optimizer: {name: sgd}\n"
    )
    assert "aliases are not allowed" in refusal(make_scenario(train=bomb))


def test_duplicate_yaml_keys_are_refused(make_scenario) -> None:
    text = "optimizer: {name: sgd}\noptimizer: {name: adam}\n"
    assert "duplicate key 'optimizer'" in refusal(make_scenario(train=text))


@pytest.mark.parametrize(
    "name", ["torch.optim.SGD", "os.system", "__import__", "builtins.eval", "sgd()", "eval"]
)
def test_optimizer_names_reach_only_the_registry(make_scenario, name: str) -> None:
    message = refusal(make_scenario(train={"optimizer": {"name": name}}))
    assert message.startswith("train.yaml: optimizer.name: ")


@pytest.mark.parametrize("layer", ["__import__", "os.system", "Conv2d", "torch.nn.Linear"])
def test_layer_types_reach_only_the_registry(make_scenario, layer: str) -> None:
    model = {"model": {"format": "declarative", "layers": [{"type": layer}]}, "input_shape": [4]}
    assert refusal(make_scenario(model=model)).startswith("model.yaml: model.layers[0].type: ")


def test_parameters_cannot_reach_private_arguments(make_scenario) -> None:
    train = {"optimizer": {"name": "sgd", "params": {"params": [1.0]}}}
    assert "optimizer.params.params: unknown parameter" in refusal(make_scenario(train=train))
    train = {
        "optimizer": {"name": "sgd"},
        "scheduler": {"name": "steplr", "params": {"optimizer": 1}},
    }
    assert "scheduler.params.optimizer: unknown parameter" in refusal(make_scenario(train=train))


@pytest.mark.parametrize("path", ["/etc/passwd", "../../secret", "a/../../b", "a\\..\\b"])
def test_file_paths_stay_inside_the_package(make_scenario, path: str) -> None:
    model = {"model": {"format": "onnx", "file": path}, "input_shape": [1, 28, 28]}
    assert "relative path inside the package" in refusal(make_scenario(model=model))


@pytest.mark.parametrize("name", ["i\x1b]0;owned\x07.gz", "i\u202egz.exe", "i\n.gz"])
def test_file_names_cannot_carry_terminal_escapes_to_the_operator(make_scenario, name: str) -> None:
    """A file name reaches the operator's terminal in the room's refusals: no control or
    invisible characters (escape sequences, a right-to-left override, a newline)."""
    dataset = {"id": "digits", "source": {"format": "idx", "images": name, "labels": "l.gz"}}
    message = refusal(make_scenario(dataset=dataset))
    assert message.startswith("dataset.yaml: source.images: ")
    assert "control or invisible character U+" in message
    assert not any(c in message for c in "\x1b\x07\u202e\n")


def test_huge_part_files_are_refused(make_scenario) -> None:
    text = "optimizer: {name: sgd}\n" + "#" * (1 << 20)
    assert "bytes (at most" in refusal(make_scenario(train=text))


@pytest.mark.parametrize("threads", [65, 10**6])
def test_num_threads_is_capped(make_scenario, threads: int) -> None:
    train = {"optimizer": {"name": "adam"}, "num_threads": threads}
    message = refusal(make_scenario(train=train))
    assert "train.yaml" in message and "num_threads" in message and "64" in message


def test_num_threads_within_the_cap_is_accepted(make_scenario) -> None:
    compose(make_scenario(train={"optimizer": {"name": "adam"}, "num_threads": 64}))
