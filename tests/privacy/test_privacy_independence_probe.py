"""Issue 13, record independence at run time: the probe on the real model catches mixing the
static ONNX check cannot see, leaves the model as it was, and DPTrainer refuses a mixing
model in every grad-sample mode."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sealroom.data import MemoryTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.compat import make_private_compatible
from sealroom.privacy.independence import check_record_independence
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.trainer import DPTrainer, DPTrainerFactory
from sealroom.train.models import load_onnx
from sealroom.train.run import prepare_splits, run_pipeline
from tests.privacy.helpers import private_pipeline
from tests.privacy.mixing_models import Lambda, issue_graph
from tests.train.tiny import idx_tree

MODES = ["hooks", "fused", "functorch", "ghost", "ew"]


class Tracker(nn.Module):
    """Per-record output, but a training forward keeps a running mean of the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.register_buffer("seen", torch.zeros(4))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.seen.mul_(0.9).add_(0.1 * x.detach().mean(0))
        return self.linear(x)


RUNTIME = {
    "x - mean(x, 0)": (Lambda(lambda h: h - h.mean(0)), "changes the outputs of records"),
    "mean of detached records (no gradient)": (
        Lambda(lambda h: h - h.detach().mean(0)),
        "changes the outputs of records",
    ),
    "gradient only: h + (m - m.detach())": (
        Lambda(lambda h: h + (h.mean(0) - h.mean(0).detach())),
        "have a gradient",
    ),
    "position in the batch": (
        Lambda(lambda h: h + torch.arange(len(h), dtype=h.dtype)[:, None]),
        "position in the batch",
    ),
    "batch size as a value": (Lambda(lambda h: h * len(h)), "adding one record"),
    "batch statistics (BatchNorm)": (
        nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)),
        "changes the outputs of records",
    ),
    "running statistics in a buffer": (Tracker(), "updates buffer 'seen'"),
    "randomness beyond Dropout": (Lambda(lambda h: h + torch.randn_like(h)), "two forwards"),
    "x @ x.T": (Lambda(lambda h: (h @ h.t())[:, :4] if len(h) >= 4 else h), "changes the outputs"),
}


@pytest.mark.parametrize("case", sorted(RUNTIME))
def test_the_runtime_probe_refuses_mixing_torch_models(case: str) -> None:
    module, why = RUNTIME[case]
    with pytest.raises(PrivacyError, match="^model: .*" + why):
        check_record_independence(module, (4,), where="model")


def test_the_runtime_probe_catches_what_the_static_check_missed() -> None:
    """The issue's graph with its static findings cleared, as if the check had missed it."""
    model = load_onnx(issue_graph().SerializeToString(), "m")
    model.record_mixing = ()
    with pytest.raises(PrivacyError, match="changes the outputs of records"):
        check_record_independence(model, (4,), where="model")


def test_the_probe_leaves_rng_modes_and_buffers_as_they_were() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.GroupNorm(2, 4)).eval()
    state = torch.get_rng_state()
    weights = [p.detach().clone() for p in model.parameters()]
    check_record_independence(model, (4,), where="model")
    assert torch.equal(state, torch.get_rng_state())
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


def test_batchnorm_made_dp_compatible_passes() -> None:
    model, fixes = make_private_compatible(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    assert fixes
    check_record_independence(model, (1, 6, 6), where="model")


# ------------------------------------------------------------------ every DP mode


class BatchMean(nn.Module):
    """The tiny pipeline's classifier with the issue's batch mean."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 16), nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x.flatten(1))
        return self.fc2(torch.tanh(h - h.mean(0)))


@pytest.mark.parametrize("mode", MODES)
def test_dp_trainer_refuses_a_mixing_model_in_every_mode(mode: str) -> None:
    pipeline = private_pipeline({"grad_sample_mode": mode})
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    with pytest.raises(PrivacyError, match=r"^model: changing record"):
        DPTrainer(pipeline, BatchMean(), splits, noise=SeededRandom(0))


@pytest.mark.parametrize("mode", MODES)
def test_dp_trainer_accepts_a_dropout_model_in_every_mode(mode: str) -> None:
    pipeline = private_pipeline({"grad_sample_mode": mode})
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    DPTrainer(pipeline, model, splits, noise=SeededRandom(0))


def test_a_declarative_model_with_softmax_over_the_batch_is_refused() -> None:
    doc = private_pipeline().model_dump(mode="json")
    doc["model"]["model"]["layers"][3] = {"type": "softmax", "params": {"dim": 0}}
    pipeline = Pipeline.model_validate(doc)
    factory = DPTrainerFactory(noise=SeededRandom(0))
    with pytest.raises(PrivacyError, match=r"^model: changing record"):
        run_pipeline(pipeline, {"blobs": idx_tree()}, MemoryTree({}), trainer_factory=factory)
    assert factory.spent_epsilon() == 0.0
