"""Make a model trainable with DP-SGD: Opacus' ModuleValidator fixers, applied in place.

Opacus' ``ModuleValidator.fix`` clones the model through ``torch.save``/``torch.load``
(pickle); sealroom never pickles, so the same registered fixers are applied here to each
offending layer in place, and every replacement is reported by name.

A BatchNorm the consumer wrote (it reaches the room inside an ONNX graph, which the
export keeps in its training form) is refused instead of replaced: swapping it would
train another network than the one written, and its batch statistics mix records.
"""

from __future__ import annotations

from torch import nn

from sealroom.errors import PrivacyError


def make_private_compatible(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Replace layers DP-SGD cannot train (BatchNorm → GroupNorm, ...); returns the messages.

    Raises PrivacyError naming the first layer that no fixer can repair, and the first
    BatchNorm of a consumer's ONNX model (:func:`refuse_written_batch_norm`).
    """
    from opacus.validators import ModuleValidator

    refuse_written_batch_norm(model)
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


def refuse_written_batch_norm(model: nn.Module) -> None:
    """PrivacyError (one line, the consumer's layer and a GroupNorm hint) for a BatchNorm
    inside a converted ONNX model."""
    from onnx2torch.node_converters.batch_norm import OnnxBatchNorm
    from torch.nn.modules.batchnorm import _BatchNorm

    from sealroom.train.models import ConvertedOnnx

    for outer in model.modules():
        if not isinstance(outer, ConvertedOnnx):
            continue
        for name, module in outer.graph.named_modules():
            if isinstance(module, _BatchNorm | OnnxBatchNorm):
                node = outer.node_names.get(name, name)
                raise PrivacyError(
                    f"model: layer {written_layer(node)} (BatchNorm, ONNX node {node!r}) mixes "
                    "records across the batch through its batch statistics, which differential "
                    "privacy cannot allow; use GroupNorm (nn.GroupNorm) instead"
                )


def written_layer(node: str) -> str:
    """The consumer's module path in a torch-exported node name: each scope of
    '/model/features/features.1/BatchNormalization' is a full path, so the last one,
    'features.1', is the layer."""
    parts = [p for p in node.split("/") if p]
    return parts[-2] if len(parts) > 1 else node


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.GroupNorm):
        return f"{module.num_groups} groups over {module.num_channels} channels (weights reset)"
    return repr(module)
