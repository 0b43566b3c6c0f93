"""Optimizers a config may name, each a small factory with explicit keyword parameters.

The explicit signatures are the allow-list of parameters too: compose checks a
config's ``params`` against them before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import Component

if TYPE_CHECKING:
    from torch.optim import Optimizer

Parameters = Iterable[Any]  # tensors or parameter-group dicts, as torch.optim accepts
OptimizerFactory = Callable[..., "Optimizer"]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


def _betas(betas: list[float]) -> tuple[float, float]:
    if len(betas) != 2:
        raise ValueError("betas must be two numbers")
    return float(betas[0]), float(betas[1])


@OPTIMIZERS.register("sgd")
def sgd(
    params: Parameters,
    lr: float = 0.01,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> Optimizer:
    import torch

    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )


@OPTIMIZERS.register("adam")
def adam(
    params: Parameters,
    lr: float = 1e-3,
    betas: list[float] = [0.9, 0.999],  # noqa: B006 - never mutated, shown in docs
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
) -> Optimizer:
    import torch

    return torch.optim.Adam(
        params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


@OPTIMIZERS.register("adamw")
def adamw(
    params: Parameters,
    lr: float = 1e-3,
    betas: list[float] = [0.9, 0.999],  # noqa: B006
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    amsgrad: bool = False,
) -> Optimizer:
    import torch

    return torch.optim.AdamW(
        params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


@OPTIMIZERS.register("nadam")
def nadam(
    params: Parameters,
    lr: float = 2e-3,
    betas: list[float] = [0.9, 0.999],  # noqa: B006
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Optimizer:
    import torch

    return torch.optim.NAdam(params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("radam")
def radam(
    params: Parameters,
    lr: float = 1e-3,
    betas: list[float] = [0.9, 0.999],  # noqa: B006
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Optimizer:
    import torch

    return torch.optim.RAdam(params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("adamax")
def adamax(
    params: Parameters,
    lr: float = 2e-3,
    betas: list[float] = [0.9, 0.999],  # noqa: B006
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Optimizer:
    import torch

    return torch.optim.Adamax(
        params, lr=lr, betas=_betas(betas), eps=eps, weight_decay=weight_decay
    )


@OPTIMIZERS.register("rmsprop")
def rmsprop(
    params: Parameters,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> Optimizer:
    import torch

    return torch.optim.RMSprop(
        params,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
    )


@OPTIMIZERS.register("adagrad")
def adagrad(
    params: Parameters,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
) -> Optimizer:
    import torch

    return torch.optim.Adagrad(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)


@OPTIMIZERS.register("adadelta")
def adadelta(
    params: Parameters,
    lr: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> Optimizer:
    import torch

    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


def build_optimizer(cfg: Component, params: Parameters, where: str = "optimizer") -> Optimizer:
    """The optimizer ``cfg`` names over ``params``; bad names or values are ConfigError."""
    factory = OPTIMIZERS.get(cfg.name, where=f"{where}.name")
    check_params(factory, cfg.params, f"{where}.params", reserved=("params",))
    try:
        return factory(params, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.params: {exc}") from None
