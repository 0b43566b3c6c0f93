"""Training reports (issue 16): per-epoch train/val curves per metric, early stopping, the best
checkpoint, class names and per-class results in metrics.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from sealroom.data import MemoryTree
from sealroom.errors import ConfigError
from sealroom.pipeline.schema import Pipeline
from sealroom.train.run import RunOutcome, run_pipeline
from tests.train.tiny import classification_pipeline, idx_tree

NAMES = ["top", "middle", "bottom"]


def _run(pipeline: Pipeline) -> tuple[RunOutcome, dict[str, Any]]:
    outcome = run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}))
    return outcome, json.loads(outcome.outputs["metrics.json"])


def _with_eval(pipeline: Pipeline, **evals: Any) -> Pipeline:
    doc = pipeline.model_dump(mode="json")
    doc["eval"].update(evals)
    return Pipeline.model_validate(doc)


def test_every_epoch_has_train_and_val_values_of_every_scalar_metric() -> None:
    outcome, report = _run(classification_pipeline())
    scalar = {"loss", "accuracy", "f1", "precision", "recall"}
    assert [e["epoch"] for e in report["history"]] == [1, 2, 3]
    for entry in report["history"]:
        assert set(entry["train"]) == scalar and set(entry["val"]) == scalar
        assert all(0.0 <= entry["val"][m] <= 1.0 for m in scalar - {"loss"})
    assert report["history"][-1]["val"]["accuracy"] > report["history"][0]["val"]["accuracy"] - 0.2
    assert report["best_epoch"] is None and report["stopped_early"] is False
    assert report["checkpoint"] == "last" and report["weights_epoch"] == 3
    assert "Epoch: 2 | Train loss: " in outcome.outputs["training_log.txt"].decode()
    assert " | Val accuracy: " in outcome.outputs["training_log.txt"].decode()


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    # An improvement must beat min_delta 100: only the first epoch counts as one.
    stopping = {"metric": "loss", "patience": 2, "min_delta": 100.0}
    outcome, report = _run(classification_pipeline(epochs=8, early_stopping=stopping))
    assert len(report["history"]) == 3 and report["stopped_early"] is True
    assert report["best_epoch"] == 1 and report["weights_epoch"] == 3  # checkpoint: last
    log = outcome.outputs["training_log.txt"].decode()
    assert (
        "Early stopping: no val loss improvement over 100 in 2 epochs; stopped after epoch 3" in log
    )
    assert "Best epoch: 1 | Val loss: " in log


@pytest.mark.parametrize(
    "metric, mode, values, best, stop_at",
    [
        ("accuracy", None, [0.5, 0.7, 0.6, 0.65], 2, 4),  # accuracy: higher is better
        ("loss", None, [0.9, 0.7, 0.8, 0.75], 2, 4),  # loss: lower is better
        ("accuracy", "min", [0.5, 0.7, 0.6, 0.4], 1, 3),  # mode overrides the direction
        ("loss", None, [0.9, 0.89, 0.5, 0.48], 3, None),  # 0.01, 0.02: not over 0.05
    ],
)
def test_early_stopping_direction_patience_and_min_delta(
    metric: str, mode: str | None, values: list[float], best: int, stop_at: int | None
) -> None:
    from torch import nn

    from sealroom.pipeline.schema import EarlyStopping
    from sealroom.train.epochs import EpochMonitor

    stopping = EarlyStopping(metric=metric, patience=2, mode=mode, min_delta=0.05)
    monitor = EpochMonitor(stopping, metric, keep_weights=True)
    model = nn.Linear(2, 1)
    stopped = None
    for epoch, value in enumerate(values, start=1):
        nn.init.constant_(model.weight, float(epoch))
        if monitor.observe(epoch, {metric: value}, model):
            stopped = epoch
            break
    assert (monitor.best_epoch, stopped) == (best, stop_at)
    assert monitor.restore(model) and float(model.weight.detach()[0, 0]) == float(best)


def test_checkpoint_best_tests_and_exports_the_best_epochs_weights() -> None:
    stopping = {"metric": "loss", "patience": 5, "min_delta": 100.0}  # epoch 1 stays best
    best, report = _run(
        classification_pipeline(epochs=3, checkpoint="best", early_stopping=stopping)
    )
    one, _ = _run(classification_pipeline(epochs=1))
    assert report["best_epoch"] == 1 and report["weights_epoch"] == 1
    assert len(report["history"]) == 3 and report["stopped_early"] is False
    assert best.outputs["trained_model.safetensors"] == one.outputs["trained_model.safetensors"]
    assert best.metrics == one.metrics
    assert "Checkpoint best: testing and exporting the weights of epoch 1" in best.log


def test_class_names_key_the_per_class_results_and_the_confusion_matrix() -> None:
    _, report = _run(_with_eval(classification_pipeline(), class_names=NAMES))
    assert report["class_names"] == NAMES
    assert sorted(report["per_class"]) == sorted(NAMES)  # JSON keys sorted; class_names: order
    assert report["confusion_matrix"]["labels"] == NAMES
    matrix = report["confusion_matrix"]["matrix"]
    assert matrix == report["metrics"]["confusion_matrix"]
    for i, name in enumerate(NAMES):
        row = report["per_class"][name]
        assert row["support"] == sum(matrix[i])
        assert row["recall"] == pytest.approx(matrix[i][i] / sum(matrix[i]))
        assert row["precision"] == pytest.approx(matrix[i][i] / sum(r[i] for r in matrix))
    macro = sum(r["f1"] for r in report["per_class"].values()) / 3
    assert report["metrics"]["f1"] == pytest.approx(macro)


def test_without_class_names_classes_are_their_ids() -> None:
    _, report = _run(classification_pipeline(epochs=1))
    assert sorted(report["per_class"]) == ["0", "1", "2"]


def test_class_names_of_the_wrong_length_are_refused_in_one_line_before_training() -> None:
    pipeline = _with_eval(classification_pipeline(), class_names=["a", "b"])
    with pytest.raises(ConfigError) as caught:
        run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}))
    message = str(caught.value)
    assert message == (
        "eval.class_names: 2 names for a model with 3 classes (outputs); give one name per "
        "class, in class-id order"
    )


@pytest.mark.parametrize(
    "train, evals, expected",
    [
        ({"early_stopping": {"metric": "dice"}}, {}, "'dice' is not a validation metric"),
        ({"early_stopping": {"metric": "confusion_matrix"}}, {}, "not a validation metric"),
        ({"checkpoint": "best"}, {"per_epoch": False}, "needs a validation every epoch"),
        ({}, {"class_names": ["a", "a", "b"]}, "a named twice"),
        ({}, {"task": "regression", "class_names": ["a", "b"]}, "only a classification task"),
    ],
)
def test_report_settings_that_disagree_are_refused(
    train: dict[str, Any], evals: dict[str, Any], expected: str
) -> None:
    doc = classification_pipeline().model_dump(mode="json")
    doc["train"].update(train)
    doc["eval"].update(evals)
    if evals.get("task") == "regression":
        doc["eval"]["metrics"] = ["mse"]
    with pytest.raises(ValidationError, match=expected):
        Pipeline.model_validate(doc)


def test_per_epoch_false_skips_validation() -> None:
    _, report = _run(_with_eval(classification_pipeline(epochs=2), per_epoch=False))
    assert all("val" not in entry for entry in report["history"])
    assert all("train" in entry for entry in report["history"])


def test_per_class_fields_follow_the_metrics_asked_for() -> None:
    pipeline = _with_eval(classification_pipeline(epochs=1), metrics=["accuracy", "recall"])
    outcome, report = _run(pipeline)
    assert {tuple(r) for r in report["per_class"].values()} == {("recall",)}
    assert "confusion_matrix" not in report  # not asked: drawn, not reported
    assert "confusion_matrix.png" in outcome.outputs and "per_class.png" in outcome.outputs
    _, plain = _run(_with_eval(classification_pipeline(epochs=1), metrics=["loss", "accuracy"]))
    assert "per_class" not in plain and plain["class_names"] == ["0", "1", "2"]
