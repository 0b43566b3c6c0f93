"""The room's stack works inside the sandbox, and the runtime path set stays narrow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import sealroom
from sealroom.sandbox import landlock_abi, python_runtime_paths
from tests.sandbox.probes import ROOT, run_probe

GiB = 1 << 30


@pytest.mark.skipif(landlock_abi() == 0, reason="this kernel has no Landlock")
def test_torch_onnx_opacus_monai_train_inside_the_sandbox() -> None:
    """Imports, a Conv2d+Linear step and an onnxruntime session from bytes, all confined."""
    result = run_probe(
        {"max_memory_bytes": 2 * GiB, "probes": [["train", ""], ["socket", "udp"]]},
        timeout=180,
    )
    assert result["report"]["kind"] == f"landlock-abi{landlock_abi()}+seccomp"
    assert result["report"]["seconds"] < 1.0
    assert result["probes"][0].startswith("ok:[0.0, 2.0]:"), result["probes"][0]
    assert result["probes"][1] == "PermissionError:13"


def test_runtime_paths_leave_out_the_checkout_cwd_and_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source checkout may hold ./.sealroom: only its package folder is granted."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path, "", str(tmp_path)])
    paths = python_runtime_paths()
    package = Path(sealroom.__file__).resolve().parent
    assert package in paths
    assert ROOT not in paths or "site-packages" in ROOT.parts
    assert tmp_path.resolve() not in paths
    for path in paths:
        assert not tmp_path.resolve().is_relative_to(path), path
        assert path != Path("/") and path != Path("/etc") and path != Path("/tmp")
        assert os.path.exists(path)
