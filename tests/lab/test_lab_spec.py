"""Entry point parsing and ``${...}`` references: the text a researcher writes."""

from __future__ import annotations

import pytest

from sealroom.errors import LabError
from sealroom.lab.refs import Ref, parse_ref, refs_in, substitute
from sealroom.lab.spec import parse_entry_point

GOOD = """\
name: fit
parameters:
  epochs: {type: int, default: 2}
steps:
  - name: data
    task: load_data
  - name: fit
    task: train
    args: {data: "${steps.data.data}", epochs: "${parameters.epochs}"}
artifacts:
  model: ${steps.fit.model}
"""


def test_an_entry_point_parses_into_its_graph() -> None:
    ep = parse_entry_point(GOOD, "fit.yaml")
    assert [s.name for s in ep.steps] == ["data", "fit"]
    assert ep.parameters["epochs"].default == 2
    assert ep.artifacts == {"model": "${steps.fit.model}"}


def test_a_yaml_bomb_is_refused_before_any_object_is_built() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(9)
    )
    with pytest.raises(LabError, match=r"bomb.yaml: line 1: YAML anchors and aliases"):
        parse_entry_point(bomb, "bomb.yaml")


def test_a_field_error_names_the_file_and_the_field() -> None:
    bad = GOOD.replace("task: train", "task: Train.Module")
    with pytest.raises(LabError, match=r"^fit.yaml: steps.1.task: String should match"):
        parse_entry_point(bad, "fit.yaml")


def test_a_step_defined_twice_is_refused() -> None:
    bad = GOOD.replace("name: fit\n    task", "name: data\n    task")
    with pytest.raises(LabError, match="step 'data' is defined twice"):
        parse_entry_point(bad, "fit.yaml")


def test_references_keep_their_type_whole_and_become_text_inside_strings() -> None:
    values = {"parameters.n": 3, "steps.a.out": [1, 2]}

    def lookup(ref: Ref) -> object:
        return values[".".join((ref.scope, *ref.parts))]

    assert substitute("${parameters.n}", lookup, "w") == 3
    assert substitute("n=${parameters.n}", lookup, "w") == "n=3"
    assert substitute({"x": ["${steps.a.out}"]}, lookup, "w") == {"x": [[1, 2]]}
    with pytest.raises(LabError, match=r"w: \$\{steps.a.out\} is not a scalar"):
        substitute("v=${steps.a.out}", lookup, "w")


def test_job_references_round_trip_and_malformed_ones_are_refused() -> None:
    ref = parse_ref("jobs.job-3.artifacts.model", "p")
    assert ref == Ref("jobs", ("job-3", "model"))
    assert ref.text == "${jobs.job-3.artifacts.model}"
    assert refs_in({"a": ["${jobs.job-3.artifacts.model}"]}, "p") == [ref]
    for bad in ("jobs.job-3.model", "steps.a", "os.system.x"):
        with pytest.raises(LabError, match="is not a reference"):
            parse_ref(bad, "p")


def test_model_names_hold_parameters_only_and_name_declared_artifacts() -> None:
    from sealroom.lab.runner import check_entry_point

    named = GOOD + "models:\n  model: fit-${parameters.epochs}\n"
    check_entry_point(parse_entry_point(named, "fit.yaml"))
    with pytest.raises(LabError, match=r"models.model: a model name may only hold \$\{parameters"):
        check_entry_point(
            parse_entry_point(named.replace("parameters.epochs}\n", "steps.fit.model}\n"), "f")
        )
    with pytest.raises(LabError, match="models names 'weights', which is not a declared artifact"):
        parse_entry_point(GOOD + "models:\n  weights: w\n", "fit.yaml")
