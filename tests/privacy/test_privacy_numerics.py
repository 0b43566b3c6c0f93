"""Fused clipping at the edges of float32: underflow, cancellation, inf/NaN, reused weights.

The reference is torch.func's per-sample gradients (float32, as autograd computes them)
with their norms taken in float64, clipped with Opacus' factor min(1, C / (‖g‖ + 1e-6)).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from sealroom.errors import PrivacyError
from sealroom.privacy.fused import FusedClipper


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor


def _per_sample(model: nn.Module, x: Tensor, y: Tensor, scale: float = 1.0) -> list[Tensor]:
    """torch.func per-sample gradients of ``scale · cross_entropy``, one tensor per parameter."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out = functional_call(model, p, (xi[None],))
        return F.cross_entropy(out, yi[None]) * scale

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return [grads[k] for k in params]


def _reference(per_sample: list[Tensor], clip: float) -> list[Tensor]:
    """Clipped sums with float64 norms; a record whose norm is not finite is left out."""
    flat = torch.cat([g.flatten(1).to(torch.float64) for g in per_sample], 1)
    norms = torch.linalg.vector_norm(flat, dim=1)
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    factors = torch.where(torch.isfinite(norms), factors, 0.0)
    out = []
    for g in per_sample:
        g64 = torch.where(torch.isfinite(norms).view(-1, *[1] * (g.dim() - 1)), g, 0.0)
        out.append((g64.to(torch.float64) * factors.view(-1, *[1] * (g.dim() - 1))).sum(0))
    return out


def _fused(model: nn.Module, x: Tensor, y: Tensor, clip: float, scale: float = 1.0) -> list[Tensor]:
    clipper = FusedClipper(model)
    try:
        clipper.begin()
        (F.cross_entropy(model(x), y) * scale).backward()
        params = list(clipper.frozen)  # the trainable parameters, in the model's order
        clipper.clip_and_sum(params, clip)
        return [p.summed_grad for p in params]  # type: ignore[attr-defined]
    finally:
        clipper.close()


def _assert_close(got: list[Tensor], want: list[Tensor], scale: float) -> None:
    for g, w in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        assert torch.allclose(g.to(torch.float64), w, rtol=1e-4, atol=1e-5 * scale), (
            (g.to(torch.float64) - w).abs().max()
        )


def test_linear_norm_survives_squares_that_underflow_in_float32() -> None:
    """The audit's case: ‖g‖² underflows, the record was reported at norm 0 and not clipped."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), _Scale(1e-24))
    x, y = torch.full((6, 4), 5e18) * (1 + torch.rand(6, 4)), torch.randint(0, 3, (6,))
    clip = 1e-6
    per_sample = _per_sample(model, x, y)
    # the trap is real: float32 ‖g‖²·‖a‖² of the hooks' output gradient is exactly 0
    g = torch.softmax(model(x), 1).sub(F.one_hot(y, 3)).mul(1e-24 / len(x)).detach()
    naive = (
        torch.linalg.vector_norm(g, dim=1).square() * torch.linalg.vector_norm(x, dim=1).square()
    )
    assert (naive == 0).all()
    expected = _reference(per_sample, clip)
    got = _fused(model, x, y, clip)
    _assert_close(got, expected, clip)
    # each record is clipped to C, so the sum is within len(x)·C
    total = torch.sqrt(sum((t.to(torch.float64) ** 2).sum() for t in got))  # type: ignore[arg-type]
    assert float(total) <= len(x) * clip * (1 + 1e-5)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.Tanh(),
        nn.Linear(5, 3),
    )


@pytest.mark.parametrize("scale", [1e30])  # float32 squares overflow: the record was dropped
def test_clipped_sums_are_right_at_any_gradient_scale(scale: float) -> None:
    torch.manual_seed(1)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    model = _cnn()
    clip = 1e-3 * scale
    per_sample = _per_sample(model, x, y, scale)
    flat = torch.cat([g.flatten(1).to(torch.float64) for g in per_sample], 1)
    assert (torch.linalg.vector_norm(flat, dim=1) > 2 * clip).all()  # every record is clipped
    expected = _reference(per_sample, clip)
    _assert_close(_fused(model, x, y, clip, scale), expected, clip)


class _CenteredSequence(nn.Module):
    """A Linear over each step, centred over the record's own steps: Σ_t g_t = 0 exactly
    in real arithmetic, so with equal steps the layer's true per-sample gradient is 0 and
    the Gram form Σ_st (a_s·a_t)(g_s·g_t) is a sum of terms that cancel."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.step = nn.Linear(4, 6, bias=False)
        self.head = nn.Linear(6 * steps, 3)
        self.head.requires_grad_(False)  # only the Gram-path layer trains: nothing adds to it

    def forward(self, x: Tensor) -> Tensor:
        h = self.step(x)
        return self.head(torch.tanh(h - h.mean(1, keepdim=True)).flatten(1))


def test_gram_norms_never_go_negative_over_200_trials() -> None:
    steps = 3  # steps² ≤ weight numel: the Gram path
    for trial in range(200):
        torch.manual_seed(trial)
        model = _CenteredSequence(steps)
        row = torch.randn(4, 1, 4) * 10
        x, y = row.expand(4, steps, 4).contiguous(), torch.randint(0, 3, (4,))
        per_sample = _per_sample(model, x, y)[:1]
        got = _fused(model, x, y, 0.5)
        assert all(torch.isfinite(t).all() for t in got), f"trial {trial}: NaN in the sum"
        _assert_close(got, _reference(per_sample, 0.5), 1.0)


def test_a_record_with_a_non_finite_norm_gets_factor_zero() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    keep = torch.tensor([0, 1, 3, 4, 5])
    expected = _fused(model, x[keep], y[keep], 0.3)
    for poison in (float("inf"), float("nan")):
        bad = x.clone()
        bad[2, 1] = poison
        clipper = FusedClipper(model)
        clipper.begin()
        F.cross_entropy(model(bad), y).backward()
        params = list(model.parameters())
        clipper.clip_and_sum(params, 0.3)
        assert clipper.dropped_last_step == 1
        clipper.close()
        for p, want in zip(params, expected, strict=True):
            got = p.summed_grad  # type: ignore[attr-defined]
            assert torch.isfinite(got).all()
            assert torch.allclose(got, want, atol=1e-6)


class _FunctionalReuse(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.fc(x) + F.linear(x, self.fc.weight)))


class _TiedOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4, bias=False)
        self.mix = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.mix(self.embed(x))) @ self.embed.weight  # tied projection


@pytest.mark.parametrize(
    ("model", "name"), [(_FunctionalReuse, "fc.weight"), (_TiedOutput, "embed.weight")]
)
def test_a_hooked_weight_used_outside_its_layer_is_refused(
    model: type[nn.Module], name: str
) -> None:
    torch.manual_seed(3)
    net = model()
    x = torch.randn(4, 3 if model is _TiedOutput else 4)
    clipper = FusedClipper(net)
    params = list(clipper.frozen)
    clipper.begin()
    net(x).sum().backward()
    with pytest.raises(PrivacyError, match=rf"parameter {name} is used outside its layer"):
        clipper.clip_and_sum(params, 1.0)
    clipper.begin()
    with torch.no_grad():
        net(x)  # evaluation: no gradient, nothing dropped
    clipper.close()
    assert [p for p in net.parameters()] == params  # the real parameters are back
    net(x).sum().backward()  # a plain model again
    assert all(p.grad is not None for p in params)


def test_the_guard_lets_an_ordinary_model_train() -> None:
    model = _cnn()
    x, y = torch.randn(3, 1, 8, 8), torch.randint(0, 3, (3,))
    _assert_close(_fused(model, x, y, 0.1), _reference(_per_sample(model, x, y), 0.1), 1.0)
    assert all(type(p) is nn.Parameter and p.grad is None for p in model.parameters())
