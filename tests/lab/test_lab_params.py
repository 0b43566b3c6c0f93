"""Binding job parameter values (JSON or CLI text) to an entry point's typed parameters."""

from __future__ import annotations

import pytest

from sealroom.errors import LabError
from sealroom.lab.params import bind_parameters
from sealroom.lab.spec import parse_entry_point

EP = parse_entry_point(
    """
name: train
parameters:
  epochs: {type: int, default: 2, minimum: 1, maximum: 50}
  lr: {type: float, default: 0.01}
  model: {type: str, choices: [mlp, lenet], default: mlp}
  dp: {type: bool, default: false}
  sizes: {type: ints, default: [8, 16]}
  eps: {type: floats, default: []}
  names: {type: strs, default: [a]}
  data: {type: artifact}
steps:
  - {name: run, task: noop}
""",
    "train.yaml",
)
DATA = "${jobs.job-3.artifacts.data}"


def bind(values: dict, deps=("job-3",)):
    return bind_parameters(EP, {"data": DATA, **values}, list(deps), "job request")


def test_defaults_are_filled_and_typed():
    assert bind({}) == {
        "epochs": 2,
        "lr": 0.01,
        "model": "mlp",
        "dp": False,
        "sizes": [8, 16],
        "eps": [],
        "names": ["a"],
        "data": DATA,
    }


def test_cli_strings_are_coerced_to_the_declared_types():
    out = bind(
        {
            "epochs": "3",
            "lr": "1e-3",
            "dp": "yes",
            "sizes": "1, 2,3",
            "eps": "0.1,0.3",
            "names": "x,y",
            "model": "lenet",
        }
    )
    assert (out["epochs"], out["lr"], out["dp"]) == (3, 0.001, True)
    assert (out["sizes"], out["eps"], out["names"]) == ([1, 2, 3], [0.1, 0.3], ["x", "y"])
    assert bind({"lr": 1, "epochs": 4.0, "dp": "off"})["lr"] == 1.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"colour": 1}, "job request: unknown parameter 'colour' for entry point 'train'"),
        ({"epochs": "three"}, "job request: parameter 'epochs': expected an integer, got 'three'"),
        ({"epochs": True}, "parameter 'epochs': expected an integer"),
        ({"epochs": 0}, "parameter 'epochs': 0 is below the minimum 1"),
        ({"epochs": 51}, "parameter 'epochs': 51 is above the maximum 50"),
        ({"lr": "nan"}, "parameter 'lr': expected a finite number"),
        ({"lr": float("inf")}, "parameter 'lr': expected a finite number"),
        ({"model": "vit"}, "parameter 'model': 'vit' is not one of mlp, lenet"),
        ({"dp": "maybe"}, "parameter 'dp': expected true or false"),
        ({"sizes": "1,x"}, "parameter 'sizes'[1]: expected an integer, got 'x'"),
        ({"sizes": 3}, "parameter 'sizes': expected a list or comma-separated text"),
        ({"model": 5}, "parameter 'model': expected text, got 5"),
        ({"model": "${parameters.lr}"}, "parameter 'model': only artifact parameters take"),
        ({"data": "job-3/data"}, "parameter 'data': expected ${jobs.ID.artifacts.NAME}"),
        (
            {"data": "${jobs.job-4.artifacts.data}"},
            "references job job-4, which is not in depends_on",
        ),
    ],
)
def test_bad_values_are_refused_in_one_line_naming_the_parameter(values, message):
    with pytest.raises(LabError) as err:
        bind(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_required_parameter_must_be_given():
    with pytest.raises(LabError, match=r"^job request: parameter 'data' is required \(artifact\)$"):
        bind_parameters(EP, {}, [], "job request")


def test_a_bad_default_in_the_entry_point_is_named_as_the_default():
    ep = parse_entry_point(
        "name: x\nparameters:\n  n: {type: int, default: zero}\nsteps:\n  - {name: s, task: t}\n",
        "x.yaml",
    )
    with pytest.raises(LabError, match=r"parameter 'n' \(default\): expected an integer"):
        bind_parameters(ep, {}, [], "job request")
