"""Tiny trained models and data for the attack, report and served-attack tests (not a test
module): two classes of 8x8 "images" told apart by which half is brighter."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SHAPE = (1, 8, 8)


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE)).astype(np.float32)
    flat = x.reshape(n, -1)
    y = (flat[:, :32].mean(1) > flat[:, 32:].mean(1)).astype(np.int64)
    return x, y


def trained(kind: str, seed: int, x: np.ndarray, y: np.ndarray) -> nn.Module:
    """A linear model or a small MLP fitted to (x, y), deterministically."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    if kind == "linear":
        layers.append(nn.Linear(64, 2))
    else:
        layers += [nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2)]
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()
    return model.eval()


def onnx_bytes(model: nn.Module) -> bytes:
    from sealroom.train.export import export_onnx

    return export_onnx(model, list(SHAPE)).data
