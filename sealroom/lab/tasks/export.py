"""ONNX in and out: export a trained model as an artifact, load one back as torch modules.

Export reuses :func:`sealroom.train.export.export_onnx` (legacy exporter, dynamic batch
axis, checked against onnxruntime). Loading runs the room's checker first
(:func:`sealroom.train.onnx_check.check_onnx`): another job's model is data, and a
hostile file (external data, unknown operators, nested graphs) is refused before any
converter or runtime sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.values import LabModel, input_bytes

if TYPE_CHECKING:  # onnx and torch load when a task runs, not when the registry is listed
    import onnx


@task(
    "export",
    outputs=("onnx",),
    description="A trained model as an ONNX artifact (dynamic batch axis, onnxruntime-checked)",
    args={"model": "LabModel from train or load_model"},
)
def export(ctx: TaskContext, model: LabModel) -> dict[str, Any]:
    import torch

    from sealroom.train.export import export_onnx

    if not isinstance(model, LabModel):
        raise LabError(f"model: expected the output of train, got {type(model).__name__}")
    check = torch.rand(4, *model.input_shape, generator=torch.Generator().manual_seed(ctx.seed))
    result = export_onnx(model.module, model.input_shape, check)
    ctx.log(
        f"export: {len(result.data):,} bytes of ONNX, "
        f"onnxruntime max |diff| {result.max_abs_diff:.2e}"
    )
    blob = ArtifactBlob(name="onnx", kind="onnx", filename=f"{model.arch}.onnx", data=result.data)
    return {"onnx": blob}


def onnx_shapes(proto: onnx.ModelProto, where: str) -> tuple[tuple[int, int, int], int]:
    """Input (C, H, W) and class count from a checked model's graph signature."""

    def dims(value: onnx.ValueInfoProto) -> list[int]:
        return [d.dim_value for d in value.type.tensor_type.shape.dim]

    graph = proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise LabError(f"{where}: the model must take one input and give one output")
    shape, out = dims(graph.input[0]), dims(graph.output[0])
    if len(shape) != 4 or min(shape[1:]) < 1 or len(out) != 2 or out[1] < 1:
        raise LabError(
            f"{where}: expected input N x C x H x W and output N x classes, "
            f"got {len(shape)} and {len(out)} dimensions"
        )
    return (shape[1], shape[2], shape[3]), out[1]


def read_onnx_model(data: bytes, where: str) -> LabModel:
    """Checked ONNX bytes → a LabModel of torch modules (onnx2torch)."""
    from sealroom.train.models import load_onnx
    from sealroom.train.onnx_check import check_onnx

    proto = check_onnx(data, where)
    shape, classes = onnx_shapes(proto, where)
    module = load_onnx(data, where)  # checks again, then converts
    module.eval()
    return LabModel(module, "onnx", shape, classes)


@task(
    "load_model",
    outputs=("model",),
    description="An ONNX artifact (checked first) as a runnable torch model",
    args={"file": "onnx artifact (an artifact parameter or an export step's output)"},
)
def load_model(ctx: TaskContext, file: Any) -> dict[str, Any]:
    model = read_onnx_model(input_bytes(file, "onnx", "file"), "file")
    ctx.log(f"load_model: input {model.input_shape}, {model.num_classes} classes")
    return {"model": model}
