"""Fused per-sample clipping against a brute-force per-example computation."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sealroom.errors import PrivacyError
from sealroom.privacy.fused import FusedClipper


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 4, stride=2, padding=1),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Conv2d(4, 6, 3, dilation=(1, 2), bias=False),
        nn.Flatten(),
        nn.Linear(6 * 3 * 1, 5),
        nn.Tanh(),
        nn.Linear(5, 3),
    )


class _Sequence(nn.Module):
    """A Linear applied to every step of a sequence, then a head: the 3-D Linear path."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.step = nn.Linear(4, hidden)
        self.head = nn.Linear(hidden * features, 3, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.step(x)).flatten(1))


def _brute_force(model: nn.Module, x: Tensor, y: Tensor, clip: float) -> list[Tensor]:
    """One backward per example, each whole gradient clipped to ``clip``, then summed."""
    params = list(model.parameters())
    summed = [torch.zeros_like(p) for p in params]
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((g**2).sum() for g in grads))  # type: ignore[arg-type]
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for s, g in zip(summed, grads, strict=True):
            s += g * factor
    return summed


def _fused(model: nn.Module, x: Tensor, y: Tensor, clip: float) -> list[Tensor]:
    clipper = FusedClipper(model)
    clipper.begin()
    nn.functional.cross_entropy(model(x), y).backward()
    params = list(model.parameters())
    clipper.clip_and_sum(params, clip)
    clipper.close()
    return [p.summed_grad for p in params]  # type: ignore[attr-defined]


@pytest.mark.parametrize("clip", [0.01, 1.0, 100.0])  # all, some and no samples clipped
def test_cnn_clipped_sum_matches_brute_force(clip: float) -> None:
    x, y = torch.randn(7, 1, 12, 12), torch.randint(0, 3, (7,))
    model = _cnn()
    expected = _brute_force(model, x, y, clip)
    for got, want in zip(_fused(model, x, y, clip), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_in_place_activation_after_the_first_layer_matches_brute_force() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    expected = _brute_force(model, x, y, 0.5)
    for got, want in zip(_fused(model, x, y, 0.5), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("steps", [2, 40])  # Gram-matrix norms, then materialised ones
def test_sequence_linear_matches_brute_force(steps: int) -> None:
    x, y = torch.randn(5, steps, 4), torch.randint(0, 3, (5,))
    model = _Sequence(steps, hidden=3)
    expected = _brute_force(model, x, y, 0.5)
    for got, want in zip(_fused(model, x, y, 0.5), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_hooks_are_gone_after_close_and_idle_without_grad() -> None:
    model = _cnn()
    clipper = FusedClipper(model)
    with torch.no_grad():
        model(torch.randn(2, 1, 12, 12))
    assert not clipper._inputs  # evaluation stores nothing
    clipper.close()
    assert all(p.requires_grad for p in model.parameters())  # weights unfrozen again
    model(torch.randn(2, 1, 12, 12)).sum().backward()
    assert not clipper._inputs and not clipper._captured


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), "layer 1 (LayerNorm)"),
        (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), "layer 0 (Conv2d)"),
        (nn.Sequential(nn.Conv2d(1, 4, 3, padding="same")), "layer 0 (Conv2d)"),
    ],
)
def test_unsupported_layers_are_refused_by_name(model: nn.Module, named: str) -> None:
    with pytest.raises(PrivacyError, match=r"layer \d") as caught:
        FusedClipper(model)
    assert named in str(caught.value)


def test_tied_weights_and_subclasses_are_refused() -> None:
    first, second = nn.Linear(3, 3), nn.Linear(3, 3)
    second.weight = first.weight
    with pytest.raises(PrivacyError, match="layers 0 and 1 share a parameter"):
        FusedClipper(nn.Sequential(first, second))

    class Scaled(nn.Linear):
        def forward(self, x: Tensor) -> Tensor:
            return 2 * super().forward(x)

    with pytest.raises(PrivacyError, match=r"layer 0 \(Scaled\)"):
        FusedClipper(nn.Sequential(Scaled(3, 3)))


def test_layer_used_twice_is_refused() -> None:
    layer = nn.Linear(3, 3)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    FusedClipper(model).begin()
    with pytest.raises(PrivacyError, match="runs twice"):
        model(torch.randn(2, 3))


class _EditsItsInput(nn.Module):
    """A Linear whose input is then changed in place: its stored activations go stale."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(3, 3), nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        hidden = torch.tanh(self.first(x))
        out = self.second(hidden)
        hidden.mul_(2.0)
        return out + hidden.sum(1, keepdim=True)


def test_input_modified_in_place_is_refused() -> None:
    model = _EditsItsInput()
    FusedClipper(model).begin()
    loss = model(torch.randn(4, 3)).sum()
    with pytest.raises(PrivacyError, match="input of layer second was modified in place"):
        loss.backward()


def test_layer_without_gradient_is_refused_at_clipping() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    clipper = FusedClipper(model)
    clipper.begin()
    out = model[0](torch.randn(4, 3))
    out.sum().backward()
    with pytest.raises(PrivacyError, match="no gradient reached layer"):
        clipper.clip_and_sum(list(model.parameters()), 1.0)
