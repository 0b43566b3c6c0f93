"""rlimits from the policy: file size, memory, open files; core dumps always off."""

from __future__ import annotations

import os

import pytest

from sealroom.sandbox import landlock_abi
from tests.sandbox.probes import run_probe

pytestmark = pytest.mark.skipif(landlock_abi() == 0, reason="this kernel has no Landlock")

MiB = 1 << 20


def test_file_size_memory_and_open_files_are_capped() -> None:
    result = run_probe(
        {
            "max_file_bytes": 4096,
            "max_memory_bytes": 2048 * MiB,
            "max_open_files": 64,
            "probes": [
                ["write_bytes", "small.bin:4000"],
                ["write_bytes", "big.bin:5000"],
                ["allocate", str(64 * MiB)],
                ["allocate", str(3072 * MiB)],
            ],
        }
    )
    assert result["report"]["rlimits"] == {
        "core": 0,
        "data": 2048 * MiB,
        "fsize": 4096,
        "nofile": 64,
    }
    assert result["probes"] == [
        "ok",
        "OSError:27",  # EFBIG: Python ignores SIGXFSZ, the write fails instead of killing
        f"ok:{64 * MiB}",
        "MemoryError:",
    ]


def test_room_cannot_raise_its_limits_again_even_as_root() -> None:
    result = run_probe(
        {
            "max_file_bytes": 4096,
            "probes": [["raise_limit", "RLIMIT_FSIZE"], ["raise_limit", "RLIMIT_CORE"]],
        }
    )
    assert result["probes"] == ["ValueError:not allowed to raise maximum limit"] * 2


def test_every_capability_is_dropped() -> None:
    result = run_probe({"probes": [["capabilities", ""]]})
    assert result["probes"] == ["ok:" + ",".join(["0000000000000000"] * 3)]
    if os.geteuid() == 0:
        assert result["report"]["capabilities_dropped"] > 0


def test_core_dumps_are_off_without_any_limit_in_the_policy() -> None:
    assert run_probe({})["report"]["rlimits"] == {"core": 0}
