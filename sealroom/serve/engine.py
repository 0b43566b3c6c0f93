"""The model a serving room runs: ONNX bytes checked like a training room's, then ONNX Runtime.

The bytes never touch disk: they are checked by :func:`check_onnx` (no external data, the
operator allow-list, bounded size) before onnxruntime parses them, and the session is built
from memory on the CPU provider only. Everything the contract says about the input (name,
dtype, per-example shape) is checked against the model once, at load, so a request is only
ever checked against the contract's signature.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from sealroom.contract.inference import InputSignature
from sealroom.errors import SealroomError
from sealroom.train.onnx_check import check_onnx, short

# onnxruntime's type strings for the dtypes a contract may declare.
ORT_TYPES = {
    "float32": "tensor(float)",
    "float64": "tensor(double)",
    "int64": "tensor(int64)",
    "int32": "tensor(int32)",
    "uint8": "tensor(uint8)",
}
FLOAT_OUTPUTS = ("tensor(float)", "tensor(double)", "tensor(float16)")


class EngineError(SealroomError):
    """The model cannot be served under the contract's input signature (found at load)."""


class EngineFailure(SealroomError):
    """The model failed on a batch; the message is fixed (it must not echo any input)."""


class InputMismatch(SealroomError):
    """A request's array does not fit the contract's input signature."""


class ModelEngine:
    """One ONNX Runtime session and the one input and output it is served through."""

    def __init__(self, session: object, signature: InputSignature, input_name: str,
                 output_name: str, classes: int) -> None:  # fmt: skip
        self._session = session
        self.signature = signature
        self.input_name = input_name
        self.output_name = output_name
        self.classes = classes
        self.dtype = np.dtype(signature.dtype)
        self.example_shape = tuple(signature.shape)
        self._lock = threading.Lock()  # one run at a time: the batcher's worker owns it

    @classmethod
    def from_bytes(
        cls, onnx_bytes: bytes, signature: InputSignature, threads: int = 1
    ) -> ModelEngine:
        """Check ``onnx_bytes`` and load them; refuse a model the signature does not describe."""
        import onnxruntime as ort

        if threads < 1:
            raise EngineError(f"engine threads must be at least 1, got {threads}")
        check_onnx(onnx_bytes, "served model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings name graph nodes, not data
        try:
            session = ort.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own types: one line, no data
            message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise EngineError(f"served model: onnxruntime cannot load it: {message}") from None
        input_name = _check_input(session, signature)
        output_name = _check_output_declared(session)
        engine = cls(session, signature, input_name, output_name, classes=0)
        engine.classes = engine._probe()
        return engine

    def check_input(self, array: np.ndarray, max_examples: int) -> None:
        """Refuse an array that is not 1..max_examples examples of the signature; fixed lines."""
        if array.dtype != self.dtype:
            raise InputMismatch(f"input must be {self.signature.dtype} (dtype differs)")
        if array.ndim != len(self.example_shape) + 1 or array.shape[1:] != self.example_shape:
            raise InputMismatch(
                f"input must be a batch of examples of shape {list(self.example_shape)}"
            )
        if not 1 <= array.shape[0] <= max_examples:
            raise InputMismatch(f"a request carries 1 to {max_examples} examples")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits of shape (len(batch), classes); EngineFailure (fixed line) on any failure."""
        try:
            with self._lock:
                outputs = self._session.run(  # type: ignore[attr-defined]
                    [self.output_name], {self.input_name: batch}
                )
        except Exception:
            raise EngineFailure("the model failed on this batch") from None
        logits = np.asarray(outputs[0])
        if logits.shape != (batch.shape[0], self.classes):
            raise EngineFailure("the model returned logits of an unexpected shape")
        return logits

    def _probe(self) -> int:
        """Run one zero example: the output must be 2-D (batch, classes)."""
        example = np.zeros((1, *self.example_shape), dtype=self.dtype)
        try:
            with self._lock:
                out = self._session.run(  # type: ignore[attr-defined]
                    [self.output_name], {self.input_name: example}
                )[0]
        except Exception as exc:
            message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise EngineError(f"served model fails on a zero example: {message}") from None
        shape = np.shape(out)
        if len(shape) != 2 or shape[0] != 1 or shape[1] < 1:
            raise EngineError(
                f"served model's first output must be 2-D logits (batch, classes), got shape "
                f"{list(shape)} for one example"
            )
        return int(shape[1])


def _check_input(session: object, signature: InputSignature) -> str:
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    if len(inputs) != 1:
        raise EngineError(f"served model must take exactly one input, it takes {len(inputs)}")
    model_input = inputs[0]
    name = model_input.name
    if signature.name is not None and signature.name != name:
        raise EngineError(
            f"contract names the input {short(signature.name)}, the model calls it {short(name)}"
        )
    expected = ORT_TYPES[signature.dtype]
    if model_input.type != expected:
        raise EngineError(
            f"input {short(name)}: contract declares {signature.dtype}, the model takes "
            f"{model_input.type}"
        )
    shape = list(model_input.shape)
    if len(shape) != len(signature.shape) + 1:
        raise EngineError(
            f"input {short(name)}: the model takes rank {len(shape)}, the contract declares "
            f"{len(signature.shape)} axes plus a batch axis"
        )
    if isinstance(shape[0], int) and shape[0] >= 0:
        raise EngineError(
            f"input {short(name)}: the batch axis is fixed at {shape[0]}; export the model with "
            "a dynamic batch axis (dynamic_axes / dim_param) so requests can be batched"
        )
    for axis, (given, declared) in enumerate(zip(shape[1:], signature.shape, strict=True), 1):
        if isinstance(given, int) and given >= 0 and given != declared:
            raise EngineError(
                f"input {short(name)}: axis {axis} is {given} in the model, {declared} in the "
                "contract"
            )
    if math.prod(signature.shape) < 1:
        raise EngineError(f"input {short(name)}: the contract declares an empty example")
    return str(name)


def _check_output_declared(session: object) -> str:
    outputs = session.get_outputs()  # type: ignore[attr-defined]
    if not outputs:
        raise EngineError("served model has no output")
    first = outputs[0]
    if first.type not in FLOAT_OUTPUTS:
        raise EngineError(
            f"served model's first output {short(first.name)} is {first.type}, not float logits"
        )
    if first.shape is not None and len(first.shape) != 2:
        raise EngineError(
            f"served model's first output must be 2-D logits (batch, classes), it has rank "
            f"{len(first.shape)}"
        )
    return str(first.name)
