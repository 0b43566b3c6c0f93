"""Export a trained model as ONNX (checked with onnxruntime) and as safetensors weights."""

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

    Raises ExportError when the difference exceeds ``CHECK_TOLERANCE``.
    """
    # Export and check on the CPU, then give the model back where and as it was.
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    training = model.training
    try:
        return _export_checked(_Exportable(model).cpu().eval(), input_shape, check_batch)
    finally:
        model.to(device).train(training)


# torch's ONNX exporter keeps process-wide state (GLOBALS.in_onnx_export): two exports in
# threads of one process (the lab's in-process engine) break each other. One at a time.
_EXPORT_LOCK = threading.Lock()


def _export_checked(
    wrapped: nn.Module, input_shape: list[int] | tuple[int, ...], check_batch: torch.Tensor | None
) -> OnnxExport:
    example = torch.zeros(1, *input_shape)
    buffer = io.BytesIO()
    try:
        with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
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
            )
    except Exception as exc:  # the exporter raises many types; report one line
        raise ExportError(f"ONNX export failed: {str(exc).splitlines()[0]}") from None
    data = buffer.getvalue()
    batch = check_batch if check_batch is not None else torch.zeros(2, *input_shape)
    diff = onnx_max_abs_diff(wrapped, data, batch.detach().cpu().float())
    if not diff <= CHECK_TOLERANCE:
        raise ExportError(f"ONNX export differs from torch by {diff:.3g} (> {CHECK_TOLERANCE})")
    return OnnxExport(data, diff)


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
