"""Under privacy every released number is private (noised, charged) or public by construction.

Finding: "Per-epoch train loss, the step log's train-batch loss and accuracy every 50
steps, and val/test metrics leave a private run unnoised and uncounted. Adding one record
moved an epoch's reported loss from about 1.0 to 46.1 at ε 1."

The attack: two runs whose data differ in one extreme record. Everything a private run
releases apart from its DP outputs (model, noisy metrics) must be byte-identical; the
same comparison on the plain trainer must see the record (so the test can fail).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from sealroom.data import MemoryTree
from sealroom.data.loaders.idx import idx_bytes
from sealroom.errors import ConfigError
from sealroom.pipeline.schema import Component, Pipeline
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.loop import TrainEvent
from sealroom.train.run import RunOutcome, prepare_splits, run_pipeline
from tests.privacy.helpers import private_pipeline
from tests.train.tiny import blob_images, classification_pipeline

STATISTIC = re.compile(r"(loss|accuracy|dice|score|f1|precision|recall)\s*:", re.IGNORECASE)


def _tree(outlier: bool) -> MemoryTree:
    images, labels = blob_images(150)
    if outlier:  # one record becomes extreme: every pixel bright, the rarest label
        images[0] = 255
        labels[0] = (int(labels[0]) + 1) % 3
    return MemoryTree(
        {"train-images-idx3-ubyte": idx_bytes(images), "train-labels-idx1-ubyte": idx_bytes(labels)}
    )


def _run(pipeline: Pipeline, outlier: bool) -> tuple[RunOutcome, list[TrainEvent]]:
    events: list[TrainEvent] = []
    private = pipeline.privacy is not None
    outcome = run_pipeline(
        pipeline,
        {"blobs": _tree(outlier)},
        MemoryTree({}),
        on_event=events.append,
        trainer_factory=(lambda *a: DPTrainer(*a, noise=SeededRandom(7))) if private else None,
    )
    return outcome, events


def _public_text(outcome: RunOutcome) -> dict[str, Any]:
    """What a private run releases besides its DP outputs (model weights, noisy metrics)."""
    report = json.loads(outcome.outputs["metrics.json"])
    for key in ("metrics", "fit_seconds", "onnx_max_abs_diff"):  # DP outputs and timing
        report.pop(key)
    for entry in report["history"]:
        entry.pop("seconds")
    lines = [
        line
        for line in outcome.log
        if not line.startswith(("Test ", "ONNX export checked"))  # noisy metrics; the model
    ]
    return {
        "metrics.json": report,
        "log": lines,
        "privacy_report.json": json.loads(outcome.outputs.get("privacy_report.json", b"{}")),
        "files": sorted(outcome.outputs),
    }


def test_one_extreme_record_changes_nothing_a_private_run_releases_beyond_the_noise() -> None:
    pipeline = private_pipeline({"accountant": "rdp"}, log_every=2)
    (base, base_events), (moved, moved_events) = (_run(pipeline, o) for o in (False, True))
    assert _public_text(base) == _public_text(moved)
    assert [e.values for e in base_events] == [e.values for e in moved_events]
    assert all(not e.values for e in base_events)  # the operator's stream: counters only
    # The released metrics are DP outputs: same noise draws, and the whole difference is
    # the (bounded) effect of one record, far inside the noise added to them.
    a = json.loads(base.outputs["metrics.json"])["metrics"]
    b = json.loads(moved.outputs["metrics.json"])["metrics"]
    assert abs(a["accuracy"] - b["accuracy"]) < 0.2


def test_the_same_attack_sees_the_record_in_a_plain_run() -> None:
    pipeline = classification_pipeline(log_every=2)
    (base, _), (moved, _) = (_run(pipeline, o) for o in (False, True))
    base_lines = [x for x in base.log if "Train loss" in x]
    moved_lines = [x for x in moved.log if "Train loss" in x]
    assert base_lines and base_lines != moved_lines


def test_a_private_run_logs_plots_and_emits_counters_and_epsilon_only() -> None:
    outcome, events = _run(private_pipeline({"accountant": "rdp"}, log_every=1), False)
    for line in outcome.log:
        if STATISTIC.search(line):
            assert line.startswith(("Test ", "DP evaluation:")), line
    assert not any("Train loss" in line or "Val loss" in line for line in outcome.log)
    assert any(line.startswith("Epoch: 3 | Step: 18") for line in outcome.log)
    assert "training_curves.png" not in outcome.outputs  # nothing but a loss to draw
    history = json.loads(outcome.outputs["metrics.json"])["history"]
    assert [sorted(entry) for entry in history] == [["epoch", "seconds", "steps"]] * 3
    assert {e.kind for e in events} >= {"epoch", "batch"}
    assert all(not e.values for e in events)


def test_onnx_check_uses_synthetic_inputs_under_privacy() -> None:
    pipeline = private_pipeline({"accountant": "rdp"})
    seen: list[np.ndarray] = []
    from sealroom.train import run as run_module

    original = run_module.export_onnx

    def spy(model: Any, shape: Any, check_batch: Any = None) -> Any:
        seen.append(check_batch.numpy())
        return original(model, shape, check_batch=check_batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "export_onnx", spy)
        _run(pipeline, False)
    splits = prepare_splits(pipeline, {"blobs": _tree(False)})
    records = np.concatenate([part.x for part in splits.parts().values()])
    (batch,) = seen
    assert batch.shape == (8, 1, 8, 8)
    assert not any(np.array_equal(row, record) for row in batch for record in records)


def _with_transforms(pipeline: Pipeline, transforms: list[dict[str, Any]]) -> Pipeline:
    doc = pipeline.model_dump(mode="json")
    doc["datasets"][0]["transforms"] = transforms
    return Pipeline.model_validate(doc)


@pytest.mark.parametrize(
    "transform",
    [{"name": "normalize"}, {"name": "scale_intensity", "params": {"per_sample": False}}],
)
def test_transforms_fitted_across_records_are_refused_under_privacy(
    transform: dict[str, Any],
) -> None:
    pipeline = _with_transforms(private_pipeline({"accountant": "rdp"}), [transform])
    with pytest.raises(ConfigError, match=r"transforms\[0\]: transform .* across records"):
        _run(pipeline, False)
    from sealroom.pipeline.checks import check_pipeline

    with pytest.raises(ConfigError, match="computes statistics across records"):
        check_pipeline(pipeline, lambda section: ("pipeline.yaml", section))


def test_record_local_transforms_stay_allowed() -> None:
    from sealroom.data.transforms import check_record_local, is_fitted

    local = [
        Component(name="normalize", params={"mean": 0.5, "std": 0.25}),
        Component(name="scale_intensity"),
        Component(name="standardize"),  # per record
        Component(name="random_flip", params={"seed": 3}),
    ]
    check_record_local(local)
    assert not any(is_fitted(c) for c in local)
    assert is_fitted(Component(name="normalize", params={"mean": 0.5}))
    # the plain trainer keeps fitted transforms
    plain = _with_transforms(classification_pipeline(), [{"name": "normalize"}])
    prepare_splits(plain, {"blobs": _tree(False)})
