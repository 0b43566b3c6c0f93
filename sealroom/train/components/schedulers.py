"""Learning-rate schedulers a config may name.

A scheduler steps either once per epoch or once per batch; each registered
factory says which (``interval``), so the training loop needs no per-name branches.
Factories receive the run's ``epochs`` and ``steps_per_epoch`` so that configs can
leave out lengths the loop already knows (OneCycleLR's ``total_steps``, ``T_max``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import Component

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler

Interval = Literal["epoch", "batch"]
RESERVED = ("optimizer", "epochs", "steps_per_epoch")


@dataclass(frozen=True)
class SchedulerFactory:
    """``build(optimizer, epochs=, steps_per_epoch=, **params)`` and when to call ``step()``."""

    build: Callable[..., LRScheduler]
    interval: Interval

    def __call__(
        self, optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, **params: Any
    ) -> LRScheduler:
        return self.build(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch, **params)


@dataclass(frozen=True)
class Scheduled:
    """A built scheduler and its stepping interval."""

    scheduler: LRScheduler
    interval: Interval


SCHEDULERS: Registry[SchedulerFactory] = Registry("scheduler")


def register_scheduler(
    name: str, interval: Interval
) -> Callable[[Callable[..., LRScheduler]], Callable[..., LRScheduler]]:
    def decorate(build: Callable[..., LRScheduler]) -> Callable[..., LRScheduler]:
        SCHEDULERS.add(name, SchedulerFactory(build, interval))
        return build

    return decorate


@register_scheduler("steplr", "epoch")
def steplr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    step_size: int = 1,
    gamma: float = 0.1,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


@register_scheduler("multisteplr", "epoch")
def multisteplr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    milestones: list[int],
    gamma: float = 0.1,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)


@register_scheduler("exponentiallr", "epoch")
def exponentiallr(
    optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, gamma: float = 0.9
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.ExponentialLR(optimizer, gamma=gamma)


@register_scheduler("cosineannealinglr", "epoch")
def cosineannealinglr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    T_max: int | None = None,
    eta_min: float = 0.0,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max or epochs, eta_min=eta_min)


@register_scheduler("cosineannealingwarmrestarts", "epoch")
def cosineannealingwarmrestarts(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    T_0: int = 10,
    T_mult: int = 1,
    eta_min: float = 0.0,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=T_0, T_mult=T_mult, eta_min=eta_min
    )


@register_scheduler("linearlr", "epoch")
def linearlr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    start_factor: float = 1 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.LinearLR(
        optimizer, start_factor=start_factor, end_factor=end_factor, total_iters=total_iters
    )


@register_scheduler("polynomiallr", "epoch")
def polynomiallr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    total_iters: int | None = None,
    power: float = 1.0,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.PolynomialLR(optimizer, total_iters=total_iters or epochs, power=power)


@register_scheduler("cycliclr", "batch")
def cycliclr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    base_lr: float,
    max_lr: float,
    step_size_up: int | None = None,
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
    gamma: float = 1.0,
    cycle_momentum: bool | None = None,
) -> LRScheduler:
    # Cycling momentum only works for optimizers that have it (SGD, RMSprop), so default to that.
    from torch.optim import lr_scheduler

    if cycle_momentum is None:
        cycle_momentum = "momentum" in optimizer.defaults
    return lr_scheduler.CyclicLR(
        optimizer,
        base_lr=base_lr,
        max_lr=max_lr,
        step_size_up=step_size_up or max(1, steps_per_epoch // 2),
        mode=mode,
        gamma=gamma,
        cycle_momentum=cycle_momentum,
    )


@register_scheduler("onecyclelr", "batch")
def onecyclelr(
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    max_lr: float,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> LRScheduler:
    from torch.optim import lr_scheduler

    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(1, epochs * steps_per_epoch),
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum="momentum" in optimizer.defaults or "betas" in optimizer.defaults,
    )


def build_scheduler(
    cfg: Component,
    optimizer: Optimizer,
    epochs: int,
    steps_per_epoch: int,
    where: str = "scheduler",
) -> Scheduled:
    """The scheduler ``cfg`` names, with its interval; bad names or values are ConfigError."""
    factory = SCHEDULERS.get(cfg.name, where=f"{where}.name")
    check_params(factory.build, cfg.params, f"{where}.params", reserved=RESERVED)
    try:
        scheduler = factory(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch, **cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.params: {exc}") from None
    return Scheduled(scheduler, factory.interval)
