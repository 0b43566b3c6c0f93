"""Child process for the sandbox tests: confine(), then try things and print what happened.

Usage: python sandbox_probe.py SPEC_JSON. The spec names the policy and a list of probes
``[action, argument]``; the last stdout line is a JSON object: the report (or the refusal) and
one outcome per probe, "ok[:detail]" or "ExceptionName:errno".
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sealroom.errors import SandboxError
from sealroom.sandbox import SandboxPolicy, confine, landlock_rules, python_runtime_paths


def _read(arg: str) -> str:
    return f"ok:{len(Path(arg).read_bytes())}"


def _write(arg: str) -> str:
    Path(arg).write_text("written")
    return "ok"


def _write_bytes(arg: str) -> str:
    path, size = arg.rsplit(":", 1)
    with open(path, "wb") as fh:
        fh.write(b"x" * int(size))
    return "ok"


def _link(arg: str) -> str:
    source, target = arg.split("|")
    os.link(source, target)
    return "ok"


def _symlink(arg: str) -> str:
    source, target = arg.split("|")
    os.symlink(source, target)
    return "ok"


def _mkfifo(arg: str) -> str:
    os.mkfifo(arg)
    return "ok"


def _listdir(arg: str) -> str:
    return "ok:" + ",".join(sorted(os.listdir(arg)))


def _tcp_connect(arg: str) -> str:
    with socket.create_connection(("127.0.0.1", int(arg)), timeout=2):
        return "ok"


def _socket(arg: str) -> str:
    families = {
        "udp": (socket.AF_INET, socket.SOCK_DGRAM),
        "tcp": (socket.AF_INET, socket.SOCK_STREAM),
        "inet6": (socket.AF_INET6, socket.SOCK_STREAM),
        "unix": (socket.AF_UNIX, socket.SOCK_STREAM),
        "netlink": (socket.AF_NETLINK, socket.SOCK_RAW),
        "packet": (socket.AF_PACKET, socket.SOCK_RAW),
        "raw": (socket.AF_INET, socket.SOCK_RAW),
    }
    family, kind = families[arg]
    socket.socket(family, kind).close()
    return "ok"


def _signal(arg: str) -> str:
    os.kill(int(arg), 0)  # signal 0: only the permission check
    return "ok"


def _exec(arg: str) -> str:
    subprocess.run([arg], check=True, capture_output=True)
    return "ok"


def _ptrace(arg: str) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, int(arg), None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "ok"


def _x32_socket(arg: str) -> str:
    """socket() by its x32 number (0x40000000 | 41): a filter that checked only the x86_64
    number would let it through; libseccomp's bad-arch action kills the process instead."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(0x40000000 | 41), 2, 2, 0) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "ok"


def _raise_limit(arg: str) -> str:
    import resource

    which = getattr(resource, arg)
    resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return "ok"


def _capabilities(arg: str) -> str:
    with open("/proc/self/status") as fh:
        caps = [line.split()[1] for line in fh if line.startswith(("CapEff", "CapBnd", "CapPrm"))]
    return "ok:" + ",".join(caps)


def _syscall(arg: str) -> str:
    """A raw syscall by number with integer arguments (``nr:a0:a1``); ok:<result> or errno."""
    nr, *args = (int(v, 0) for v in arg.split(":"))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return f"ok:{result}"


def _start_thread(arg: str) -> str:
    """Threads still start (glibc falls back from the refused clone3 to clone)."""
    box: list[int] = []
    worker = threading.Thread(target=lambda: box.append(len(os.listdir("/proc/self/task"))))
    worker.start()
    worker.join()
    return f"ok:{box[0]}"


def _allocate(arg: str) -> str:
    block = bytearray(int(arg))
    return f"ok:{len(block)}"


def _environ(arg: str) -> str:
    return "ok:" + json.dumps(dict(os.environ))


def _train(arg: str) -> str:
    """The room's stack inside the sandbox: imports, a training step, onnxruntime from bytes."""
    started = time.perf_counter()
    import monai  # noqa: F401
    import numpy as np
    import onnx
    import onnx2torch
    import onnxruntime
    import opacus  # noqa: F401
    import torch
    from onnx import TensorProto, helper

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3)
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    before = torch.nn.functional.cross_entropy(net(x), y)
    before.backward()
    opt.step()
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"x": np.array([-1.0, 2.0], dtype=np.float32)})
    converted = onnx2torch.convert(onnx.load_from_string(model.SerializeToString()))
    assert converted(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
    return f"ok:{out.tolist()}:{time.perf_counter() - started:.2f}"


def _onnx_convert(arg: str) -> str:
    """Convert a model with onnx2torch directly: sealroom's model checks bypassed on purpose."""
    import onnx
    import onnx2torch
    import torch

    model = onnx2torch.convert(onnx.load(arg, load_external_data=False))
    out = model()
    return "ok:" + bytes(out.to(torch.uint8).tolist()).hex()


PROBES: dict[str, Callable[[str], str]] = {
    "read": _read,
    "write": _write,
    "write_bytes": _write_bytes,
    "listdir": _listdir,
    "link": _link,
    "symlink": _symlink,
    "mkfifo": _mkfifo,
    "tcp_connect": _tcp_connect,
    "socket": _socket,
    "signal": _signal,
    "exec": _exec,
    "ptrace": _ptrace,
    "allocate": _allocate,
    "syscall": _syscall,
    "start_thread": _start_thread,
    "raise_limit": _raise_limit,
    "capabilities": _capabilities,
    "x32_socket": _x32_socket,
    "environ": _environ,
    "train": _train,
    "onnx_convert": _onnx_convert,
}


def _outcome(action: str, arg: str) -> str:
    try:
        return PROBES[action](arg)
    except BaseException as exc:
        if isinstance(exc, OSError) or not str(exc):
            return f"{type(exc).__name__}:{getattr(exc, 'errno', '')}"
        return f"{type(exc).__name__}:{str(exc)[:300]}"


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("fake_abi") is not None:  # simulate a kernel without Landlock
        landlock_rules.landlock_abi = lambda: int(spec["fake_abi"])  # type: ignore[assignment]
    if spec.get("thread"):
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
    runtime = python_runtime_paths() if spec.get("runtime", True) else ()
    policy = SandboxPolicy(
        read_paths=(*runtime, *(Path(p) for p in spec.get("read", []))),
        write_paths=tuple(Path(p) for p in spec.get("write", [])),
        secret_paths=tuple(Path(p) for p in spec.get("secret", [])),
        max_memory_bytes=spec.get("max_memory_bytes"),
        max_file_bytes=spec.get("max_file_bytes"),
        max_open_files=spec.get("max_open_files"),
        allow_unsandboxed=bool(spec.get("allow_unsandboxed", False)),
    )
    result: dict[str, object] = {"cwd": os.getcwd()}
    try:
        result["report"] = confine(policy).as_dict()
    except SandboxError as exc:
        result["refused"] = str(exc)  # a refused room must not go on: neither do the probes
        print(json.dumps(result))
        return
    result["probes"] = [_outcome(action, arg) for action, arg in spec.get("probes", [])]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
