"""Issue 16's training reports under privacy: no train curve, per-epoch validation, early
stopping and per-class counts only as charged DP releases, anything else refused first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sealroom.data import MemoryTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.policy import check_pipeline
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.release import filter_outputs
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.run import run_pipeline
from tests.privacy.helpers import make_contract, private_pipeline
from tests.train.tiny import idx_tree

STOPPING = {"metric": "accuracy", "patience": 1, "mode": "max"}


def _dp(pipeline: Pipeline) -> Any:
    return run_pipeline(
        pipeline,
        {"blobs": idx_tree()},
        MemoryTree({}),
        trainer_factory=lambda *a: DPTrainer(*a, noise=SeededRandom(5)),
    )


def _contract() -> Any:
    contract = make_contract(datasets={"blobs": (3.0, 1e-3, 8.0, 1e-2)})
    refs = [
        r.model_copy(update={"declaration_digest": "sha256:" + "1" * 64}) for r in contract.datasets
    ]
    return contract.model_copy(update={"datasets": refs})


@pytest.mark.parametrize(
    "train, evals",
    [
        ({"early_stopping": STOPPING}, {}),
        ({"checkpoint": "best"}, {}),
        ({}, {"per_epoch": True}),
    ],
)
def test_policy_refuses_per_epoch_validation_the_privacy_plan_has_no_releases_for(
    train: dict[str, Any], evals: dict[str, Any]
) -> None:
    doc = private_pipeline({"eval_releases": 1}, **train).model_dump(mode="json")
    doc["eval"].update(evals)
    doc["eval"]["metrics"] = ["loss", "accuracy"]
    decision = check_pipeline(_contract(), Pipeline.model_validate(doc))
    [line] = [v for v in decision.violations if "eval_releases" in v]
    assert "noisy release charged to epsilon" in line and "it needs 4" in line
    assert "\n" not in line


def test_policy_allows_per_epoch_validation_planned_as_charged_releases() -> None:
    pipeline = private_pipeline({"eval_releases": 4}, early_stopping=STOPPING)
    decision = check_pipeline(_contract(), pipeline)
    assert not [v for v in decision.violations if "eval_releases" in v]


def test_the_private_trainer_refuses_unplanned_per_epoch_validation_before_training() -> None:
    pipeline = private_pipeline({"eval_releases": 2}, early_stopping=STOPPING)
    with pytest.raises(PrivacyError, match=r"privacy.eval_releases: 2 planned.*needs 4"):
        _dp(pipeline)


def test_private_per_epoch_validation_is_noisy_charged_and_has_no_train_curve() -> None:
    pipeline = private_pipeline({"eval_releases": 4, "accountant": "rdp"}, checkpoint="best")
    outcome = _dp(pipeline)
    report = json.loads(outcome.outputs["metrics.json"])
    privacy = json.loads(outcome.outputs["privacy_report.json"])
    releases = privacy["evaluation"]["releases"]
    assert [r["split"] for r in releases] == ["val", "val", "val", "test"]
    assert all(r["epsilon_share"] > 0 for r in releases)  # every release is charged
    assert all("train" not in entry for entry in report["history"])  # no train curve
    assert all(
        set(entry["val"]) == {"loss", "accuracy", "f1", "precision", "recall"}
        for entry in report["history"]
    )
    assert report["checkpoint"] == "best" and report["weights_epoch"] == report["best_epoch"]
    assert privacy["epsilon_spent"] <= privacy["epsilon_target"] + 1e-9
    # The released val values are the noisy ones: not what an exact evaluation gives.
    plain = run_pipeline(
        pipeline.model_copy(update={"privacy": None}), {"blobs": idx_tree()}, MemoryTree({})
    )
    assert (
        json.loads(plain.outputs["metrics.json"])["history"][0]["val"]
        != report["history"][0]["val"]
    )
    assert not any("Train loss" in line for line in outcome.log)


def test_private_per_class_counts_come_from_the_noisy_matrix_and_leave_only_with_it() -> None:
    pipeline = private_pipeline({"accountant": "rdp"})  # metrics include confusion_matrix
    outcome = _dp(pipeline)
    report = json.loads(outcome.outputs["metrics.json"])
    matrix = report["confusion_matrix"]["matrix"]
    assert matrix == report["metrics"]["confusion_matrix"]  # the one noisy release
    supports = [c["support"] for c in report["per_class"].values()]
    assert supports == [max(round(sum(row)), 0) for row in matrix]
    assert "training_curves.png" not in outcome.outputs
    withheld = filter_outputs(
        outcome.outputs,
        make_contract(
            metrics=["loss", "accuracy", "f1", "precision", "recall", "confusion_matrix"]
        ).constraints,
        private=True,
    )
    kept = json.loads(withheld["metrics.json"])
    assert "per_class" not in kept and "confusion_matrix" not in kept
    assert "per_class.png" not in withheld and "confusion_matrix.png" not in withheld
    named = make_contract(
        metrics=["loss", "accuracy", "f1", "precision", "recall", "confusion_matrix"],
        released=["model", "metrics", "plots", "confusion_matrix"],
    )
    released = json.loads(
        filter_outputs(outcome.outputs, named.constraints, private=True)["metrics.json"]
    )
    assert released["per_class"] == report["per_class"]


@pytest.mark.slow
def test_the_room_refuses_a_private_early_stopping_pipeline_before_any_key_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: the lab asks the DP-MNIST room for early stopping on val accuracy with one
    evaluation release; the policy check refuses it and no key is released."""
    from sealroom.contract.store import load_contract
    from sealroom.errors import SealroomError
    from sealroom.ledger import Ledger
    from sealroom.pipeline.compose import compose
    from sealroom.room.story import Story, load_scenario
    from sealroom.workspace import Workspace
    from tests.e2e.stories import QuietNarrator

    def hostile(folder: Path) -> Pipeline:
        doc = compose(folder).model_dump(mode="json")
        doc["train"]["early_stopping"] = STOPPING
        return Pipeline.model_validate(doc)

    import importlib

    monkeypatch.setattr(importlib.import_module("sealroom.pipeline.compose"), "compose", hostile)
    base = tmp_path / "story"
    with pytest.raises(SealroomError, match="eval_releases"):
        Story(load_scenario("dp-mnist"), base, QuietNarrator(), epochs=1).play()
    ws = Workspace.find(base / "workspace")
    assert load_contract(ws, "dp-mnist-demo").contract is not None
    with Ledger.open(ws) as ledger:
        assert not ledger.entries("key.released")


def _report_outputs() -> dict[str, bytes]:
    report = {
        "metrics": {"loss": 0.3, "accuracy": 0.9, "precision": 0.8},
        "history": [
            {
                "epoch": 1,
                "steps": 5,
                "train": {"loss": 0.5, "accuracy": 0.8, "precision": 0.7},
                "val": {"loss": 0.4, "accuracy": 0.85, "precision": 0.75},
            }
        ],
        "per_class": {"cat": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 7}},
        "confusion_matrix": {"labels": ["cat"], "matrix": [[7]]},
        "class_names": ["cat"],
        "best_epoch": 1,
    }
    return {
        "metrics.json": json.dumps(report).encode(),
        "per_class.png": b"png",
        "training_curves.png": b"png",
    }


def test_the_release_filter_keeps_only_released_metrics_in_curves_and_per_class() -> None:
    contract = make_contract(metrics=["accuracy", "recall"], released=["metrics", "plots"])
    kept = filter_outputs(_report_outputs(), contract.constraints, private=False)
    report = json.loads(kept["metrics.json"])
    assert report["history"] == [
        {"epoch": 1, "steps": 5, "train": {"accuracy": 0.8}, "val": {"accuracy": 0.85}}
    ]
    assert report["per_class"] == {"cat": {"recall": 0.8}}  # no support without the matrix
    assert "confusion_matrix" not in report and report["class_names"] == ["cat"]
    assert "per_class.png" in kept  # no private run: drawn from eval.metrics, which rego checks
    private = filter_outputs(_report_outputs(), contract.constraints, private=True)
    assert "per_class" not in json.loads(private["metrics.json"])
    assert "per_class.png" not in private
