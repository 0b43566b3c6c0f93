"""DPTrainer: per-sample clipping vs brute force, the report, the hard stop, layer fixes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from sealroom.data import MemoryTree
from sealroom.errors import PrivacyError
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.loop import Trainer
from sealroom.train.models import build_model
from sealroom.train.run import prepare_splits, run_pipeline
from tests.privacy.helpers import private_pipeline
from tests.train.tiny import idx_tree

REPORT_KEYS = {
    "epsilon_spent", "epsilon_target", "delta", "noise_multiplier", "sample_rate", "steps",
    "max_grad_norm", "accountant", "epsilon_trajectory", "n_train", "batch_size", "epochs",
    "statement", "rng",
}  # fmt: skip


class ZeroNoise:
    """No noise and every record sampled: isolates the clipping arithmetic."""

    description = "zero (test)"

    def normal(self, count: int, std: float) -> Tensor:
        return torch.zeros(count)

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        return torch.ones(count, dtype=torch.bool)


def _trainer(mode: str, clip: float, noise: object = None) -> DPTrainer:
    pipeline = private_pipeline(
        {"grad_sample_mode": mode, "max_grad_norm": clip, "accountant": "rdp"},
        optimizer={"name": "sgd", "params": {"lr": 1.0}},
    )
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    torch.manual_seed(0)
    model = build_model(pipeline.model, MemoryTree({}))
    model = nn.Sequential(*[m for m in model if not isinstance(m, nn.Dropout)])  # type: ignore[attr-defined]
    return DPTrainer(pipeline, model, splits, noise=noise or ZeroNoise())  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["hooks", "fused", "functorch", "ghost", "ew"])
def test_per_sample_clipping_matches_brute_force(mode: str) -> None:
    clip = 0.05
    trainer = _trainer(mode, clip)
    model = trainer.plain_model()
    x, y = trainer.tensors["train"]
    x, y = x[:6], y[:6]
    before = [p.detach().clone() for p in model.parameters()]
    # brute force: one backward per example, clip its whole gradient to `clip`, sum
    summed = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(len(x)):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1].long())
        grads = torch.autograd.grad(loss, list(model.parameters()))
        norm = torch.sqrt(torch.stack([(g**2).sum() for g in grads]).sum())
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for s, g in zip(summed, grads, strict=True):
            s += g * factor
    trainer.setup()  # wrap only now: the brute force above must not feed Opacus' hooks
    trainer.train_step(x, y)
    expected_batch = trainer.optimizer.expected_batch_size  # type: ignore[union-attr]
    for p, old, s in zip(model.parameters(), before, summed, strict=True):
        # SGD with lr 1: the update is minus the (clipped, summed, averaged) gradient
        assert torch.allclose(old - p.detach(), s / expected_batch, atol=1e-6)


def test_dp_run_releases_a_privacy_report() -> None:
    pipeline = private_pipeline({"accountant": "rdp"})
    outcome = run_pipeline(
        pipeline,
        {"blobs": idx_tree()},
        MemoryTree({}),
        trainer_factory=lambda *a: DPTrainer(*a, noise=SeededRandom(0)),
    )
    report = json.loads(outcome.outputs["privacy_report.json"])
    assert set(report) >= REPORT_KEYS
    assert report["epsilon_spent"] <= report["epsilon_target"] == 3.0
    assert report["steps"] == report["planned_steps"] == 18  # 90 samples, batch 16, 3 epochs
    steps = [s for s, _ in report["epsilon_trajectory"]]
    eps = [e for _, e in report["epsilon_trajectory"]]
    assert steps == [0, 6, 12, 18] and eps == sorted(eps)
    assert "NOT secure" in report["rng"]
    assert any(line.startswith("DP-SGD: n=90, batch size=16") for line in outcome.log)


def test_secure_noise_is_the_default() -> None:
    trainer = _trainer("hooks", 1.0)
    trainer = DPTrainer(
        trainer.pipeline, nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), trainer.splits
    )
    assert trainer.noise.description.startswith("ChaCha20")
    assert "os.urandom" in trainer.noise.description


def test_training_hard_stops_before_passing_the_reserved_epsilon() -> None:
    pipeline = private_pipeline(
        {"epsilon": 2.0, "noise_multiplier": 0.9, "accountant": "rdp"}, epochs=6
    )
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    trainer = DPTrainer(
        pipeline, build_model(pipeline.model, MemoryTree({})), splits, noise=SeededRandom(1)
    )
    trainer.fit()
    assert trainer.plan.max_steps < trainer.plan.steps
    assert trainer.accounted_steps() == trainer.plan.max_steps
    assert trainer.spent_epsilon() <= 2.0
    assert trainer.epsilon_at(trainer.accounted_steps() + 1, releases=1) > 2.0
    report = json.loads(trainer.extra_outputs()["privacy_report.json"])
    assert report["stopped_early"] and report["epsilon_spent"] <= 2.0
    assert any("stopped at step" in line for line in trainer.lines)


def test_batchnorm_is_replaced_and_each_layer_named() -> None:
    pipeline = private_pipeline({"accountant": "rdp"})
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(), nn.Linear(144, 3)
    )
    trainer = DPTrainer(pipeline, model, splits, noise=SeededRandom(0))
    assert isinstance(trainer.plain_model()[1], nn.GroupNorm)  # type: ignore[index]
    assert any("replaced layer 1 (BatchNorm2d) with GroupNorm" in line for line in trainer.lines)
    trainer.fit()


def test_delta_not_below_one_over_n_is_refused_before_training() -> None:
    pipeline = private_pipeline({"delta": 0.02})  # N = 90 -> 1/N = 0.011
    with pytest.raises(PrivacyError, match="not below 1/N"):
        run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}), trainer_factory=DPTrainer)


def test_no_shadow_model_under_privacy() -> None:
    """A private pipeline never trains a non-private model: plain Trainer refused, one model out."""
    pipeline = private_pipeline({"accountant": "rdp"})
    with pytest.raises(PrivacyError, match="no differentially private trainer"):
        run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}))
    made: list[Trainer] = []
    fits: list[str] = []
    original = Trainer.fit

    def counting_fit(self: Trainer) -> object:
        fits.append(type(self).__name__)
        return original(self)

    def factory(*args: object) -> DPTrainer:
        trainer = DPTrainer(*args, noise=SeededRandom(0))  # type: ignore[arg-type]
        made.append(trainer)
        return trainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "fit", counting_fit)
        outcome = run_pipeline(
            pipeline, {"blobs": idx_tree()}, MemoryTree({}), trainer_factory=factory
        )
    assert fits == ["DPTrainer"] and len(made) == 1
    models = [name for name, kind in outcome.kinds.items() if kind == "model"]
    assert sorted(models) == ["trained_model.onnx", "trained_model.safetensors"]
    from safetensors.torch import load as load_safetensors

    weights = load_safetensors(outcome.outputs["trained_model.safetensors"])
    dp_state = made[0].plain_model().state_dict()
    assert all(torch.equal(weights[k], dp_state[k].cpu()) for k in weights)
    with pytest.raises(PrivacyError, match="private pipelines only"):
        DPTrainer(
            pipeline.model_copy(update={"privacy": None}),
            nn.Linear(1, 1),
            made[0].splits,
        )


@pytest.mark.parametrize("mode", ["hooks", "fused"])
def test_empty_poisson_batch_takes_a_noise_only_step(mode: str) -> None:
    trainer = _trainer(mode, 1.0, noise=SeededRandom(0))
    trainer.setup()
    before = [p.detach().clone() for p in trainer.plain_model().parameters()]
    x, y = trainer.tensors["train"]
    trainer.train_step(x[:0], y[:0])
    assert trainer.accounted_steps() == 1
    after = list(trainer.plain_model().parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before, strict=True))  # all noised
    assert np.isfinite(trainer.spent_epsilon())


def test_fused_run_noises_every_parameter_and_releases_a_plain_model() -> None:
    trainer = _trainer("fused", 1.0, noise=SeededRandom(0))
    model = trainer.plain_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit()
    assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    assert all(p.requires_grad for p in model.parameters())  # unfrozen after training
    assert not any(m._forward_hooks for m in model.modules())  # no clipping hooks left


def test_factory_reports_what_a_failed_run_spent() -> None:
    from sealroom.privacy.trainer import DPTrainerFactory

    factory = DPTrainerFactory(noise=SeededRandom(0))
    assert factory.spent_epsilon() == 0.0
    pipeline = private_pipeline({"accountant": "rdp"})

    def failing_epoch(self: DPTrainer, record: object) -> None:
        raise RuntimeError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DPTrainer, "after_epoch", failing_epoch)
        with pytest.raises(RuntimeError):
            run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}), trainer_factory=factory)
    assert factory.trainer is not None and factory.trainer.accounted_steps() == 6
    assert 0.0 < factory.spent_epsilon() < 3.0
