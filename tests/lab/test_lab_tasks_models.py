"""train/export/load_model/evaluate: every registered model trains, exports to ONNX the
room's checker accepts, loads back, and scores the same in torch and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sealroom.errors import LabError
from sealroom.lab.attempts import AttemptPayload
from sealroom.lab.runner import execute
from sealroom.lab.tasks.data import load_digits_data
from sealroom.lab.tasks.evaluate import evaluate
from sealroom.lab.tasks.export import export, load_model
from sealroom.lab.tasks.models import MODELS
from sealroom.lab.tasks.registry import TaskContext
from sealroom.lab.tasks.train import train
from sealroom.lab.tasks.values import LabData, npz_blob
from sealroom.train.onnx_check import check_onnx


@pytest.fixture(scope="module")
def digits() -> LabData:
    return load_digits_data(240, 80, seed=1)


def ctx(tmp_path: Path, seed: int = 0) -> TaskContext:
    return TaskContext("job-1", 1, seed, tmp_path)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_each_model_trains_exports_and_scores_alike_in_torch_and_onnx(
    arch: str, digits: LabData, tmp_path: Path
) -> None:
    c = ctx(tmp_path)
    model = train(c, digits, arch=arch, epochs=2, lr=0.01, batch_size=32)["model"]
    assert model.arch == arch and model.input_shape == (1, 8, 8) and model.num_classes == 10
    blob = export(c, model)["onnx"]
    assert blob.kind == "onnx" and blob.filename == f"{arch}.onnx"
    check_onnx(blob.data, "export")  # the room's checker accepts what the lab exports
    back = load_model(c, blob)["model"]
    assert back.arch == "onnx" and back.input_shape == (1, 8, 8) and back.num_classes == 10
    torch_report = json.loads(evaluate(c, model, data=digits)["report"].data)
    onnx_report = json.loads(evaluate(c, blob, data=digits)["report"].data)
    loaded_report = json.loads(evaluate(c, back, data=digits)["report"].data)
    assert torch_report == onnx_report == loaded_report
    if not MODELS[arch].private:  # DP noise on 240 images leaves accuracy near chance
        assert torch_report["accuracy"] > 0.2, torch_report  # 2 epochs beat chance (0.1)
    names = {m.name for m in c.metrics}
    assert {"train_loss", "test_accuracy", "accuracy"} <= names
    assert ("epsilon" in names) == (arch == "dp-cnn")


def test_dp_cnn_calibrates_noise_to_a_target_epsilon(digits: LabData, tmp_path: Path) -> None:
    c = ctx(tmp_path)
    train(c, digits, arch="dp-cnn", epochs=1, epsilon=2.0, batch_size=48)
    spent = [m.value for m in c.metrics if m.name == "epsilon"]
    assert spent and 1.0 < spent[-1] <= 2.0 + 1e-6
    assert any("noise multiplier" in line for line in c.lines)
    with pytest.raises(LabError, match=r"epsilon or noise_multiplier, not both"):
        train(c, digits, arch="dp-cnn", epsilon=1.0, noise_multiplier=1.0)
    with pytest.raises(LabError, match=r"arch mlp: epsilon/noise_multiplier apply to dp-cnn"):
        train(c, digits, arch="mlp", epsilon=1.0)
    with pytest.raises(LabError, match=r"arch 'vgg' is not a model \(known: mlp, lenet"):
        train(c, digits, arch="vgg")


def test_evaluate_scores_every_epsilon_of_an_adversarial_set(
    digits: LabData, tmp_path: Path
) -> None:
    c = ctx(tmp_path)
    model = train(c, digits, arch="mlp", epochs=3, lr=0.01)["model"]
    noise = np.random.default_rng(0).uniform(-1, 1, digits.x_test.shape).astype(np.float32)
    sets = {
        "epsilons": np.array([0.0, 1.0]),
        "y": digits.y_test,
        "x_0": digits.x_test,
        "x_1": np.clip(digits.x_test + noise, 0, 1).astype(np.float32),
    }
    adv = npz_blob("adv", "adv.npz", sets)
    c.metrics.clear()
    report = json.loads(evaluate(c, model, adversarial=adv)["report"].data)
    curve = report["robust"]
    assert [p["epsilon"] for p in curve] == [0.0, 1.0]
    clean = json.loads(evaluate(c, model, data=digits)["report"].data)["accuracy"]
    assert curve[0]["accuracy"] == clean and curve[1]["accuracy"] < clean
    steps = [(m.step, m.value) for m in c.metrics if m.name == "robust_accuracy"]
    assert steps == [(0, curve[0]["accuracy"]), (1, curve[1]["accuracy"])]
    del sets["x_1"]
    with pytest.raises(LabError, match=r"adversarial: x_1 missing"):
        evaluate(c, model, adversarial=npz_blob("adv", "adv.npz", sets))


ENTRY = """
name: fit
parameters:
  arch: {type: str, default: mlp}
steps:
  - {name: data, task: load_data, args: {dataset: digits, train_size: 200, test_size: 60}}
  - {name: fit, task: train, args: {data: "${steps.data.data}", arch: "${parameters.arch}"}}
  - {name: onnx, task: export, args: {model: "${steps.fit.model}"}}
artifacts:
  model: "${steps.onnx.onnx}"
"""


def test_a_rerun_with_the_same_seed_reproduces_the_numbers_and_the_model() -> None:
    def once(seed: int) -> tuple[list[tuple[str, float]], bytes]:
        outcome = execute(AttemptPayload("job-1", 1, "e", ENTRY, {"arch": "lenet"}, seed=seed))
        assert outcome.status == "succeeded", outcome.error
        return [(m.name, m.value) for m in outcome.metrics], outcome.artifacts["model"].data

    first = once(11)
    assert once(11) == first
    assert once(12)[0] != first[0]


def test_evaluate_reads_the_attack_tasks_adversarial_sets(digits: LabData, tmp_path: Path) -> None:
    c = ctx(tmp_path)
    model = train(c, digits, arch="mlp", epochs=3, lr=0.01)["model"]
    noisy = np.clip(digits.x_test + 0.5, 0, 1).astype(np.float32)
    x_adv = np.stack([np.stack([digits.x_test, noisy])] * 2)  # (methods, eps, N, C, H, W)
    sets = {
        "format": np.array("sealroom.adversarial/1"),
        "x": digits.x_test,
        "y": digits.y_test,
        "methods": np.array(["fgm", "pgd"]),
        "eps": np.array([0.0, 0.5]),
        "x_adv": x_adv,
    }
    c.metrics.clear()
    report = json.loads(evaluate(c, model, adversarial=npz_blob("a", "a.npz", sets))["report"].data)
    assert [(p["method"], p["epsilon"]) for p in report["robust"]] == [
        ("fgm", 0.0), ("fgm", 0.5), ("pgd", 0.0), ("pgd", 0.5)
    ]  # fmt: skip
    names = {(m.name, m.step) for m in c.metrics}
    assert ("robust_accuracy_pgd", 1) in names
    sets["x_adv"] = x_adv[:, :1]
    with pytest.raises(LabError, match=r"adversarial: x_adv has shape \(2, 1, 80, 1, 8, 8\)"):
        evaluate(c, model, adversarial=npz_blob("a", "a.npz", sets))


def test_train_takes_a_pinned_seed_over_the_jobs(digits: LabData, tmp_path: Path) -> None:
    def loss(job_seed: int, seed: int | None) -> float:
        c = ctx(tmp_path, job_seed)
        train(c, digits, arch="mlp", epochs=1, seed=seed)
        return next(m.value for m in c.metrics if m.name == "train_loss")

    assert loss(1, 5) == loss(2, 5)
    assert loss(1, None) != loss(2, None)
