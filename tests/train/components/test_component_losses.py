"""build_loss: components, aux values and expressions give a scalar, differentiable loss."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sealroom.errors import ConfigError, TrainingError
from sealroom.pipeline.schema import LossConfig
from sealroom.train.components.losses import LOSSES, build_loss, loss_namespace


def config(components: dict[str, Any], expression: str, **variables: float) -> LossConfig:
    return LossConfig.model_validate(
        {"components": components, "variables": variables, "expression": expression}
    )


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(16, 5, requires_grad=True), torch.randint(0, 5, (16,))


def test_single_component_equals_torch(logits) -> None:
    output, target = logits
    loss = build_loss(config({"ce": {"name": "cross_entropy"}}, "ce"))
    value = loss(output, target)
    assert value.dim() == 0
    assert torch.allclose(value, torch.nn.functional.cross_entropy(output, target))


def test_focal_expression_matches_focal_component(logits) -> None:
    output, target = logits
    by_expression = build_loss(
        config(
            {"ce": {"name": "cross_entropy"}}, "alpha * (1 - pt)**gamma * ce", alpha=0.25, gamma=2
        )
    )(output, target)
    by_component = build_loss(
        config({"f": {"name": "focal", "params": {"alpha": 0.25, "gamma": 2.0}}}, "f")
    )(output, target)
    assert torch.allclose(by_expression, by_component)
    by_expression.backward()
    assert output.grad is not None and torch.isfinite(output.grad).all()


def test_aux_values_have_qualified_names_and_bare_names_when_unique() -> None:
    cfg = config({"ce": {"name": "cross_entropy"}, "m": {"name": "mse"}}, "ce")
    names = loss_namespace(cfg)
    assert {"ce", "m", "ce_pt", "pt"} <= set(names)
    cfg = config({"a": {"name": "cross_entropy"}, "b": {"name": "nll"}}, "a")
    names = loss_namespace(cfg)
    assert {"a_pt", "b_pt"} <= set(names) and "pt" not in names


def test_ambiguous_aux_name_is_refused() -> None:
    cfg = config({"a": {"name": "cross_entropy"}, "b": {"name": "bce_with_logits"}}, "(1 - pt) * a")
    with pytest.raises(ConfigError, match="unknown name 'pt'"):
        build_loss(cfg)


@pytest.mark.parametrize("name", ["bce_with_logits", "focal", "l1", "mse", "smooth_l1"])
def test_elementwise_components_on_binary_outputs(name: str) -> None:
    torch.manual_seed(1)
    output = torch.randn(8, 1, requires_grad=True)
    target = torch.randint(0, 2, (8,)).float()  # [N] labels for an [N,1] output
    value = build_loss(config({"x": {"name": name}}, "x"))(output, target)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()


@pytest.mark.parametrize(
    ("name", "params"),
    [("dice", {"sigmoid": True}), ("dice_ce", {"sigmoid": True}), ("bce_with_logits", {})],
)
def test_segmentation_components_on_binary_masks(name: str, params: dict[str, Any]) -> None:
    torch.manual_seed(2)
    output = torch.randn(2, 1, 16, 16, requires_grad=True)
    mask = (torch.rand(2, 1, 16, 16) > 0.5).float()
    value = build_loss(config({"x": {"name": name, "params": params}}, "x"))(output, mask)
    assert value.dim() == 0 and 0 < value.item() < 10
    value.backward()


def test_dice_plus_cross_entropy_on_multiclass_label_maps() -> None:
    torch.manual_seed(3)
    output = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, 8, 8)).float()
    cfg = config(
        {
            "dice": {"name": "dice", "params": {"softmax": True, "to_onehot_y": True}},
            "ce": {"name": "cross_entropy"},
        },
        "0.5 * dice + ce",
    )
    value = build_loss(cfg)(output, labels)  # scalar dice + per-pixel ce: averaged
    assert value.dim() == 0 and torch.isfinite(value)


def test_terms_of_different_shapes_are_averaged_not_broadcast() -> None:
    torch.manual_seed(4)
    output = torch.randn(2, 2, 3, 3)
    labels = torch.randint(0, 2, (2, 1, 3, 3)).float()
    # ce is [N,H,W]; l1 broadcasts to [N,2,H,W]: with N == 2 they would broadcast silently.
    cfg = config({"ce": {"name": "cross_entropy"}, "l1": {"name": "l1"}}, "ce + l1")
    expected = (
        torch.nn.functional.cross_entropy(output, labels.squeeze(1).long())
        + (output - labels).abs().mean()
    )
    assert torch.allclose(build_loss(cfg)(output, labels), expected)


def test_shape_errors_name_the_component() -> None:
    loss = build_loss(config({"m": {"name": "mse"}}, "m"))
    with pytest.raises(TrainingError, match=r"loss component 'm' on output \(4, 3\)"):
        loss(torch.randn(4, 3), torch.randn(5, 2))


def test_unused_components_are_not_built() -> None:
    cfg = config({"ce": {"name": "cross_entropy"}, "unused": {"name": "mse"}}, "ce")
    assert list(build_loss(cfg).components) == ["ce"]


def test_class_weights_follow_the_module_to_a_device(logits) -> None:
    output, target = logits
    loss = build_loss(
        config({"ce": {"name": "cross_entropy", "params": {"weight": [1, 2, 1, 1, 1]}}}, "ce")
    ).to("cpu")
    assert any(name.endswith("weight") for name, _ in loss.named_buffers())
    assert torch.isfinite(loss(output, target))


def test_bad_parameter_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"components\.f\.params: gamma must be within"):
        build_loss(config({"f": {"name": "focal", "params": {"gamma": 100.0}}}, "f"))


def test_every_registered_loss_declares_its_aux_names() -> None:
    for name in LOSSES:
        assert isinstance(LOSSES.get(name).aux_names, tuple)
