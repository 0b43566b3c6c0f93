"""Named architectures (``format: architecture``), built from parameters only.

``monai_unet`` wraps MONAI's U-Net but normalises with GroupNorm or InstanceNorm and
activates with LeakyReLU, not MONAI's defaults of BatchNorm-style statistics and
PReLU: DP-SGD clips each sample's gradient, which needs layers whose output for a
sample depends on that sample only (BatchNorm mixes the batch) and layers Opacus
can compute per-sample gradients for (it has no sampler for PReLU's weight). So
the same architecture trains with or without ``privacy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import ArchitectureModel

if TYPE_CHECKING:
    from torch import nn

ArchitectureFactory = Callable[..., "nn.Module"]

ARCHITECTURES: Registry[ArchitectureFactory] = Registry("architecture")


@ARCHITECTURES.register("monai_unet")
def monai_unet(
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    channels: list[int] = [16, 32, 64, 128],  # noqa: B006 - never mutated, shown in docs
    strides: list[int] = [2, 2, 2],  # noqa: B006
    num_res_units: int = 2,
    norm: Literal["instance", "group", "batch"] = "instance",
    num_groups: int = 8,
    dropout: float = 0.0,
    kernel_size: int = 3,
) -> nn.Module:
    """MONAI U-Net; ``group``/``instance`` norms train privately as they are."""
    from monai.networks.nets import UNet

    if len(strides) != len(channels) - 1:
        raise ValueError("strides needs one entry fewer than channels")
    if norm == "group":
        # With residual units MONAI also normalises the top up-sampling output (out_channels).
        counts = [*channels, out_channels] if num_res_units else channels
        if any(c % num_groups for c in counts):
            raise ValueError(
                f"channels and out_channels must be divisible by num_groups={num_groups}"
            )
        norm_spec: tuple[str, dict[str, Any]] = ("group", {"num_groups": num_groups})
    elif norm == "instance":
        norm_spec = ("instance", {"affine": True})
    elif norm == "batch":
        # MONAI's usual choice; a private run's DP wrapper swaps each BatchNorm for a
        # GroupNorm and logs the replacement (sealroom.privacy.compat).
        norm_spec = ("batch", {})
    else:
        raise ValueError("norm must be 'group', 'instance' or 'batch'")
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=tuple(strides),
        kernel_size=kernel_size,
        num_res_units=num_res_units,
        act=("leakyrelu", {"negative_slope": 0.1}),
        norm=norm_spec,
        dropout=dropout,
    )


@ARCHITECTURES.register("simple_cnn")
def simple_cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    width: int = 16,
    hidden: int = 64,
    num_groups: int = 4,
    dropout: float = 0.0,
) -> nn.Module:
    """Two conv blocks (conv, GroupNorm, ReLU, max-pool) and a two-layer head; DP-compatible."""
    from torch import nn

    if image_size % 4:
        raise ValueError("image_size must be divisible by 4")
    if width % num_groups:
        raise ValueError("width must be divisible by num_groups")
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.GroupNorm(num_groups, width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.GroupNorm(num_groups, 2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


def build_architecture(cfg: ArchitectureModel, where: str = "model") -> nn.Module:
    """The registered architecture ``cfg`` names; bad names or parameters are ConfigError."""
    factory = ARCHITECTURES.get(cfg.name, where=f"{where}.name")
    check_params(factory, cfg.params, f"{where}.params")
    try:
        return factory(**cfg.params)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{where}.params: {exc}") from None
