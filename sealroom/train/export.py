"""Export a model as ONNX (checked with onnxruntime and the room's converter) and safetensors.

The ONNX keeps the model's training behaviour (BatchNorm, Dropout; see
:mod:`sealroom.train.export_training`): the consumer's ``save_model`` and the room's
export of the trained model both go through here, so what the room trains is what the
consumer wrote, and what it hands back trains on the same way.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from sealroom.errors import TrainingError
from sealroom.train.export_training import (
    TrainingFormError,
    batch_norm_statistics,
    check_training_behaviour,
    keep_training_form,
    refuse_untrainable,
)

ONNX_OPSET = 17
CHECK_TOLERANCE = 1e-3


class ExportError(TrainingError):
    """The trained model could not be exported or its export disagrees with torch."""


class _Exportable(nn.Module):
    """A plain wrapper: the legacy exporter cannot trace a bare onnx2torch ``fx.GraphModule``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)

    def inner(self) -> nn.Module:
        """The wrapped model (typed: attribute access on an nn.Module is Tensor | Module)."""
        return self.get_submodule("model")


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX bytes and how far onnxruntime's output is from torch's on a check batch."""

    data: bytes
    max_abs_diff: float


def export_onnx(
    model: nn.Module,
    input_shape: list[int] | tuple[int, ...],
    check_batch: torch.Tensor | None = None,
) -> OnnxExport:
    """ONNX with a dynamic batch axis; verified with onnxruntime on ``check_batch`` (or zeros).

    The graph is traced in training mode and kept in its training form (BatchNorm and
    Dropout stay); it is converted as the room converts it, and one training-mode forward
    must agree with the model's. Raises ExportError (one line, naming the layer where one
    is to blame) when a layer cannot keep its training behaviour, or when onnxruntime's
    (inference) output differs from torch's by more than ``CHECK_TOLERANCE``.
    """
    # Export and check on the CPU, then give the model back where and as it was.
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    training = model.training
    try:
        with torch.random.fork_rng(devices=[]):  # converting for the check draws weights
            return _export_checked(_Exportable(model).cpu().eval(), input_shape, check_batch)
    finally:
        model.to(device).train(training)


# torch's ONNX exporter keeps process-wide state (GLOBALS.in_onnx_export): two exports in
# threads of one process (the lab's in-process engine) break each other. One at a time.
_EXPORT_LOCK = threading.Lock()


def _export_checked(
    wrapped: _Exportable, input_shape: list[int] | tuple[int, ...], check_batch: torch.Tensor | None
) -> OnnxExport:
    try:
        refuse_untrainable(wrapped.inner())
    except TrainingFormError as exc:
        raise ExportError(f"ONNX export: {exc}") from None
    data = _trace(wrapped, input_shape)
    batch = check_batch if check_batch is not None else torch.zeros(2, *input_shape)
    batch = batch.detach().cpu().float()
    diff = onnx_max_abs_diff(wrapped, data, batch)
    if not diff <= CHECK_TOLERANCE:
        raise ExportError(
            f"ONNX export differs from torch by {diff:.3g} (> {CHECK_TOLERANCE}); the graph is "
            "traced in training mode, so a layer with its own `if self.training:` branch "
            "cannot be exported"
        )
    _check_as_the_room_converts(wrapped, data, batch)
    return OnnxExport(data, diff)


def _trace(wrapped: nn.Module, input_shape: list[int] | tuple[int, ...]) -> bytes:
    """The training-mode trace in its training form; the model's buffers and RNG untouched."""
    import onnx

    example = torch.zeros(2, *input_shape)  # two records: batch statistics need them
    buffers = {n: b.detach().clone() for n, b in wrapped.named_buffers()}
    buffer = io.BytesIO()
    try:
        with (
            _EXPORT_LOCK,
            warnings.catch_warnings(),
            torch.no_grad(),
            torch.random.fork_rng(devices=[]),
        ):
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                wrapped,
                (example,),
                buffer,  # type: ignore[arg-type]  # file-like objects work too
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=ONNX_OPSET,
                training=torch.onnx.TrainingMode.TRAINING,
                do_constant_folding=False,  # folding would fuse BatchNorm into Conv
            )
    except Exception as exc:  # the exporter raises many types; report one line
        raise ExportError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None
    finally:
        with torch.no_grad():  # tracing in training mode moved the running statistics
            for name, value in wrapped.named_buffers():
                value.copy_(buffers[name])
        wrapped.eval()
    try:
        proto = keep_training_form(onnx.load_from_string(buffer.getvalue()))
    except TrainingFormError as exc:
        raise ExportError(f"ONNX export: {exc}") from None
    _restore_initializers(proto, buffers)
    return proto.SerializeToString()


def _restore_initializers(proto: Any, buffers: dict[str, torch.Tensor]) -> None:
    """The exporter reads the buffers after its training-mode trace moved them: put the
    model's own running statistics back into the graph."""
    from onnx import numpy_helper

    for index, tensor in enumerate(proto.graph.initializer):
        if tensor.name in buffers:
            value = numpy_helper.from_array(buffers[tensor.name].numpy(), tensor.name)
            proto.graph.initializer[index].CopyFrom(value)


def _check_as_the_room_converts(wrapped: nn.Module, data: bytes, batch: torch.Tensor) -> None:
    """Convert like the room (allow-list, onnx2torch) and compare a training forward."""
    from sealroom.train.models import load_onnx
    from sealroom.train.onnx_check import ModelError, parse_model

    try:
        converted = load_onnx(data, "the exported model")
        statistics = batch_norm_statistics(parse_model(data, "the exported model"))
        check_training_behaviour(wrapped, converted, batch, statistics)
    except (ModelError, TrainingFormError) as exc:
        raise ExportError(f"ONNX export: {exc}") from None
    finally:
        wrapped.eval()


def onnx_max_abs_diff(model: nn.Module, onnx_bytes: bytes, batch: torch.Tensor) -> float:
    """Largest absolute difference between torch and onnxruntime outputs on ``batch``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    with torch.no_grad():
        output = model.cpu().eval()(batch)
    if not isinstance(output, torch.Tensor):
        raise ExportError(f"the model returns {type(output).__name__}, not one tensor")
    torch_out = output.numpy()
    try:
        session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        (ort_out,) = session.run(["output"], {"input": batch.numpy()})
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot run the export: {exc}") from None
    if ort_out.shape != torch_out.shape:
        raise ExportError(f"ONNX output shape {ort_out.shape} differs from torch {torch_out.shape}")
    return float(np.max(np.abs(ort_out - torch_out))) if torch_out.size else 0.0


def export_safetensors(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """The model's parameters and buffers as safetensors (contiguous CPU copies)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state, metadata=metadata)
