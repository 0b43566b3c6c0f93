"""Make a model trainable with DP-SGD: Opacus' ModuleValidator fixers, applied in place.

Opacus' ``ModuleValidator.fix`` clones the model through ``torch.save``/``torch.load``
(pickle); sealroom never pickles, so the same registered fixers are applied here to each
offending layer in place, and every replacement is reported by name.
"""

from __future__ import annotations

from torch import nn

from sealroom.errors import PrivacyError


def make_private_compatible(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Replace layers DP-SGD cannot train (BatchNorm → GroupNorm, ...); returns the messages.

    Raises PrivacyError naming the first layer that no fixer can repair.
    """
    from opacus.validators import ModuleValidator

    messages: list[str] = []
    if not ModuleValidator.validate(model, strict=False):
        return model, messages
    for name, module in list(model.named_modules()):
        fixer = ModuleValidator.FIXERS.get(type(module))
        if fixer is None or not name:
            continue
        replacement = fixer(module)
        device = next(module.parameters(), None)
        if device is not None:
            replacement.to(device.device)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, replacement)
        messages.append(
            f"DP: replaced layer {name} ({type(module).__name__}) with "
            f"{type(replacement).__name__}: {_describe(replacement)}"
        )
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise PrivacyError(f"model: cannot train with DP-SGD: {' '.join(str(errors[0]).split())}")
    return model, messages


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.GroupNorm):
        return f"{module.num_groups} groups over {module.num_channels} channels (weights reset)"
    return repr(module)
