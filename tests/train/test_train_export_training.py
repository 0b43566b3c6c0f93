"""Export keeps training behaviour: BatchNorm and Dropout survive user module → ONNX → room."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import ModelPart
from sealroom.train.export import ExportError, export_onnx
from sealroom.train.export_training import TrainingFormError, check_training_behaviour
from sealroom.train.models import build_model

SHAPE = (1, 8, 8)


class UserNet(nn.Module):
    """What a consumer writes: Conv + BatchNorm2d + Dropout + Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(h.flatten(1)))


def user_net() -> UserNet:
    torch.manual_seed(0)
    return UserNet()


def in_the_room(data: bytes, shape: tuple[int, ...] = SHAPE) -> nn.Module:
    """The room's path: the pipeline's ONNX model part through build_model (onnx2torch)."""
    part = ModelPart.model_validate({"model": {"format": "onnx"}, "input_shape": list(shape)})
    return build_model(part, MemoryTree({"model.onnx": data}))


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(7)  # the same Dropout masks on both sides
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_batchnorm_and_dropout_survive_the_round_trip() -> None:
    converted = in_the_room(export_onnx(user_net(), SHAPE).data)
    kinds = {type(m) for m in converted.modules()}
    assert nn.BatchNorm2d in kinds
    assert any("Dropout" in k.__name__ for k in kinds)


def test_one_training_step_matches_the_users_module() -> None:
    user = user_net()
    converted = in_the_room(export_onnx(user, SHAPE).data)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(6, *SHAPE, generator=generator)
    y = torch.randint(0, 3, (6,), generator=generator)
    assert sgd_step(user, x, y) == pytest.approx(sgd_step(converted, x, y), abs=1e-5)
    ours = {k.rsplit(".", 1)[-1]: v for k, v in user.state_dict().items()}
    theirs = dict(converted.state_dict())
    # The same weights after the step, matched by shape and role (conv, bn, fc).
    conv = next(m for m in converted.modules() if isinstance(m, nn.Conv2d))
    bn = next(m for m in converted.modules() if isinstance(m, nn.BatchNorm2d))
    fc = next(m for m in converted.modules() if isinstance(m, nn.Linear))
    pairs = [
        (user.conv.weight, conv.weight), (user.conv.bias, conv.bias),
        (user.bn.weight, bn.weight), (user.bn.bias, bn.bias),
        (user.fc.weight, fc.weight), (user.fc.bias, fc.bias),
        (user.bn.running_mean, bn.running_mean), (user.bn.running_var, bn.running_var),
    ]  # fmt: skip
    for a, b in pairs:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert ours and theirs
    user.eval()
    converted.eval()
    torch.testing.assert_close(user(x), converted(x), atol=1e-5, rtol=0)


def test_onnxruntime_runs_the_export_with_inference_semantics() -> None:
    user = user_net()
    user.train()
    sgd_step(user, torch.randn(8, *SHAPE), torch.zeros(8, dtype=torch.long))  # stats move
    exported = export_onnx(user, SHAPE, check_batch=torch.randn(4, *SHAPE))
    assert exported.max_abs_diff < 1e-4
    session = ort.InferenceSession(exported.data, providers=["CPUExecutionProvider"])
    x = torch.randn(5, *SHAPE)
    (out,) = session.run(["output"], {"input": x.numpy()})
    np.testing.assert_allclose(out, user.eval()(x).detach().numpy(), atol=1e-4)


def test_export_leaves_running_statistics_and_rng_alone() -> None:
    user = user_net()
    before = copy.deepcopy(user.state_dict())
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    export_onnx(user, SHAPE)
    assert torch.equal(torch.rand(3), expected)
    for key, value in user.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_rooms_trained_model_exports_with_its_training_layers() -> None:
    converted = in_the_room(export_onnx(user_net(), SHAPE).data)
    sgd_step(converted, torch.randn(4, *SHAPE), torch.zeros(4, dtype=torch.long))
    again = in_the_room(export_onnx(converted, SHAPE, check_batch=torch.randn(3, *SHAPE)).data)
    assert sum(isinstance(m, _BatchNorm) for m in again.modules()) == 1
    assert any("Dropout" in type(m).__name__ for m in again.modules())


REFUSED = {
    "Dropout2d": (nn.Sequential(nn.Conv2d(1, 2, 1), nn.Dropout2d(0.2)), "layer 1 (Dropout2d)"),
    "momentum None": (
        nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, momentum=None)),
        "layer 1 (BatchNorm2d): momentum=None",
    ),
    "no running stats": (
        nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, track_running_stats=False)),
        "layer 1 (BatchNorm2d): track_running_stats=False",
    ),
    "affine False": (
        nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, affine=False)),
        "layer 1 (BatchNorm2d): affine=False",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_layers_that_would_lose_their_training_behaviour_are_refused(case: str) -> None:
    model, expected = REFUSED[case]
    with pytest.raises(ExportError) as refused:
        export_onnx(model, SHAPE)
    message = str(refused.value)
    assert expected in message and "\n" not in message


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc(x)))


def test_a_layer_called_twice_is_refused() -> None:
    with pytest.raises(ExportError, match="used by 2 nodes"):
        export_onnx(Twice(), (4,))


class TrainOnly(nn.Module):
    """Behaves differently when trained, in a way no exported node records."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * (2.0 if self.training else 1.0)


def test_a_hidden_training_branch_is_refused() -> None:
    with pytest.raises(ExportError, match=r"differs from torch .* `if self\.training:` branch"):
        export_onnx(TrainOnly(), (4,))


def eval_mode_export(model: nn.Module) -> bytes:
    """The old export (eval mode, constant folding): BatchNorm folded, Dropout gone."""
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (torch.zeros(1, *SHAPE),), buffer, dynamo=False,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17,
        )  # fmt: skip
    return buffer.getvalue()


def test_the_check_refuses_an_export_that_lost_the_training_layers() -> None:
    user = user_net()
    folded = in_the_room(eval_mode_export(user))
    assert not any(isinstance(m, _BatchNorm) for m in folded.modules())
    with pytest.raises(TrainingFormError, match="does not keep the model's training layers"):
        check_training_behaviour(user, folded, torch.randn(4, *SHAPE), [])


def test_the_check_compares_running_statistics() -> None:
    user = user_net()
    converted = in_the_room(export_onnx(user, SHAPE).data)
    bn = next(m for m in converted.modules() if isinstance(m, nn.BatchNorm2d))
    bn.momentum = 0.5  # trains its statistics differently from the user's 0.1
    with pytest.raises(TrainingFormError, match="layer bn: the running statistics"):
        check_training_behaviour(user, converted, torch.randn(4, *SHAPE), ["bn.running_mean"])


def test_a_zero_rate_dropout_is_left_out() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0), nn.ReLU(), nn.Dropout(0.5))
    converted = in_the_room(export_onnx(model, (4,)).data, (4,))
    assert sum("Dropout" in type(m).__name__ for m in converted.modules()) == 1


class Unused(nn.Module):
    """Defines a BatchNorm and a Dropout it never calls: nothing of its training is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_layers_defined_but_never_called_are_no_loss() -> None:
    assert export_onnx(Unused(), (4,)).max_abs_diff < 1e-5
