"""Keep a model's training behaviour through ONNX: BatchNorm and Dropout survive the export.

An export in eval mode folds BatchNorm into the convolution before it and drops Dropout,
so the room (which converts the ONNX graph with onnx2torch and trains that) would train
another network than the one the consumer wrote. The model is therefore traced in
training mode without constant folding, and the graph is then put into the one form that
both consumers of the file read correctly:

* ``BatchNormalization`` with one output and no ``training_mode`` (ONNX's inference
  semantics: onnxruntime normalises with the running statistics). onnx2torch maps it to
  ``nn.BatchNorm{1,2,3}d`` with the running statistics as buffers, which follows torch's
  ``train()``/``eval()``: batch statistics and running-statistic updates when trained.
* ``Dropout`` with its ``ratio`` and no ``training_mode`` input (identity in onnxruntime).
  onnx2torch maps it to a module that drops with ``ratio`` whenever it is in training mode.

Layers whose training behaviour has no such form are refused by name before the export
(:func:`refuse_untrainable`), and :func:`check_training_behaviour` converts the result as
the room does and compares one training-mode forward (same seed: same Dropout masks) and
the running statistics it leaves with the original's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import onnx
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from sealroom.errors import TrainingError

TRAIN_TOLERANCE = 1e-4  # times the output's scale: the same kernels on the same CPU


class TrainingFormError(TrainingError):
    """A layer's training behaviour would not survive the ONNX export (a one-line reason)."""


def _label(name: str, module: nn.Module) -> str:
    return f"layer {name or '(the model)'} ({type(module).__name__})"


def refuse_untrainable(model: nn.Module) -> None:
    """Refuse, naming the layer, a module whose training behaviour ONNX cannot carry."""
    for name, module in model.named_modules():
        reason = _untrainable(module)
        if reason:
            raise TrainingFormError(f"{_label(name, module)}: {reason}")


def _untrainable(module: nn.Module) -> str | None:
    """Why ``module`` would train differently after the export, or None."""
    if isinstance(module, nn.SyncBatchNorm):
        return "synchronised batch statistics cannot be exported; use nn.BatchNorm2d"
    if isinstance(module, _BatchNorm):
        if not module.track_running_stats:
            return (
                "track_running_stats=False (batch statistics at inference) cannot be exported; "
                "keep the default track_running_stats=True"
            )
        if module.momentum is None:
            return (
                "momentum=None (a cumulative average of the statistics) cannot be exported; "
                "set a momentum such as 0.1"
            )
        if not module.affine:
            return (
                "affine=False: onnx2torch would not keep the layer as BatchNorm; "
                "keep the default affine=True"
            )
    if isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats:
        return "track_running_stats=True cannot be exported; use the default (False)"
    if isinstance(module, nn.modules.dropout._DropoutNd) and type(module) is not nn.Dropout:
        return (
            f"{type(module).__name__} has no ONNX training form (only element-wise nn.Dropout "
            "survives the export); use nn.Dropout"
        )
    if isinstance(module, nn.RNNBase | nn.MultiheadAttention) and module.dropout > 0:
        return "its internal dropout would be lost in the export; set dropout=0"
    return None


def keep_training_form(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite a training-mode trace into the form of the module docstring (in place).

    Raises TrainingFormError when a node uses what the rewrite removes (BatchNorm's
    running-statistic outputs, Dropout's mask) or when a trained tensor feeds two layers:
    onnx2torch would give each its own copy, and they would be trained apart.
    """
    graph = proto.graph
    used = Counter(name for node in graph.node for name in node.input)
    used.update(out.name for out in graph.output)
    for node in graph.node:
        if node.op_type == "BatchNormalization":
            _dropped_outputs(node, used)
            kept = [a for a in node.attribute if a.name != "training_mode"]
            del node.attribute[:]
            node.attribute.extend(kept)
        elif node.op_type == "Dropout":
            _dropped_outputs(node, used)
            del node.input[2:]  # training_mode: ONNX's default (inference) everywhere
    _remove_zero_dropout(graph)
    _remove_dead_constants(graph)
    _refuse_shared(graph)
    return proto


def _dropped_outputs(node: onnx.NodeProto, used: Counter[str]) -> None:
    extra = [name for name in node.output[1:] if name and used[name]]
    if extra:
        raise TrainingFormError(
            f"node {node.name!r} ({node.op_type}): the model uses its output {extra[0]!r} "
            "(running statistics or a dropout mask), which the room's form does not keep"
        )
    del node.output[1:]


def _remove_zero_dropout(graph: onnx.GraphProto) -> None:
    """Drop ``Dropout`` nodes whose ratio is a constant 0 (``nn.Dropout(0.0)``, MONAI's
    default): they do nothing in either mode, and the layer counts then match."""
    from onnx import numpy_helper

    constants = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value"
    }
    constants.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    outputs = {o.name for o in graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        ratio = constants.get(node.input[1]) if len(node.input) > 1 else None
        if (
            node.op_type == "Dropout"
            and ratio is not None
            and ratio.size == 1
            and float(ratio.reshape(())) == 0.0
            and node.output[0] not in outputs
        ):
            renamed[node.output[0]] = node.input[0]
            continue
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _remove_dead_constants(graph: onnx.GraphProto) -> None:
    """Drop Constant nodes nothing reads any more (Dropout's training_mode flags)."""
    live = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [n for n in graph.node if n.op_type != "Constant" or n.output[0] in live]
    del graph.node[:]
    graph.node.extend(kept)


def _refuse_shared(graph: onnx.GraphProto) -> None:
    initializers = {t.name for t in graph.initializer}
    layers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            if name in initializers:
                layers.setdefault(name, []).append(node.name or node.op_type)
    for name, nodes in layers.items():
        if len(nodes) > 1:
            raise TrainingFormError(
                f"tensor {name!r} is used by {len(nodes)} nodes ({nodes[0]!r}, {nodes[1]!r}): a "
                "layer called twice would be trained as separate copies in the room"
            )


def batch_norm_statistics(proto: onnx.ModelProto) -> list[str]:
    """The running-mean tensor name of each BatchNormalization node, in graph order."""
    return [n.input[3] for n in proto.graph.node if n.op_type == "BatchNormalization"]


def check_training_behaviour(
    model: nn.Module, converted: nn.Module, batch: torch.Tensor, statistics: list[str]
) -> None:
    """One training-mode forward of ``model`` and its conversion agree, and so do the
    BatchNorm running statistics it leaves; both models are restored afterwards.

    ``statistics`` (from :func:`batch_norm_statistics`) names the running mean of each
    BatchNorm node in graph order: onnx2torch creates its BatchNorm modules in that order.
    """
    if len(batch) < 2:
        batch = torch.cat([batch, batch + 1])  # batch statistics need two records
    with _restored(model), _restored(converted), torch.random.fork_rng(devices=[]):
        outputs = []
        calls = []
        for module in (model, converted):
            module.train()
            torch.manual_seed(0)  # the same Dropout masks: the same draws in the same order
            with torch.no_grad(), _counting(module) as counted:
                outputs.append(module(batch))
            calls.append(counted)
        _same_layers(*calls)
        ours, theirs = outputs
        if not isinstance(ours, torch.Tensor) or not isinstance(theirs, torch.Tensor):
            raise TrainingFormError("the model returns no single tensor in training mode")
        if ours.shape != theirs.shape or not _close(ours, theirs):
            raise TrainingFormError(
                "in training mode the exported model computes other outputs than the model "
                "(a layer behaves differently when trained)"
            )
        buffers = dict(model.named_buffers())
        theirs_bn = [m for m in converted.modules() if isinstance(m, _BatchNorm)]
        if len(theirs_bn) != len(statistics):
            raise TrainingFormError(
                f"{len(statistics)} BatchNormalization nodes but {len(theirs_bn)} BatchNorm "
                "layers after the conversion: some would not train as BatchNorm"
            )
        for name, bn in zip(statistics, theirs_bn, strict=True):
            layer = name.removesuffix(".running_mean")
            mean, var = buffers.get(name), buffers.get(layer + ".running_var")
            if mean is None or var is None or bn.running_mean is None or bn.running_var is None:
                continue  # not one of the model's own buffers: the outputs were compared
            if not (_close(mean, bn.running_mean) and _close(var, bn.running_var)):
                raise TrainingFormError(f"layer {layer}: the running statistics would differ")


def _same_layers(ours: Counter[str], theirs: Counter[str]) -> None:
    """As many BatchNorm and Dropout calls after the round trip (the rates show in the
    training forward: the same seed draws the same masks)."""
    if ours != theirs:
        lost = sorted((ours - theirs).elements()) or sorted((theirs - ours).elements())
        raise TrainingFormError(
            f"the export does not keep the model's training layers (differs in {lost[0]})"
        )


@contextmanager
def _counting(model: nn.Module) -> Iterator[Counter[str]]:
    """Count the BatchNorm and Dropout layers a forward calls (a layer defined but never
    called is not in the graph, and is no loss)."""
    from onnx2torch.node_converters.dropout import OnnxDropoutDynamic

    counted: Counter[str] = Counter()
    handles = []
    for module in model.modules():
        kind = None
        if isinstance(module, _BatchNorm):
            kind = "BatchNorm"
        elif isinstance(module, OnnxDropoutDynamic) or (
            isinstance(module, nn.Dropout) and module.p > 0
        ):
            kind = "Dropout"
        if kind:
            hook = lambda *_, k=kind: counted.update([k])  # noqa: E731
            handles.append(module.register_forward_hook(hook))
    try:
        yield counted
    finally:
        for handle in handles:
            handle.remove()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = max(1.0, float(a.abs().nan_to_num(0.0).max())) if a.numel() else 1.0
    return bool(torch.allclose(a, b, rtol=0.0, atol=TRAIN_TOLERANCE * scale, equal_nan=True))


@contextmanager
def _restored(model: nn.Module) -> Iterator[None]:
    """Modes and buffers as they were (a training forward moves the running statistics)."""
    modes = {m: m.training for m in model.modules()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
        with torch.no_grad():
            for name, value in model.named_buffers():
                if name in buffers:
                    value.copy_(buffers[name])
