"""Landlock file-system confinement: a confined child reads and writes only what it was given."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.sandbox import landlock_abi
from tests.sandbox.probes import run_probe

pytestmark = pytest.mark.skipif(
    landlock_abi() == 0, reason="this kernel has no Landlock (nothing to enforce here)"
)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """A fake operator folder: a workspace with a root key, an allowed input, a staging folder."""
    (tmp_path / "ws" / "keys").mkdir(parents=True)
    (tmp_path / "ws" / "keys" / "kms-root.key").write_bytes(b"ROOT-KEY-SECRET")
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "pipeline.yaml").write_text("name: p\n")
    (tmp_path / "staging").mkdir()
    return {
        "root": tmp_path,
        "key": tmp_path / "ws" / "keys" / "kms-root.key",
        "pipeline": tmp_path / "inputs" / "pipeline.yaml",
        "staging": tmp_path / "staging",
    }


def test_confined_child_reads_and_writes_only_what_it_was_given(host: dict[str, Path]) -> None:
    outside = host["root"] / "outside.txt"
    inside = host["staging"] / "model.bin"
    result = run_probe(
        {
            "read": [str(host["pipeline"])],
            "write": [str(host["staging"])],
            "probes": [
                ["read", str(host["key"])],
                ["read", str(host["pipeline"])],
                ["write", str(outside)],
                ["write", str(inside)],
                ["write", str(host["pipeline"])],
                ["listdir", str(host["root"])],
                ["read", "/etc/hostname"],
                ["listdir", "/tmp"],
                ["read", "/proc/1/environ"],
                ["read", "/proc/self/status"],
            ],
        }
    )
    assert result["report"]["kind"].startswith(f"landlock-abi{landlock_abi()}")
    assert result["probes"] == [
        "PermissionError:13",  # the workspace's root key
        "ok:8",  # the pipeline it was given
        "PermissionError:13",  # a write outside its staging folder
        "ok",  # a write inside it
        "PermissionError:13",  # a read-only input stays read-only
        "PermissionError:13",  # listing the operator's folder
        "PermissionError:13",  # host files outside the runtime set
        "PermissionError:13",
        "PermissionError:13",  # another process's /proc entry
        result["probes"][9],
    ]
    assert result["probes"][9].startswith("ok:")  # its own /proc entry
    assert not outside.exists()
    assert inside.read_text() == "written"
    assert host["pipeline"].read_text() == "name: p\n"


def test_staging_folder_takes_only_regular_files_and_folders(host: dict[str, Path]) -> None:
    """No hard link of the key into the outputs, no symlinks, no fifos in the staging folder."""
    staging = host["staging"]
    result = run_probe(
        {
            "write": [str(staging)],
            "probes": [
                ["link", f"{host['key']}|{staging / 'key-copy'}"],
                ["symlink", f"{host['key']}|{staging / 'key-link'}"],
                ["mkfifo", str(staging / "pipe")],
                ["write", str(staging / "sub-ok")],
            ],
        }
    )
    assert result["probes"][0] in ("PermissionError:13", "OSError:18")  # EACCES or EXDEV
    assert result["probes"][1:] == ["PermissionError:13", "PermissionError:13", "ok"]
    assert sorted(p.name for p in staging.iterdir()) == ["sub-ok"]


def test_executing_programs_is_denied(host: dict[str, Path]) -> None:
    result = run_probe({"probes": [["exec", "/bin/true"], ["exec", "/usr/bin/env"]]})
    assert result["probes"] == ["PermissionError:13", "PermissionError:13"]


def test_policy_granting_a_folder_above_a_secret_is_refused(host: dict[str, Path]) -> None:
    result = run_probe({"read": [str(host["root"])], "secret": [str(host["key"])], "probes": []})
    assert "would expose the protected path" in result["refused"]
    assert "report" not in result


def test_missing_policy_path_is_refused(host: dict[str, Path]) -> None:
    result = run_probe({"write": [str(host["root"] / "no-such-staging")]})
    assert "write path" in result["refused"] and "does not exist" in result["refused"]


def test_confine_refuses_once_a_thread_runs(host: dict[str, Path]) -> None:
    result = run_probe({"thread": True, "probes": [["read", str(host["key"])]]})
    assert "before any thread starts" in result["refused"]


def test_kernel_without_landlock_is_refused(host: dict[str, Path]) -> None:
    result = run_probe({"fake_abi": 0})
    assert "no Landlock" in result["refused"]
    assert "sandbox: none" in result["refused"]


def test_allow_unsandboxed_runs_unconfined_and_says_none(host: dict[str, Path]) -> None:
    """The operator's flag means exactly that: the file system is open, the report says so."""
    result = run_probe(
        {
            "fake_abi": 0,
            "allow_unsandboxed": True,
            "probes": [["read", str(host["key"])], ["socket", "udp"]],
        }
    )
    assert result["report"]["kind"] == "none"
    assert result["report"]["landlock_abi"] == 0
    assert result["probes"][0] == f"ok:{len(b'ROOT-KEY-SECRET')}"
    assert result["probes"][1] == "PermissionError:13"  # seccomp still applies where it can
