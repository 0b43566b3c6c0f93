"""Optimizers and schedulers build from config components and step."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sealroom.errors import ConfigError
from sealroom.pipeline.schema import Component
from sealroom.train.components.optimizers import OPTIMIZERS, build_optimizer
from sealroom.train.components.schedulers import SCHEDULERS, build_scheduler

REQUIRED: dict[str, dict[str, Any]] = {
    "cycliclr": {"base_lr": 0.001, "max_lr": 0.01},
    "onecyclelr": {"max_lr": 0.01},
    "multisteplr": {"milestones": [1, 2]},
}


def model() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def step(optimizer: torch.optim.Optimizer, net: torch.nn.Module) -> None:
    optimizer.zero_grad()
    net(torch.ones(4, 3)).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_with_defaults_and_steps(name: str) -> None:
    net = model()
    before = net.weight.detach().clone()
    step(build_optimizer(Component(name=name), net.parameters()), net)
    assert not torch.equal(before, net.weight)


def test_optimizer_parameters_from_yaml_lists() -> None:
    net = model()
    optimizer = build_optimizer(
        Component(name="adam", params={"lr": 0.01, "betas": [0.8, 0.9]}), net.parameters()
    )
    assert optimizer.defaults["betas"] == (0.8, 0.9)


def test_bad_optimizer_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"optimizer\.params"):
        build_optimizer(Component(name="sgd", params={"lr": -1.0}), model().parameters())
    with pytest.raises(ConfigError, match="unknown optimizer 'SGD'"):
        build_optimizer(Component(name="SGD"), model().parameters())


@pytest.mark.parametrize("name", SCHEDULERS.names())
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_scheduler_builds_and_steps(name: str, optimizer: str) -> None:
    net = model()
    opt = build_optimizer(Component(name=optimizer, params={"lr": 0.01}), net.parameters())
    scheduled = build_scheduler(
        Component(name=name, params=REQUIRED.get(name, {})), opt, epochs=3, steps_per_epoch=4
    )
    assert scheduled.interval == ("batch" if name in ("cycliclr", "onecyclelr") else "epoch")
    steps = 12 if scheduled.interval == "batch" else 3
    for _ in range(steps):
        step(opt, net)
        scheduled.scheduler.step()


def test_scheduler_cannot_set_the_lengths_the_loop_supplies() -> None:
    opt = build_optimizer(Component(name="sgd"), model().parameters())
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_scheduler(
            Component(name="onecyclelr", params={"max_lr": 0.1, "epochs": 10}),
            opt,
            epochs=1,
            steps_per_epoch=1,
        )
