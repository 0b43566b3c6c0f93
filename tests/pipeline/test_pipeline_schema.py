"""Schema rules that compose relies on: strict parts, safe paths, bounded seeds, finite floats."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sealroom.pipeline.schema import (
    Component,
    IdxSource,
    LossConfig,
    PipelinePart,
    SplitConfig,
    TrainConfig,
)


def test_parts_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainConfig.model_validate({"optimizer": {"name": "sgd"}, "epochz": 3})


@pytest.mark.parametrize("path", ["a.gz", "dir/a.gz", "a..b.gz"])
def test_relative_paths_inside_the_package_are_accepted(path: str) -> None:
    assert IdxSource(images=path, labels=path).images == path


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../b", "a\\b", "a\x00b", ""])
def test_paths_leaving_the_package_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        IdxSource(images=path, labels="l.gz")


def test_seeds_fit_in_32_bits_for_exact_canonical_json() -> None:
    with pytest.raises(ValidationError):
        SplitConfig(seed=2**40)
    with pytest.raises(ValidationError):
        TrainConfig.model_validate({"optimizer": {"name": "sgd"}, "seed": -1})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValidationError):
        Component(name="sgd", params={"lr": value})
    with pytest.raises(ValidationError):
        LossConfig(
            components={"ce": Component(name="cross_entropy")},
            variables={"a": value},
            expression="ce",
        )


def test_split_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        SplitConfig(train=0.5, val=0.1, test=0.1)


@pytest.mark.parametrize("key", ["dice-ce", "_hidden", "__class__", "1ce"])
def test_expression_names_are_plain_identifiers(key: str) -> None:
    with pytest.raises(ValidationError):
        LossConfig(components={key: Component(name="cross_entropy")}, expression="x")


def test_component_and_variable_names_are_distinct() -> None:
    with pytest.raises(ValidationError, match="both as component and variable"):
        LossConfig(
            components={"ce": Component(name="cross_entropy")},
            variables={"ce": 1.0},
            expression="ce",
        )


def test_pipeline_part_holds_name_and_split() -> None:
    part = PipelinePart.model_validate(
        {"name": "mri", "split": {"train": 0.6, "val": 0.2, "test": 0.2}}
    )
    assert part.split.val == 0.2
