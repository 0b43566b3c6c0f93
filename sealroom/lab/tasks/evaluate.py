"""The evaluate task: accuracy of a model on clean test data or on adversarial sets.

A model may be a LabModel (torch) or an ONNX artifact, run with onnxruntime after the
room's checker. Adversarial sets are npz artifacts in one of two layouts: ``y`` labels,
``epsilons`` and ``x_0`` .. ``x_{n-1}`` (one image array per ε), or the attack task's
set (``y``, ``methods``, ``eps``, ``x_adv[method, ε]``). The metric ``robust_accuracy``
(``robust_accuracy_<method>`` for the attack task's sets) takes the ε's index as its step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.registry import InputFile, TaskContext, task
from sealroom.lab.tasks.values import LabData, LabModel, input_bytes, json_blob, read_npz

Predict = Any  # Callable[[np.ndarray], np.ndarray]: images → predicted labels


def torch_predictor(model: LabModel, batch_size: int = 512) -> Predict:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        model.module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
                out.append(model.module(batch).argmax(1).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    return predict


def onnx_predictor(data: bytes, where: str, batch_size: int = 512) -> Predict:
    """onnxruntime over checked ONNX bytes (single thread, CPU provider)."""
    import onnxruntime as ort

    from sealroom.train.onnx_check import check_onnx

    proto = check_onnx(data, where)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(
            proto.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's own error types
        raise LabError(f"{where}: onnxruntime cannot load the model ({str(exc)[:160]})") from None
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        out = [
            np.asarray(session.run(None, {name: x[s : s + batch_size].astype(np.float32)})[0])
            for s in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).argmax(1) if out else np.zeros(0, dtype=np.int64)

    return predict


def predictor(model: Any) -> Predict:
    if isinstance(model, LabModel):
        return torch_predictor(model)
    if isinstance(model, InputFile | ArtifactBlob):
        return onnx_predictor(input_bytes(model, "onnx", "model"), "model")
    raise LabError(
        f"model: expected a trained model or an ONNX artifact, got {type(model).__name__}"
    )


AdversarialSets = tuple[np.ndarray, list[tuple[str, int, float, np.ndarray]]]


def adversarial_sets(data: bytes, where: str) -> AdversarialSets:
    """``(y, [(method, ε index, ε, x)])`` from an adversarial npz, shapes checked."""
    arrays = read_npz(data, where)
    if "y" in arrays and "x_adv" in arrays and "methods" in arrays and "eps" in arrays:
        return _attack_set(arrays, where)
    if "y" not in arrays or "epsilons" not in arrays:
        raise LabError(f"{where}: an adversarial npz holds y, epsilons and x_0 .. x_N")
    eps, y = arrays["epsilons"].astype(np.float64).reshape(-1), arrays["y"].astype(np.int64)
    sets = []
    for i, epsilon in enumerate(eps):
        x = arrays.get(f"x_{i}")
        if x is None or x.ndim != 4 or len(x) != len(y):
            raise LabError(f"{where}: x_{i} missing or not {len(y)} images N x C x H x W")
        sets.append(("", i, float(epsilon), x.astype(np.float32)))
    return y, sets


def _attack_set(arrays: dict[str, np.ndarray], where: str) -> AdversarialSets:
    y, x_adv = arrays["y"].astype(np.int64), arrays["x_adv"]
    methods = [str(m) for m in arrays["methods"].reshape(-1)]
    eps = arrays["eps"].astype(np.float64).reshape(-1)
    if x_adv.ndim != 6 or x_adv.shape[:3] != (len(methods), len(eps), len(y)):
        raise LabError(
            f"{where}: x_adv has shape {x_adv.shape}, expected "
            f"({len(methods)} methods, {len(eps)} ε, {len(y)} images, C, H, W)"
        )
    sets = [
        (method, j, float(e), x_adv[i, j].astype(np.float32))
        for i, method in enumerate(methods)
        for j, e in enumerate(eps)
    ]
    return y, sets


@task(
    "evaluate",
    outputs=("report",),
    description="Accuracy of a model on clean test data and/or adversarial sets (npz)",
    args={
        "model": "LabModel, or an ONNX artifact (run with onnxruntime)",
        "data": "LabData: clean test accuracy (optional)",
        "adversarial": "npz artifact from the attack task: accuracy per ε (optional)",
    },
)
def evaluate(
    ctx: TaskContext, model: Any, data: LabData | None = None, adversarial: Any = None
) -> dict[str, Any]:
    if data is None and adversarial is None:
        raise LabError("give data, adversarial or both")
    predict = predictor(model)
    report: dict[str, Any] = {}
    if data is not None:
        if not isinstance(data, LabData):
            raise LabError(f"data: expected the output of load_data, got {type(data).__name__}")
        clean = float(np.mean(predict(data.x_test) == data.y_test))
        ctx.metric("accuracy", clean)
        ctx.log(f"evaluate: clean accuracy {clean:.4f} on {len(data.y_test)} images")
        report["accuracy"] = clean
    if adversarial is not None:
        y, sets = adversarial_sets(input_bytes(adversarial, "npz", "adversarial"), "adversarial")
        curve: list[dict[str, Any]] = []
        for method, index, epsilon, x in sets:
            robust = float(np.mean(predict(x) == y))
            name = f"robust_accuracy_{method}" if method else "robust_accuracy"
            ctx.metric(name, robust, index)
            label = f"{method} " if method else ""
            ctx.log(f"evaluate: {label}ε {epsilon:g}: accuracy {robust:.4f} on {len(y)} images")
            point = {"epsilon": epsilon, "accuracy": robust}
            curve.append({"method": method, **point} if method else point)
        report["robust"] = curve
    return {"report": json_blob("report", "evaluation.json", report)}
