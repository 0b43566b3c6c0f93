"""A hostile model in a room whose model checks are bypassed: the sandbox still stops it.

The attack (issue 12): an ONNX Constant whose tensor is external data at a relative location,
``keys/kms-root.key``; onnx2torch reads it relative to the room's working folder, and the old
room ran in the operator's workspace, so the key service's root key came back as weights.
"""

from __future__ import annotations

import socket
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from sealroom.kms.rootkey import ROOT_KEY_FILE, RootKey
from sealroom.sandbox import landlock_abi
from sealroom.workspace import Workspace
from tests.sandbox.probes import run_probe

pytestmark = pytest.mark.skipif(landlock_abi() == 0, reason="this kernel has no Landlock")


def _key_stealing_model(path: Path, location: str, size: int) -> None:
    stolen = TensorProto(name="stolen", data_type=TensorProto.UINT8, dims=[size])
    stolen.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        entry = stolen.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Constant", [], ["y"], value=stolen)
    graph = helper.make_graph(
        [node], "steal", [], [helper.make_tensor_value_info("y", TensorProto.UINT8, [size])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


@pytest.fixture
def attack(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Path, bytes]:
    RootKey.load_or_create(workspace.keys)
    secret = (workspace.keys / ROOT_KEY_FILE).read_bytes()
    model = tmp_path / "model.onnx"
    _key_stealing_model(model, f"keys/{ROOT_KEY_FILE}", len(secret))
    (workspace.runs / ".staging-run-x").mkdir()
    return workspace, model, secret


def _spec(ws: Workspace, model: Path, **extra: object) -> dict[str, object]:
    return {
        "read": [str(model)],
        "write": [str(ws.runs / ".staging-run-x")],
        "secret": [str(ws.keys), str(ws.kms_db)],
        "probes": [
            ["onnx_convert", str(model)],
            ["read", str(ws.keys / ROOT_KEY_FILE)],
            ["listdir", str(ws.keys)],
        ],
        **extra,
    }


def test_the_attack_is_real_without_the_sandbox(attack: tuple[Workspace, Path, bytes]) -> None:
    """Unconfined (the operator's flag on a kernel without Landlock), the model leaks the key."""
    ws, model, secret = attack
    result = run_probe(_spec(ws, model, fake_abi=0, allow_unsandboxed=True), cwd=ws.home)
    assert result["report"]["kind"] == "none"
    assert result["probes"][0] == "ok:" + secret.hex()


def test_room_in_the_workspace_folder_cannot_read_the_keys(
    attack: tuple[Workspace, Path, bytes],
) -> None:
    """Even run from the workspace folder (the old room's cwd), the sandbox denies the read."""
    ws, model, secret = attack
    result = run_probe(_spec(ws, model), cwd=ws.home, timeout=120)
    assert result["report"]["kind"].startswith("landlock-abi")
    # onnx wraps the kernel's EACCES in its own error; the control test above shows the same
    # model and folder leak the key when only the sandbox is missing.
    assert result["probes"][0] == "ValidationError:Cannot open external data for tensor stolen"
    assert result["probes"][1:] == ["PermissionError:13", "PermissionError:13"]
    assert secret.hex() not in str(result)


def test_room_cannot_send_anything_over_the_network() -> None:
    """Whatever a hostile model got hold of, it has no socket to send it through."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = str(server.getsockname()[1])
        result = run_probe({"probes": [["tcp_connect", port], ["socket", "udp"]]})
        with pytest.raises(BlockingIOError):
            server.accept()
    assert result["probes"] == ["PermissionError:13", "PermissionError:13"]


def test_policy_that_would_grant_the_workspace_is_refused(
    attack: tuple[Workspace, Path, bytes],
) -> None:
    ws, model, _ = attack
    spec = _spec(ws, model)
    spec["read"] = [str(ws.home)]
    result = run_probe(spec)
    assert "would expose the protected path" in result["refused"]
    assert isinstance(onnx.load(str(model), load_external_data=False), onnx.ModelProto)
