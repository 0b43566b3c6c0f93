"""The room's environment and working folder: nothing of the operator's, nothing inside."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sealroom.errors import SandboxError
from sealroom.sandbox import landlock_abi, private_workdir, scrubbed_environment
from tests.sandbox.probes import ROOT, run_probe

FIXED = {
    "LANG",
    "LC_ALL",
    "HOME",
    "TMPDIR",
    "PYTHONNOUSERSITE",
    "PYTHONDONTWRITEBYTECODE",
    "OMP_NUM_THREADS",
    "MPLCONFIGDIR",
}


def test_scrubbed_environment_is_the_fixed_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALROOM_HOME", "/secret/ws")
    monkeypatch.setenv("SEALROOM_PASSPHRASE", "hunter2")
    env = scrubbed_environment(tmp_path, keep={"PYTHONPATH": "/x", "OMP_NUM_THREADS": "4"})
    assert set(env) == FIXED | {"PYTHONPATH"}
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    assert env["OMP_NUM_THREADS"] == "4"
    assert "PATH" not in env


@pytest.mark.parametrize("name", ["SEALROOM_HOME", "AWS_SECRET_ACCESS_KEY", "PATH", "LD_PRELOAD"])
def test_passing_an_unlisted_variable_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(SandboxError, match=name):
        scrubbed_environment(tmp_path, keep={name: "value"})


def test_private_workdir_is_new_empty_and_owner_only() -> None:
    first, second = private_workdir(), private_workdir()
    try:
        assert first != second
        assert list(first.iterdir()) == []
        assert stat.S_IMODE(first.stat().st_mode) == 0o700
    finally:
        first.rmdir()
        second.rmdir()


@pytest.mark.skipif(landlock_abi() == 0, reason="this kernel has no Landlock")
def test_confined_child_sees_no_operator_secret_and_an_empty_cwd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEALROOM_HOME", "/secret/ws")
    monkeypatch.setenv("SEALROOM_KMS_TOKEN", "tok-123")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    result = run_probe({"probes": [["environ", ""], ["listdir", "."]]})
    env = json.loads(result["probes"][0].removeprefix("ok:"))
    assert set(env) == FIXED | {"PYTHONPATH"}
    assert env["PYTHONPATH"] == str(ROOT)
    assert not any("tok-123" in v or "hf_abc" in v or "/secret" in v for v in env.values())
    assert result["cwd"] == result["workdir"] == env["HOME"]
    assert result["probes"][1] == "ok:"  # nothing in its working folder
