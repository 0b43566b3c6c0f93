"""Build the model a pipeline names: ONNX (onnx2torch), declarative layers or an architecture.

Loading a model never runs its code: ONNX is a graph of registered operators that
onnx2torch maps onto torch modules, and weights come as safetensors (plain tensors).
Nothing is unpickled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import onnx
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from sealroom.data import FileTree
from sealroom.pipeline.schema import ArchitectureModel, DeclarativeModel, ModelPart, OnnxModel
from sealroom.train.components.architectures import build_architecture
from sealroom.train.components.layers import build_declarative
from sealroom.train.onnx_check import ModelError, check_onnx
from sealroom.train.onnx_records import record_mixing

# The room builds what a consumer's config declares before it reads any data, so a
# config must not be able to ask for unbounded memory: `linear` with in_features and
# out_features of 10**6 would be 4 TB of weights. Generous for anything a room trains.
MAX_PARAMETERS = 1_000_000_000
MAX_SAMPLE_VALUES = 1 << 27  # one input sample (a 4-channel 256³ volume is 1 << 26)


class ConvertedOnnx(nn.Module):
    """A plain module around onnx2torch's graph, so export and Opacus see an ordinary tree.

    Exporting the bare ``fx.GraphModule`` fails inside the legacy exporter
    ("'Graph' object has no attribute 'outputs'"); one level of wrapping avoids it.
    """

    def __init__(
        self,
        graph: nn.Module,
        record_mixing: Sequence[str] = (),
        node_names: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.graph = graph
        # Nodes that may mix records across the batch (sealroom.train.onnx_records):
        # DP-SGD refuses a model with any (sealroom.privacy.independence).
        self.record_mixing = tuple(record_mixing)
        # Submodule name of ``graph`` -> the ONNX node it came from (whose name, for a torch
        # export, holds the consumer's module path): refusals name the layer as written.
        self.node_names = dict(node_names or {})

    def forward(self, x: torch.Tensor) -> Any:
        return self.graph(x)


def load_onnx(data: bytes, where: str) -> nn.Module:
    """Check an ONNX graph and convert it to torch modules; errors name ``where``.

    ``check_onnx`` runs first: no external data anywhere, allowed operators only, bounded
    size. onnx's checker and onnx2torch only ever see a model that passed it.
    """
    from onnx2torch import convert  # heavy import, only when an ONNX model is used

    proto = check_onnx(data, where)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx raises several unrelated types for bad input
        raise ModelError(f"{where}: not a valid ONNX model ({exc})") from None
    mixing = onnx_record_mixing(proto)
    try:
        graph = convert(proto)
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ...
        raise ModelError(f"{where}: cannot convert to torch ({exc})") from None
    return ConvertedOnnx(graph, mixing, converted_names(proto))


def converted_names(proto: onnx.ModelProto) -> dict[str, str]:
    """onnx2torch's submodule name for each node (OnnxGraph.generate_node_name: the
    domain, the name with '.' as '/', no leading '/', '_N' for repeats) -> the node name."""
    names: dict[str, str] = {}
    seen: dict[str, int] = {}
    for node in proto.graph.node:
        base = (f"{node.domain}/" + (node.name.replace(".", "/") or node.op_type)).lstrip("/")
        count = seen.get(base, 0)
        seen[base] = count + 1
        names[base + (f"_{count}" if count else "")] = node.name or node.op_type
    return names


def onnx_record_mixing(proto: onnx.ModelProto) -> list[str]:
    """The graph's record-mixing findings; never an error here, only private runs refuse."""
    try:
        return record_mixing(proto)
    except Exception as exc:  # a graph the check cannot follow counts as mixing
        return [f"the record check could not follow the graph ({type(exc).__name__})"]


def load_weights(model: nn.Module, data: bytes, where: str) -> None:
    """Load safetensors weights into ``model``; every tensor must match a parameter or buffer."""
    try:
        state = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: not a safetensors file ({exc})") from None
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if unknown or missing:
        detail = f"unexpected {unknown[:3]}" if unknown else f"missing {missing[:3]}"
        raise ModelError(f"{where}: weights do not fit the model ({detail})")
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise ModelError(
                f"{where}: tensor {name!r} has shape {list(tensor.shape)}, "
                f"model expects {list(own[name].shape)}"
            )
    model.load_state_dict(state, strict=True)


def build_model(part: ModelPart, tree: FileTree) -> nn.Module:
    """The untrained model of ``part``, with files (ONNX, weights) read from ``tree``."""
    cfg = part.model
    model: nn.Module
    if isinstance(cfg, OnnxModel):
        model = load_onnx(tree.read_bytes(cfg.file), f"model.file {cfg.file}")
    elif isinstance(cfg, DeclarativeModel):
        layers = cfg.layers
        model = build_bounded(lambda: build_declarative(layers), "model.layers")
    elif isinstance(cfg, ArchitectureModel):
        architecture = cfg
        model = build_bounded(lambda: build_architecture(architecture), "model.params")
    else:  # pragma: no cover - the schema's discriminated union has no other member
        raise ModelError(f"model.format: unsupported {type(cfg).__name__}")
    weights = None if isinstance(cfg, OnnxModel) else cfg.weights
    if weights:
        load_weights(model, tree.read_bytes(weights), f"model.weights {weights}")
    check_input_shape(model, part.input_shape)
    return model


def build_bounded(build: Callable[[], nn.Module], where: str) -> nn.Module:
    """Count parameters on the meta device (no memory, no RNG draws), then build for real."""
    with torch.device("meta"):
        skeleton = build()
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise ModelError(
            f"{where}: the model has {count:,} parameters (at most {MAX_PARAMETERS:,})"
        )
    return build()


def check_input_shape(model: nn.Module, input_shape: list[int]) -> None:
    """Run one zero sample through the model so a shape mismatch fails before any data is read."""
    if min(input_shape) < 1 or math.prod(input_shape) > MAX_SAMPLE_VALUES:
        raise ModelError(
            f"model.input_shape {input_shape}: sizes must be >= 1 and one sample at most "
            f"{MAX_SAMPLE_VALUES:,} values"
        )
    sample = torch.zeros(1, *input_shape)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample)
    except Exception as exc:  # a wrong shape surfaces as RuntimeError, ValueError, ...
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = "".join(f" at {note}" for note in getattr(exc, "__notes__", ())[:1])
        raise ModelError(
            f"model.input_shape {input_shape}: the model rejects it{where} ({message})"
        ) from None
    finally:
        model.train(training)
