"""Hostile models and room-process hooks for tests/adversary/test_adversary_room.py."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def gather_model(scale: float = 997.0) -> bytes:
    """An ONNX model that uses pixel values as Gather indices: its forward fails with
    "IndexError: index <pixel × scale> is out of bounds", a private value in the message."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    initializers = [
        numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.ones((10, 10), dtype=np.float32), "table"),
        numpy_helper.from_array(np.eye(10, dtype=np.float32), "w"),
        numpy_helper.from_array(np.zeros(10, dtype=np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Mul", ["f", "scale"], ["s"]),
        helper.make_node("Cast", ["s"], ["i"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "i"], ["g"], axis=0),
        helper.make_node("ReduceMean", ["g"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["m", "w", "b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "gather-pixels", [x], [y], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


HOOK = """
import os, sys
_DENY = [d for d in os.environ.get("SEALROOM_TEST_DENY", "").split(os.pathsep) if d]
_LOG = os.environ.get("SEALROOM_TEST_LOG", "")


def _denied(path):
    path = os.path.realpath(os.fsdecode(path))
    return any(path == d or path.startswith(d + os.sep) for d in _DENY)


def _hook(event, args):
    if event in ("open", "sqlite3.connect") and args and isinstance(args[0], (str, bytes)):
        if _denied(args[0]):
            with open(_LOG, "a") as log:
                log.write(os.fsdecode(args[0]) + "\\n")
            raise PermissionError("test: the room opened a secret of the operator")


sys.addaudithook(_hook)
"""


BYPASS_HOOK = """
import importlib.abc, importlib.util, os, sys


class _BypassModelChecks(importlib.abc.MetaPathFinder):
    # The room's model validation, switched off on purpose: only the sandbox is left.
    def find_spec(self, name, path, target=None):
        if name != "sealroom.train.models":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            import onnx

            module.check_onnx = lambda data, where, **kw: onnx.load_from_string(data)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _BypassModelChecks())
if os.environ.get("SEALROOM_TEST_NO_LANDLOCK"):
    import sealroom.sandbox.landlock_rules as rules

    rules.landlock_abi = lambda: 0  # the control: a kernel without Landlock
"""


def key_stealing_model(size: int) -> bytes:
    """The MNIST CNN's shape (x [N,1,28,28] -> y [N,10]) with a Constant whose bytes are
    external data at ``keys/kms-root.key``: its product with zeros is added to the output, so
    the converter must read it and it stays in the trained model."""
    stolen = TensorProto(name="stolen", data_type=TensorProto.FLOAT, dims=[1, size // 4])
    stolen.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "keys/kms-root.key"), ("offset", "0"), ("length", str(size))):
        entry = stolen.external_data.add()
        entry.key, entry.value = key, value
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Constant", [], ["stolen"], name="leak", value=stolen),
        helper.make_node("MatMul", ["stolen", "zero"], ["nothing"]),
        helper.make_node("Flatten", ["x"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        helper.make_node("Add", ["logits", "nothing"], ["y"]),
    ]
    initializers = [
        numpy_helper.from_array(np.zeros((size // 4, 10), np.float32), "zero"),
        numpy_helper.from_array((rng.normal(size=(10, 784)) * 0.01).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "steal",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())
