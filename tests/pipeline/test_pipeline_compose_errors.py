"""compose() reports every problem of every part at once, each one line with near names."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.errors import ConfigError, ConfigProblems
from sealroom.pipeline.compose import compose
from tests.pipeline.conftest import PARTS


def problems(directory: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigProblems) as info:
        compose(directory)
    for line in info.value.problems:
        assert "\n" not in line
    return info.value.problems


def test_every_problem_of_every_part_is_reported_sorted_by_file(make_scenario) -> None:
    train = {**PARTS["train"], "epoch": 3, "batch_size": 0}
    model = {"model": PARTS["model"]["model"], "input_shap": [1, 28, 28]}
    lines = problems(make_scenario(train=train, model=model))
    assert lines == tuple(sorted(lines))
    assert "model.yaml: input_shap: unknown key (did you mean 'input_shape'?)" in lines
    assert "model.yaml: input_shape: missing" in lines
    assert "train.yaml: epoch: unknown key (did you mean 'epochs'?)" in lines
    assert any(line.startswith("train.yaml: batch_size: Input should be greater") for line in lines)
    assert len(lines) == 4


def test_a_schema_error_does_not_hide_an_unknown_name_in_another_part(make_scenario) -> None:
    train = {**PARTS["train"], "optimizer": {"name": "adamm"}}
    loss = {**PARTS["loss"], "components": {"ce": {"name": "cross_entropyy"}}}
    eval_part = {"task": "classification", "metrics": ["acuracy"], "plotz": True}
    lines = problems(make_scenario(train=train, loss=loss, eval=eval_part))
    files = [line.split(":")[0] for line in lines]
    assert files == ["eval.yaml", "eval.yaml", "loss.yaml", "train.yaml"]
    # an unknown key does not hide the unknown metric in the same file
    assert lines[0].startswith("eval.yaml: metrics[0]: unknown metric 'acuracy'")
    assert lines[1] == "eval.yaml: plotz: unknown key (did you mean 'plots'?)"
    assert "unknown loss 'cross_entropyy' (did you mean 'cross_entropy'" in lines[2]
    assert lines[3].startswith(
        "train.yaml: optimizer.name: unknown optimizer 'adamm' (did you mean 'adam'"
    )


def test_unknown_metric_is_reported_with_the_other_registry_problems(make_scenario) -> None:
    train = {**PARTS["train"], "optimizer": {"name": "adamm"}}
    lines = problems(make_scenario(train=train, eval={"metrics": ["acuracy"]}))
    assert lines[0].startswith("eval.yaml: metrics[0]: unknown metric 'acuracy'")
    assert "did you mean 'accuracy'" in lines[0]
    assert lines[1].startswith("train.yaml: optimizer.name: unknown optimizer 'adamm'")


def test_format_typo_names_the_formats_and_the_near_one(make_scenario) -> None:
    dataset = {"id": "digits", "source": {"format": "idxx", "images": "a", "labels": "b"}}
    (line,) = problems(make_scenario(dataset=dataset))
    assert line == (
        "dataset.yaml: source.format: 'idxx' is not a data format; expected one of "
        "hdf5, idx, image_folder, paired_masks, table (did you mean 'idx'?)"
    )
    assert "discriminator" not in line


def test_missing_format_and_model_format_typo(make_scenario) -> None:
    dataset = {"id": "digits", "source": {"images": "a", "labels": "b"}}
    model = {"model": {"format": "onx"}, "input_shape": [1, 28, 28]}
    lines = problems(make_scenario(dataset=dataset, model=model))
    assert lines[0] == (
        "dataset.yaml: source.format: missing; expected one of "
        "hdf5, idx, image_folder, paired_masks, table"
    )
    assert lines[1].startswith("model.yaml: model.format: 'onx' is not a model format;")
    assert "(did you mean 'onnx'?)" in lines[1]


def test_unknown_key_inside_a_union_member_suggests_its_fields(make_scenario) -> None:
    dataset = {"id": "digits", "source": {"format": "idx", "imagse": "a", "labels": "b"}}
    lines = problems(make_scenario(dataset=dataset))
    assert "dataset.yaml: source.imagse: unknown key (did you mean 'images'?)" in lines
    assert "dataset.yaml: source.images: missing" in lines


def test_misspelt_part_file_is_named_and_other_files_ignored(make_scenario) -> None:
    directory = make_scenario()
    (directory / "train.yaml").rename(directory / "trian.yaml")
    (directory / "contract.yaml").write_text("not: a part\n")
    lines = problems(directory)
    assert "trian.yaml: not a config part (did you mean 'train.yaml'?)" in lines
    assert any(line.endswith("missing part(s): train.yaml") for line in lines)
    assert not any("contract.yaml" in line for line in lines)


def test_union_member_errors_at_one_path_become_one_line(make_scenario) -> None:
    train = {**PARTS["train"], "optimizer": {"name": "adam", "params": {"lr": {"x": 1}}}}
    lines = problems(make_scenario(train=train))
    assert len(lines) == 1 and lines[0].startswith("train.yaml: optimizer.params.lr: Input should")


def test_one_problem_is_still_a_config_error_with_one_line(make_scenario) -> None:
    with pytest.raises(ConfigError, match=r"^train\.yaml: epoch: unknown key"):
        compose(make_scenario(train={**PARTS["train"], "epoch": 3}))


def test_a_composed_document_reports_all_its_problems(tmp_path: Path) -> None:
    import json

    from sealroom.pipeline.compose import load_pipeline

    document = {
        "name": "p",
        "datasets": [{"id": "d", "source": {"format": "idxx"}}],
        "model": {"model": {"format": "onnx"}, "input_shape": [1]},
        "loss": PARTS["loss"],
        "train": {**PARTS["train"], "epoch": 1},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigProblems) as info:
        load_pipeline(path)
    assert info.value.problems == (
        "p.json: datasets[0].source.format: 'idxx' is not a data format; expected one of "
        "hdf5, idx, image_folder, paired_masks, table (did you mean 'idx'?)",
        "p.json: train.epoch: unknown key (did you mean 'epochs'?)",
    )


def test_every_bad_name_within_one_part_is_reported(make_scenario) -> None:
    model = {
        "model": {
            "format": "declarative",
            "layers": [{"type": "flaten"}, {"type": "linear", "params": {"in_feature": 4}}],
        },
        "input_shape": [4],
    }
    train = {**PARTS["train"], "optimizer": {"name": "adamm"}, "scheduler": {"name": "steplrr"}}
    lines = problems(make_scenario(model=model, train=train, eval={"metrics": ["acc", "f11"]}))
    assert [line.split(": ")[1] for line in lines] == [
        "metrics[0]",
        "metrics[1]",
        "model.layers[0].type",
        "model.layers[1].params.in_feature",
        "optimizer.name",
        "scheduler.name",
    ]
    assert "(did you mean 'flatten'?)" in lines[2]
    assert "(did you mean 'in_features'" in lines[3]
