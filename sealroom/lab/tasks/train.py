"""The train task: a registered architecture fitted on a LabData split (DP-SGD for dp-cnn).

DP-SGD goes through Opacus' PrivacyEngine (per-sample gradients, clipping, Gaussian noise,
Poisson sampling, RDP accounting); the ε spent is recorded as the metric ``epsilon``.
Seeds come from the job so a rerun on CPU reproduces the same weights.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.values import LabData, LabModel

if TYPE_CHECKING:  # torch loads when a task runs, not when the registry is listed
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

MAX_EPOCHS = 1000
DEFAULT_NOISE_MULTIPLIER = 1.0  # dp-cnn without epsilon or noise_multiplier


def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Top-1 accuracy of a torch classifier on arrays (eval mode, no gradients)."""
    if len(y) == 0:
        return float("nan")
    import torch

    module.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = module(torch.from_numpy(x[start : start + batch_size]))
            correct += int((logits.argmax(1).numpy() == y[start : start + batch_size]).sum())
    return correct / len(y)


def _check(epochs: int, lr: float, batch_size: int) -> None:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise LabError(f"epochs={epochs}: must be between 1 and {MAX_EPOCHS}")
    if not (math.isfinite(lr) and lr > 0):
        raise LabError(f"lr={lr}: must be a positive number")
    if not 1 <= batch_size <= 65536:
        raise LabError(f"batch_size={batch_size}: must be between 1 and 65536")


@task(
    "train",
    outputs=("model",),
    description="Train a registered model (mlp, lenet, resnet, dp-cnn) on a data split",
    args={
        "data": "LabData from load_data",
        "arch": "mlp | lenet | resnet | dp-cnn",
        "epochs": "passes over the training set (default 2)",
        "lr": "Adam learning rate (default 0.001)",
        "batch_size": "batch size (expected batch size under DP; default 64)",
        "epsilon": "dp-cnn: target ε (noise calibrated by Opacus); or give noise_multiplier",
        "noise_multiplier": "dp-cnn: Gaussian noise multiplier instead of a target ε (default 1.0)",
        "max_grad_norm": "dp-cnn: per-sample clipping norm (default 1.0)",
        "delta": "dp-cnn: δ (default 1e-5)",
        "seed": "initialisation, shuffling and DP noise seed (default: the job's seed)",
    },
)
def train(
    ctx: TaskContext,
    data: LabData,
    arch: str = "mlp",
    epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 64,
    epsilon: float | None = None,
    noise_multiplier: float | None = None,
    max_grad_norm: float = 1.0,
    delta: float = 1e-5,
    seed: int | None = None,
) -> dict[str, Any]:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from sealroom.lab.tasks.models import model_spec

    if not isinstance(data, LabData):
        raise LabError(f"data: expected the output of load_data, got {type(data).__name__}")
    spec = model_spec(arch)
    epochs, lr, batch_size = int(epochs), float(lr), int(batch_size)
    _check(epochs, lr, batch_size)
    if not spec.private and (epsilon is not None or noise_multiplier is not None):
        raise LabError(f"arch {arch}: epsilon/noise_multiplier apply to dp-cnn only")
    seed = ctx.seed if seed is None else int(seed)
    torch.manual_seed(seed)
    module: Any = spec.build(data.shape, len(data.classes))
    dataset = TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train))
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    engine = None
    if spec.private:
        module, optimizer, loader, engine = _make_private(
            ctx, seed, module, optimizer, loader, epochs, epsilon, noise_multiplier,
            float(max_grad_norm), float(delta),
        )  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    # Opacus' hooks fire on the first layer, whose input needs no gradient: harmless.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    for epoch in range(1, epochs + 1):
        module.train()
        total, count = 0.0, 0
        for x, y in loader:
            if len(y) == 0:  # Poisson sampling can draw an empty batch
                continue
            optimizer.zero_grad()
            loss = loss_fn(module(x), y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(y), count + len(y)
        mean = total / max(count, 1)
        ctx.metric("train_loss", mean, epoch)
        line = f"train {arch}: epoch {epoch}/{epochs} loss {mean:.4f}"
        if engine is not None:
            spent = float(engine.get_epsilon(float(delta)))
            ctx.metric("epsilon", spent, epoch)
            line += f" ε {spent:.3f} (δ {float(delta):g})"
        ctx.log(line)
    plain: nn.Module = module.to_standard_module() if engine is not None else module
    plain.eval()
    test_accuracy = accuracy(plain, data.x_test, data.y_test)
    ctx.metric("test_accuracy", test_accuracy)
    ctx.log(f"train {arch}: test accuracy {test_accuracy:.4f}")
    return {"model": LabModel(plain, arch, data.shape, len(data.classes))}


def _make_private(
    ctx: TaskContext,
    seed: int,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[Any],
    epochs: int,
    epsilon: float | None,
    noise_multiplier: float | None,
    max_grad_norm: float,
    delta: float,
) -> tuple[Any, Any, Any, Any]:
    import torch
    from opacus import PrivacyEngine

    if epsilon is not None and noise_multiplier is not None:
        raise LabError("dp-cnn: give epsilon or noise_multiplier, not both")
    if epsilon is None and noise_multiplier is None:
        noise_multiplier = DEFAULT_NOISE_MULTIPLIER
    if not 0 < delta < 1 or not max_grad_norm > 0:
        raise LabError(f"dp-cnn: delta={delta} must lie in (0, 1), max_grad_norm > 0")
    noise = torch.Generator().manual_seed(seed + 1)
    with warnings.catch_warnings():
        # Opacus' notice that secure_mode is off: the testbed wants reproducible runs.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant="rdp")
        if epsilon is not None:
            if not float(epsilon) > 0:
                raise LabError(f"dp-cnn: epsilon={epsilon} must be positive")
            module, dp_optimizer, loader = engine.make_private_with_epsilon(
                module=module, optimizer=optimizer, data_loader=loader,
                target_epsilon=float(epsilon), target_delta=delta, epochs=epochs,
                max_grad_norm=max_grad_norm, noise_generator=noise,
            )  # fmt: skip
        else:
            if not float(noise_multiplier or 0) > 0:
                raise LabError(f"dp-cnn: noise_multiplier={noise_multiplier} must be positive")
            module, dp_optimizer, loader = engine.make_private(
                module=module, optimizer=optimizer, data_loader=loader,
                noise_multiplier=float(noise_multiplier or 0), max_grad_norm=max_grad_norm,
                noise_generator=noise,
            )  # fmt: skip
    ctx.log(
        f"train dp-cnn: DP-SGD noise multiplier {dp_optimizer.noise_multiplier:.4f}, "
        f"clip {max_grad_norm:g}, sample rate {1 / len(loader):.5f}"
    )
    return module, dp_optimizer, loader, engine
