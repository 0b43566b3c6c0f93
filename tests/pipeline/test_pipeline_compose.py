"""compose(): parts in, one validated pipeline out, one-line errors naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sealroom.errors import ConfigError
from sealroom.pipeline.compose import (
    compose,
    dump_pipeline,
    load_part,
    load_pipeline,
    pipeline_digest,
)
from sealroom.pipeline.schema import LossConfig, Pipeline, TrainConfig


def refusal(directory: Path) -> str:
    with pytest.raises(ConfigError) as info:
        compose(directory)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_compose_merges_parts_into_one_pipeline(scenario: Path) -> None:
    pipeline = compose(scenario)
    assert isinstance(pipeline, Pipeline)
    assert pipeline.name == "mnist-digits"
    assert pipeline.split.seed == 7
    assert [d.id for d in pipeline.datasets] == ["digits"]
    assert pipeline.train.optimizer.name == "adam"
    assert pipeline.privacy is None


def test_digest_is_sha256_of_canonical_json(scenario: Path) -> None:
    digest = pipeline_digest(compose(scenario))
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64


def test_digest_is_stable_across_key_order_formatting_and_format(
    make_scenario, scenario: Path
) -> None:
    reference = pipeline_digest(compose(scenario))
    as_json = make_scenario(suffix=".json")
    assert pipeline_digest(compose(as_json)) == reference
    # Reordered keys, flow style, comments, explicit defaults: same document, same digest.
    reordered = make_scenario(
        train=(
            "# a comment\nbatch_size: 64\nepochs: 2\nseed: 0\n"
            "scheduler: {params: {gamma: 0.5, step_size: 1}, name: steplr}\n"
            "optimizer:\n  params:\n    lr: 1.0e-3\n  name: adam\n"
        )
    )
    assert pipeline_digest(compose(reordered)) == reference


def test_digest_changes_when_a_value_changes(make_scenario, scenario: Path) -> None:
    other = make_scenario(
        train={"optimizer": {"name": "adam", "params": {"lr": 0.002}}, "epochs": 2}
    )
    assert pipeline_digest(compose(other)) != pipeline_digest(compose(scenario))


def test_written_document_loads_back_with_the_same_digest(scenario: Path, tmp_path: Path) -> None:
    pipeline = compose(scenario)
    out = tmp_path / "pipeline.json"
    out.write_text(dump_pipeline(pipeline))
    assert pipeline_digest(load_pipeline(out)) == pipeline_digest(pipeline)


def test_yaml_scientific_notation_is_a_number(make_scenario) -> None:
    directory = make_scenario(train="optimizer: {name: sgd, params: {lr: 1e-3}}\n")
    assert compose(directory).train.optimizer.params["lr"] == pytest.approx(1e-3)


def test_several_datasets_in_file_name_order(make_scenario) -> None:
    second = {"id": "clinic-b", "source": {"format": "idx", "images": "i.gz", "labels": "l.gz"}}
    directory = make_scenario(extra={"dataset_z": second})
    assert [d.id for d in compose(directory).datasets] == ["digits", "clinic-b"]


def test_duplicate_dataset_ids_are_refused(make_scenario) -> None:
    directory = make_scenario(
        extra={"dataset_b": {"id": "digits", "source": {"format": "hdf5", "file": "d.h5"}}}
    )
    assert "dataset ids must be unique" in refusal(directory)


def test_name_defaults_to_folder_name(make_scenario) -> None:
    assert compose(make_scenario(drop=("pipeline",))).name.startswith("scenario")


def test_unknown_key_names_file_and_field(make_scenario) -> None:
    bad = {"optimizer": {"name": "adam", "parmas": {"lr": 0.1}}}
    assert refusal(make_scenario(train=bad)) == (
        "train.yaml: optimizer.parmas: unknown key (did you mean 'params'?)"
    )


def test_wrong_type_names_file_and_field(make_scenario) -> None:
    bad = {"optimizer": {"name": "adam"}, "epochs": "many"}
    message = refusal(make_scenario(train=bad))
    assert message.startswith("train.yaml: epochs: ")
    assert "integer" in message


def test_nested_union_paths_read_like_the_input(make_scenario) -> None:
    model = {"model": {"format": "declarative", "layers": [{"typ": "relu"}]}, "input_shape": [4]}
    message = refusal(make_scenario(model=model))
    assert message.startswith("model.yaml: model.layers[0]."), message


def test_unknown_optimizer_lists_known_names(make_scenario) -> None:
    message = refusal(make_scenario(train={"optimizer": {"name": "adamm"}}))
    assert message.startswith("train.yaml: optimizer.name: unknown optimizer 'adamm'")
    assert "adam, adamax" in message and "sgd" in message


def test_unknown_optimizer_parameter_is_refused(make_scenario) -> None:
    message = refusal(make_scenario(train={"optimizer": {"name": "sgd", "params": {"foo": 1}}}))
    assert message.startswith("train.yaml: optimizer.params.foo: unknown parameter")


def test_missing_required_scheduler_parameter(make_scenario) -> None:
    train = {"optimizer": {"name": "sgd"}, "scheduler": {"name": "onecyclelr"}}
    assert "missing required parameter 'max_lr'" in refusal(make_scenario(train=train))


def test_unknown_loss_component(make_scenario) -> None:
    loss = {"components": {"ce": {"name": "crossentropy"}}, "expression": "ce"}
    message = refusal(make_scenario(loss=loss))
    assert message.startswith("loss.yaml: components.ce.name: unknown loss 'crossentropy'")


def test_unknown_layer_and_architecture(make_scenario) -> None:
    layers = {"model": {"format": "declarative", "layers": [{"type": "relu6"}]}, "input_shape": [4]}
    assert refusal(make_scenario(model=layers)).startswith(
        "model.yaml: model.layers[0].type: unknown layer 'relu6'"
    )
    arch = {"model": {"format": "architecture", "name": "resnet"}, "input_shape": [1, 8, 8]}
    assert "unknown architecture 'resnet'" in refusal(make_scenario(model=arch))


def test_missing_and_duplicate_parts(make_scenario, tmp_path: Path) -> None:
    assert "missing part(s): train.yaml" in refusal(make_scenario(drop=("train",)))
    directory = make_scenario()
    (directory / "train.json").write_text("{}")
    assert "several files for part 'train'" in refusal(directory)


def test_other_files_are_ignored(scenario: Path) -> None:
    (scenario / "README.md").write_text("# notes")
    (scenario / "contract.template.toml").write_text("x = 1")
    assert compose(scenario).name == "mnist-digits"


def test_load_part_picks_schema_from_file_name(scenario: Path) -> None:
    assert isinstance(load_part(scenario / "train.yaml"), TrainConfig)
    assert isinstance(load_part(scenario / "loss.yaml"), LossConfig)
    with pytest.raises(ConfigError, match="not a config part"):
        load_part(scenario / "whatever.yaml")


def test_top_level_must_be_a_mapping(make_scenario) -> None:
    assert refusal(make_scenario(train="- a\n- b\n")) == (
        "train.yaml: expected a mapping of fields, got list"
    )


def test_json_errors_are_one_line(make_scenario) -> None:
    directory = make_scenario()
    (directory / "train.yaml").unlink()
    (directory / "train.json").write_text('{"optimizer": {"name": "adam",}}')
    assert refusal(directory).startswith("train.json: JSON error at line 1")


def test_json_nan_and_duplicate_keys_are_refused(make_scenario) -> None:
    directory = make_scenario(drop=("train",))
    (directory / "train.json").write_text('{"optimizer": {"name": "adam", "params": {"lr": NaN}}}')
    assert "NaN is not allowed" in refusal(directory)
    (directory / "train.json").write_text(
        '{"epochs": 1, "epochs": 2, "optimizer": {"name": "sgd"}}'
    )
    assert "duplicate key 'epochs'" in refusal(directory)


def test_composed_document_is_valid_json(scenario: Path) -> None:
    document = json.loads(dump_pipeline(compose(scenario)))
    assert document["loss"]["expression"] == "alpha * (1 - pt)**gamma * ce"
    assert yaml.safe_load(dump_pipeline(compose(scenario))) == document


def test_load_pipeline_names_the_full_path(tmp_path: Path, scenario: Path) -> None:
    document = json.loads(dump_pipeline(compose(scenario)))
    document["train"]["optimizer"]["name"] = "adamm"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=r"^p\.json: train\.optimizer\.name: unknown optimizer"):
        load_pipeline(path)


def test_unknown_transform_and_parameter_name_the_dataset_file(make_scenario) -> None:
    source = {"format": "idx", "images": "i.gz", "labels": "l.gz"}
    dataset = {"id": "digits", "source": source, "transforms": [{"name": "resizee"}]}
    message = refusal(make_scenario(dataset=dataset))
    assert message.startswith("dataset.yaml: transforms[0].name: unknown transform 'resizee'")
    dataset["transforms"] = [{"name": "to_float", "params": {"scal": 2}}]
    assert refusal(make_scenario(dataset=dataset)).startswith(
        "dataset.yaml: transforms[0].params.scal: unknown parameter"
    )


def test_privacy_refuses_batchnorm_layers(make_scenario) -> None:
    layers = [
        {"type": "conv2d", "params": {"in_channels": 1, "out_channels": 4}},
        {"type": "batchnorm2d", "params": {"num_features": 4}},
    ]
    model = {"model": {"format": "declarative", "layers": layers}, "input_shape": [1, 8, 8]}
    assert compose(make_scenario(model=model)).privacy is None  # fine without privacy
    private = make_scenario(model=model, privacy={"epsilon": 3.0, "delta": 1e-5})
    assert refusal(private).startswith(
        "model.yaml: model.layers[1].type: batchnorm2d mixes samples"
    )
